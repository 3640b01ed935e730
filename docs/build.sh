#!/usr/bin/env bash
# Build the documentation alone, as tests/run.sh does, without the test run.
#
#   bash docs/build.sh
#
# Makes (or reuses) the virtual environment .venv with the package and its
# test extra, which holds Sphinx, then builds the HTML into build/docs with
# warnings as errors, and says where to open it.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! .venv/bin/python -c 'import sphinx' >/dev/null 2>&1; then
    # A .venv left by an interrupted run (or made without pip) is made again.
    .venv/bin/python -m pip --version >/dev/null 2>&1 || "$python" -m venv --clear .venv
    .venv/bin/python -m pip install --quiet --editable '.[test]'
fi
# Warnings are errors: a broken reference or a page missing from the index fails the build.
.venv/bin/sphinx-build -W --keep-going -q -b html docs build/docs
echo "docs built: open $(pwd)/build/docs/index.html"
