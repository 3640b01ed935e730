"""Sphinx configuration for the labproto documentation.

Built with warnings as errors (``sphinx-build -W --keep-going -b html docs
OUTDIR``), and with no extension that needs the network, so that the docs
build offline, like the rest of the test suite.
"""

project = "labproto"
author = "labproto contributors"
copyright = "labproto contributors"

extensions: list[str] = []

root_doc = "index"
# Build output and editor leftovers, should anyone build inside docs/.
exclude_patterns = ["_build", "build", "Thumbs.db", ".DS_Store"]

html_theme = "alabaster"
# No "view source" links: the pages are the source, in the repository.
html_show_sourcelink = False
