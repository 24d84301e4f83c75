"""The image studio page (/studio), server side: who may open it and what it is made of.

The page itself is driven by static/studio.js; tests/test_studio_browser.py
runs it in a real browser. Each test here runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.social.accounts import create_user
from fedisocial.studio.ai.local import LOCAL_MODEL

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
PASSWORD = "long enough password"


@pytest.fixture
async def context(app: Starlette) -> Context:
    ctx: Context = app.state.context
    await create_user(ctx.db, ctx.urls, "alice", PASSWORD, display_name="Alice")
    return ctx


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": BROWSER}


async def test_the_studio_asks_a_browser_to_sign_in(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given a browser with no credentials
    # When it opens the studio
    response = await client.get("/studio", headers={"Accept": BROWSER})
    # Then 401 with a Basic challenge, so the browser shows its sign-in dialog
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.headers["content-type"].startswith("text/html")
    assert "sign in" in response.text


async def test_a_wrong_password_is_asked_again(client: httpx.AsyncClient, context: Context) -> None:
    response = await client.get("/studio", headers=basic("alice", "not the password"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")


async def test_the_signed_in_user_gets_the_composer(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given alice on a fresh instance: no API key, so the local renderer answers
    # When she opens the studio with her password
    response = await client.get("/studio", headers=basic("alice", PASSWORD))
    html = response.text
    # Then the composer names her, the provider and model, and the limits
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert "@alice@127.0.0.1:8000" in html
    assert f"<strong>{LOCAL_MODEL}</strong> (local)" in html
    assert "up to 20 an hour" in html
    # And it has every control, each with its label, and loads the script
    for control in ("studio-prompt", "studio-file", "studio-upload-alt", "studio-text",
                    "studio-cw", "studio-visibility"):  # fmt: skip
        assert f'<label for="{control}"' in html, control
    for visibility in ("public", "unlisted", "followers", "direct"):
        assert f'<option value="{visibility}"' in html
    assert '<script src="/static/studio.js" defer></script>' in html
    assert 'data-max-images="4"' in html
    assert "#AIGenerated" in html


async def test_every_page_links_to_the_studio(client: httpx.AsyncClient, context: Context) -> None:
    response = await client.get("/", headers={"Accept": BROWSER})
    assert response.status_code == 200
    assert '<a href="/studio">Image studio</a>' in response.text


async def test_the_script_is_served(client: httpx.AsyncClient, context: Context) -> None:
    response = await client.get("/static/studio.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert '"/api/studio/generations"' in response.text
    assert 'credentials: "same-origin"' in response.text
