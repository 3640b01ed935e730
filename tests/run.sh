#!/usr/bin/env bash
# Set up everything the test suite needs, from nothing, and run all of it.
#
#   bash tests/run.sh [pytest arguments]
#
# Makes (or reuses) the virtual environment .venv with the package and its
# test extra, then runs the linters, the type checker, the documentation
# build and every test. Run as root, it first installs the system programs
# some tests use (network namespaces, packet capture, nc); without them those
# tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."

system_packages=(iproute2 tshark netcat-openbsd)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for package in "${system_packages[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
        # A fresh machine may have no package lists yet.
        "${install[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && "${install[@]}" >/dev/null; } ||
            echo "warning: could not install ${missing[*]}; the tests that need them will skip"
    fi
fi

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
echo "== sphinx"
# Warnings are errors: a broken reference or a page missing from the index fails the run.
.venv/bin/sphinx-build -W --keep-going -q -b html docs build/docs
echo "== pytest"
# pytest exits non-zero when a test fails and when no test was collected.
.venv/bin/python -m pytest "$@"
