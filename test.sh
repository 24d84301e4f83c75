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
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== import layers"; .venv/bin/lint-imports
echo "== pytest"; exec .venv/bin/pytest "$@"
