"""labproto's benchmarks: load generators, baseline servers and the runner that compares them.

Run ``python -m benchmarks --help`` from a checkout; docs/benchmarks.rst
explains what is measured and how to read the results.
"""
