#!/bin/sh
# Install fedisocial into .venv (first run only), prepare the database, start the instance.
# Usage: ./run.sh [--port 8000] [--host 127.0.0.1] [--workers N]
set -eu
cd "$(dirname "$0")"
if [ ! -x .venv/bin/fedisocial ]; then
    echo "Installing fedisocial into .venv (first run only)..."
    python3 -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e .
fi
.venv/bin/fedisocial init
exec .venv/bin/fedisocial serve "$@"
