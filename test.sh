#!/bin/sh
# Install fedisocial with its test tools into .venv, then run every check CI runs:
# ruff, mypy --strict, the import-layer contract and the whole pytest suite
# (store tests on SQLite and, when it answers, PostgreSQL at FEDISOCIAL_TEST_POSTGRES_URL).
set -eu
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -qq --upgrade pip
.venv/bin/pip install -qq -e '.[test]'
# The browser test drives Debian's Chromium through Playwright (never `playwright install`).
# Without root and apt-get it is skipped with a message (a failure if FEDISOCIAL_REQUIRE_BROWSER=1).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing chromium for the browser test"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
        || echo "could not install chromium: the browser test will be skipped"
fi
# The interop test runs the npm package activitypub-testing (pinned in tests/interop) against a
# real instance. Without npm it is skipped with a message (a failure if FEDISOCIAL_REQUIRE_INTEROP=1).
if command -v npm >/dev/null 2>&1 \
    && [ ! tests/interop/node_modules/.package-lock.json -nt tests/interop/package-lock.json ]; then
    echo "== installing activitypub-testing for the interop test"
    (cd tests/interop && npm ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null) \
        || echo "could not install tests/interop: the activitypub-testing test will be skipped"
fi
# The ap client test (tests/test_ap_client.py) installs the pinned activitypub-cli itself, once,
# into .cache/ap-client with a Python 3.12 from PATH or ~/.pyenv/versions/3.12*. Without one it
# is skipped with a message (a failure if FEDISOCIAL_REQUIRE_AP_CLIENT=1).
# (one command per line: `set -e` does not stop at a failure inside an && list)
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== import layers"
.venv/bin/lint-imports
# Two pytest workers (pytest-xdist), each test file on one of them (its module fixtures,
# such as live instances, start once): the suite waits on subprocesses and servers much of
# the time. `./test.sh -n 0` runs in one process.
echo "== pytest"; exec .venv/bin/pytest -n 2 --dist loadfile "$@"
