#!/usr/bin/env bash
# Set up everything the test suite needs, from nothing, and run all of it.
#
#   bash tests/run.sh [pytest arguments]
#
# Makes (or reuses) the virtual environment .venv with the package and its
# test extra, then runs the linters, the type checker and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --editable '.[test]'

echo "== ruff"
.venv/bin/ruff check labproto tests twisted
echo "== mypy"
.venv/bin/mypy labproto
echo "== pytest"
# pytest exits non-zero when a test fails and when no test was collected.
.venv/bin/python -m pytest "$@"
