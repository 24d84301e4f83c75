"""People in a browser for the web app's tests: signed-in cookie clients over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.social.accounts import create_user
from tests.oauthflow import PASSWORD, Browser, hidden_fields

__all__ = ["BASE", "browser", "csrf_of", "signed_in_browser"]

BASE = "http://127.0.0.1:8000"


def csrf_of(page: str) -> str:
    """The CSRF value of a page's forms."""
    return hidden_fields(page)["csrf_token"]


@asynccontextmanager
async def browser(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client of ``app`` that sends what a browser sends for pages."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE,
                                 headers={"Accept": "text/html"}) as http:  # fmt: skip
        yield http


@asynccontextmanager
async def signed_in_browser(
    app: Starlette, context: Context, username: str, *, create: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """:func:`browser`, signed in as ``username`` (made with :data:`PASSWORD` first)."""
    if create:
        await create_user(context.db, context.urls, username, PASSWORD)
    async with browser(app) as http:
        answer = await Browser(http).sign_in(username)
        assert answer.status_code == 303, answer.text
        yield http
