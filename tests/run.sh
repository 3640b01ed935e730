#!/usr/bin/env bash
# Set up everything the test suite needs, from nothing, and run all of it.
#
#   bash tests/run.sh [pytest arguments]
#
# Makes (or reuses) the virtual environment .venv with the package and its
# test extra, then runs the linters, the type checker, the documentation
# build and every test. Run as root, it first installs the system programs
# some tests use (network namespaces, packet capture, nc, a headless browser,
# Redis); without them those tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
system_packages=(iproute2 tshark netcat-openbsd chromium chromium-driver redis-server)
# Debian splits venv's pip bootstrap out of its python3: without it,
# "python3 -m venv" makes a .venv that has no pip.
"$python" -c 'import ensurepip' 2>/dev/null || system_packages+=(python3-venv)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for package in "${system_packages[@]}"; do
        # dpkg -s also succeeds for a package removed but for its settings.
        status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
        [ "$status" = installed ] || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        # A fresh machine may hold the package lock for its own updates a while.
        install=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300
            "${missing[@]}")
        # A fresh machine may have no package lists yet.
        if ! "${install[@]}" >/dev/null 2>&1; then
            apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null || true
            if ! "${install[@]}" >/dev/null; then
                echo "could not install ${missing[*]}: the tests that need them will skip"
                # CI must run those tests, not skip them.
                [ "${LABPROTO_REQUIRE_SYSTEM_TESTS:-}" != 1 ] || exit 1
            fi
        fi
    fi
fi

# A .venv left by an interrupted run (or made without pip) is made again.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    "$python" -m venv --clear .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --editable '.[test]'

echo "== ruff"
.venv/bin/ruff check labproto tests twisted benchmarks
echo "== mypy"
.venv/bin/mypy labproto benchmarks
echo "== sphinx"
# The build a user editing the docs runs alone (warnings are errors).
bash docs/build.sh
echo "== pytest"
# One worker per core, up to 4: most tests wait on real processes and
# sockets, not on the CPU. Each test file runs whole in one worker, in order.
workers=$(nproc 2>/dev/null || echo 1)
(( workers > 4 )) && workers=4
# pytest exits non-zero when a test fails and when no test was collected.
.venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
