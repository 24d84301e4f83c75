"""The npm packages of tests/interop: where they are, and node to run them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INTEROP = Path(__file__).parent
NODE_MODULES = INTEROP / "node_modules"


def node_for(package: str, entry: str) -> str:
    """The ``node`` executable, once ``package``'s ``entry`` file is installed; else the test
    is skipped with what to do (a failure when FEDISOCIAL_REQUIRE_INTEROP=1)."""
    node = shutil.which("node")
    if node is not None and (NODE_MODULES / package / entry).exists():
        return node
    reason = (
        f"{package} is not installed in tests/interop (./test.sh installs it when npm is on "
        "PATH; or run `npm ci` in tests/interop)"
        if node
        else f"node is not on PATH: the {package} test needs Node.js and npm"
    )
    if os.environ.get("FEDISOCIAL_REQUIRE_INTEROP") == "1":
        pytest.fail(f"{reason} (FEDISOCIAL_REQUIRE_INTEROP=1)")
    pytest.skip(reason)
