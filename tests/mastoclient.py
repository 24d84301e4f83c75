"""A live instance for real Mastodon clients (Mastodon.py, toot, masto.js), and a person who
signs them in.

- :func:`database_url`: a fresh database on SQLite or PostgreSQL, for one instance.
- :func:`live_instance`: ``fedisocial serve`` on a free loopback port (see
  :mod:`tests.instances`) with one user, stopped afterwards.
- :func:`register_app` (``POST /api/v1/apps``, as apps do), :func:`authorize_url`, and
  :func:`approve`: open an authorization URL as a person in a browser would (sign-in page,
  then the consent page's Allow, with cookies and CSRF fields) and read the code from the
  redirect or the out-of-band page. :func:`user_token` does all of it and exchanges the code.

Clients are synchronous (requests) or other processes, so this module is too: use it from
plain ``def`` tests, or through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import httpx
import pytest

from fedisocial.auth.clients import OOB
from tests.conftest import POSTGRES_URL, postgres_unavailable
from tests.instances import Instance, make_instance
from tests.oauthflow import PASSWORD, hidden_fields, query_of

__all__ = [
    "BACKENDS",
    "PASSWORD",
    "LiveInstance",
    "approve",
    "authorize_url",
    "database_url",
    "live_instance",
    "register_app",
    "user_token",
]

#: ``pytest.fixture(params=BACKENDS)``: run once per database, like the ``db`` fixture
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
SCOPES = "read write follow push"
_OOB_CODE = re.compile(r'id="oob-code" class="auth-code" value="([^"]+)"')


@dataclass
class LiveInstance:
    """A running instance and the one user it was made with."""

    instance: Instance
    username: str
    password: str

    @property
    def base_url(self) -> str:
        return self.instance.base_url

    def create_user(self, username: str, password: str = PASSWORD) -> None:
        """Another user on the running instance (``fedisocial user create``)."""
        done = self.instance.cli("user", "create", username, "--password-stdin",
                                 stdin=f"{password}\n")  # fmt: skip
        assert done.returncode == 0, done.stderr


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://",
                                                            "postgresql://", 1))  # fmt: skip
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def database_url(backend: str, root: Path) -> Iterator[str]:
    """A new database for one instance: a SQLite file in ``root``, or a PostgreSQL database
    of its own (dropped afterwards; skipped, or failed under FEDISOCIAL_REQUIRE_POSTGRES=1,
    without a server)."""
    if backend == "sqlite":
        root.mkdir(parents=True, exist_ok=True)
        yield f"sqlite+aiosqlite:///{root / 'instance.db'}"
        return
    reason = asyncio.run(postgres_unavailable())
    if reason and os.environ.get("FEDISOCIAL_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)
    name = f"fedisocial_live_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@contextmanager
def live_instance(
    root: Path, database: str = "", *, username: str = "alice", password: str = PASSWORD
) -> Iterator[LiveInstance]:
    """``fedisocial serve`` on a free loopback port, with ``username``; stopped after."""
    instance = make_instance(root, database)
    live = LiveInstance(instance, username, password)
    live.create_user(username, password)
    instance.start()
    try:
        yield live
    finally:
        instance.stop()


def register_app(
    base_url: str, name: str = "Test App", *, redirect_uris: str = OOB, scopes: str = SCOPES,
    website: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``POST /api/v1/apps`` as a form, as most apps send it: the CredentialApplication."""
    fields = {"client_name": name, "redirect_uris": redirect_uris, "scopes": scopes,
              **({"website": website} if website else {})}  # fmt: skip
    answer = httpx.post(f"{base_url}/api/v1/apps", data=fields, timeout=30)
    assert answer.status_code == 200, answer.text
    app: dict[str, Any] = answer.json()
    return app


def authorize_url(
    base_url: str, app: dict[str, Any], *, scopes: str = SCOPES, redirect_uri: str = OOB,
    **extra: str,
) -> str:  # fmt: skip
    """The authorization URL an app sends its user to."""
    params = {"client_id": app["client_id"], "response_type": "code",
              "redirect_uri": redirect_uri, "scope": scopes, **extra}  # fmt: skip
    return f"{base_url}/oauth/authorize?{urlencode(params)}"


def approve(url: str, username: str, password: str = PASSWORD) -> str:
    """Open an authorization URL as a person in a browser: sign in on the page it shows,
    press Allow on the consent page; the code the app gets (from its redirect, or copied
    from the out-of-band page)."""
    parts = urlsplit(url)
    with httpx.Client(base_url=f"{parts.scheme}://{parts.netloc}", timeout=30) as browser:
        sign_in = browser.get(url)
        assert sign_in.status_code == 200, sign_in.text
        assert 'name="password"' in sign_in.text, "expected the sign-in page"
        signed_in = browser.post("/auth/sign_in", data={
            **hidden_fields(sign_in.text), "username": username, "password": password})  # fmt: skip
        assert signed_in.status_code == 303, signed_in.text
        consent = browser.get(signed_in.headers["location"])
        assert consent.status_code == 200 and 'value="allow"' in consent.text, consent.text
        decided = browser.post("/oauth/authorize", data={
            **hidden_fields(consent.text), "decision": "allow"})  # fmt: skip
    if decided.status_code == 303:
        return query_of(decided.headers["location"])["code"]
    found = _OOB_CODE.search(decided.text)
    assert decided.status_code == 200 and found, decided.text
    return html.unescape(found.group(1))


def user_token(live: LiveInstance, *, scopes: str = SCOPES, app: dict[str, Any] | None = None,
               username: str | None = None, password: str | None = None) -> str:  # fmt: skip
    """An access token of a user (``live``'s own by default) for an app (a new one by
    default), through the whole authorization-code flow."""
    app = app or register_app(live.base_url, scopes=scopes)
    redirect_uri = app["redirect_uris"][0]
    code = approve(authorize_url(live.base_url, app, scopes=scopes, redirect_uri=redirect_uri),
                   username or live.username, password or live.password)  # fmt: skip
    fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
              "client_id": app["client_id"], "client_secret": app["client_secret"]}  # fmt: skip
    answer = httpx.post(f"{live.base_url}/oauth/token", data=fields, timeout=30)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token
