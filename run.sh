#!/bin/sh
# Install fedisocial into .venv (first run only), prepare the database, start the instance
# at http://127.0.0.1:$PORT (default 8000). Other options go to `fedisocial serve`.
# Usage: ./run.sh            or: PORT=8080 ./run.sh --workers 2
set -eu
cd "$(dirname "$0")"
PORT="${PORT:-8000}"
if [ ! -x .venv/bin/fedisocial ]; then
    echo "Installing fedisocial into .venv (first run only, about a minute)..."
    python3 -m venv .venv
    .venv/bin/pip install -qq --upgrade pip
    .venv/bin/pip install -qq -e .
fi
.venv/bin/fedisocial init --base-url "http://127.0.0.1:$PORT"
exec .venv/bin/fedisocial serve --port "$PORT" "$@"
