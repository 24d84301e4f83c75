"""Debian's Chromium driven by Playwright, for the tests that use a real browser.

Without /usr/bin/chromium (or the ``playwright`` package) those tests are skipped with a
message, unless FEDISOCIAL_REQUIRE_BROWSER=1 (CI), where that is a failure:
:func:`require_browser`. Never ``playwright install``: the browser is the system's.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "keep_policy_violations", "require_browser",
           "watch", "why_no_browser"]  # fmt: skip

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def why_no_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: `apt-get install chromium` to run the browser test"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: `pip install -e '.[test]'`"
    return None


def require_browser(reason: str | None = None) -> None:
    """Skip (or under FEDISOCIAL_REQUIRE_BROWSER=1 fail) when the browser cannot run; a
    ``reason`` of the caller's (a missing script) counts the same."""
    reason = why_no_browser() or reason
    if reason and os.environ.get("FEDISOCIAL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (FEDISOCIAL_REQUIRE_BROWSER=1)")
    if reason:
        pytest.skip(reason)


def keep_policy_violations(errors: list[str], message: Any) -> None:
    """What our Content-Security-Policy blocked (a console message): pages must work within it."""
    if "Content Security Policy" in message.text:
        errors.append(message.text)


def watch(page: Any, timeout_ms: int = 30_000) -> list[str]:
    """What goes wrong on ``page`` from now on, filled in as it happens: script errors,
    failed requests (but the favicon, and the home feed's live stream ``/live``, which
    app.js opens and closes and which has tests of its own) and CSP violations."""
    errors: list[str] = []

    def keep_failure(response: Any) -> None:
        path = urlsplit(response.url).path
        if response.status >= 400 and path not in ("/favicon.ico", "/live"):
            errors.append(f"{response.status} {response.url}")

    page.set_default_timeout(timeout_ms)
    page.on("pageerror", lambda exc: errors.append(f"script error: {exc}"))
    page.on("response", keep_failure)
    page.on("console", lambda message: keep_policy_violations(errors, message))
    return errors
