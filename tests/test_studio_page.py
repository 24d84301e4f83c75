"""The studio's part of the composer, server side: who may open it, what it is made of,
and the studio API as the composer's script calls it (the browser's session, with the
page's CSRF value in ``X-CSRF-Token``).

static/composer.js drives it; tests/test_studio_browser.py runs it in a real browser,
and tests/test_web_compose.py follows a whole post. Each test here runs on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.social.accounts import create_user
from fedisocial.store.models import Media, Object
from fedisocial.studio.ai.local import LOCAL_MODEL
from tests.oauthflow import PASSWORD
from tests.webapp import csrf_of, signed_in_browser

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
async def context(app: Starlette) -> Context:
    ctx: Context = app.state.context
    await create_user(ctx.db, ctx.urls, "alice", PASSWORD, display_name="Alice")
    return ctx


@pytest.fixture
async def alice(app: Starlette, context: Context) -> AsyncIterator[httpx.AsyncClient]:
    """Alice's browser, signed in, sending the page's CSRF value as the composer's script does."""
    async with signed_in_browser(app, context, "alice", create=False) as http:
        http.headers["X-CSRF-Token"] = csrf_of((await http.get("/compose")).text)
        yield http


async def test_the_studio_leads_a_signed_out_browser_to_sign_in(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given a browser with no session, When it opens the studio
    response = await client.get("/studio", headers={"Accept": BROWSER}, follow_redirects=True)
    # Then it is on the sign-in page, which leads back to the composer
    assert response.status_code == 200
    assert response.url.path == "/auth/sign_in" and response.url.params["next"] == "/compose"


async def test_the_signed_in_user_gets_the_composer(
    alice: httpx.AsyncClient, context: Context
) -> None:
    # Given alice on a fresh instance: no API key, so the local renderer answers
    # When she opens the studio, she is at the composer
    response = await alice.get("/studio", follow_redirects=True)
    html = response.text
    # Then it names the provider and model, and the limits
    assert response.status_code == 200 and response.url.path == "/compose"
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert f"<strong>{LOCAL_MODEL}</strong> (local)" in html
    assert "up to 20 an hour" in html
    # And it has every control, each with its label, and loads the script
    for control in ("composer-prompt", "composer-file", "composer-file-alt", "composer-text",
                    "composer-cw", "composer-visibility", "composer-language"):  # fmt: skip
        assert f'<label for="{control}"' in html, control
    for visibility in ("public", "unlisted", "followers", "direct"):
        assert f'<option value="{visibility}"' in html
    assert '<script src="/static/composer.js" defer></script>' in html
    assert 'data-max-images="4"' in html
    assert "#AIGenerated" in html


async def test_signed_out_pages_offer_sign_in_instead_of_the_composer(
    client: httpx.AsyncClient, context: Context
) -> None:
    response = await client.get("/", headers={"Accept": BROWSER})
    assert response.status_code == 200
    assert '/auth/sign_in" class="nav-sign-in"' in response.text
    assert 'href="/compose"' not in response.text


async def test_the_script_is_served(client: httpx.AsyncClient, context: Context) -> None:
    response = await client.get("/static/composer.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert '"/api/studio/generations"' in response.text
    assert 'credentials: "same-origin"' in response.text and '"X-CSRF-Token"' in response.text
    assert (await client.get("/static/studio.js")).status_code == 404


# -- the JSON fields of the studio API --------------------------------------------------------

API = {"Accept": "application/json"}


async def a_draft(alice: httpx.AsyncClient) -> int:
    """Alice's uploaded draft image, ready to publish."""
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (20, 120, 200)).save(out, "PNG")
    uploaded = await alice.post(
        "/api/studio/media", headers=API,
        files={"file": ("blue.png", out.getvalue(), "image/png")},
        data={"description": "A blue rectangle"},
    )  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    media_id: int = uploaded.json()["id"]
    return media_id


async def posts_of(context: Context) -> int:
    async with context.db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Object).where(Object.type == "Note")
        )
    return count or 0


BAD_POSTS: dict[str, tuple[dict[str, Any], str]] = {
    "cw a number": ({"cw": 5}, "cw must be text (a string), not a number"),
    "cw a list": ({"cw": ["spoilers"]}, "cw must be text (a string), not a list"),
    "text an object": ({"text": {"html": "<b>hi</b>"}},
                       "text must be text (a string), not an object"),
    "text true": ({"text": True}, "text must be text (a string), not true"),
    "visibility a list": ({"visibility": ["public"]}, "visibility must be one of"),
    "media ids true": ({"media_ids": [True]}, "media_ids must be a list of image ids"),
    "media ids a string": ({"media_ids": "1"}, "media_ids must be a list of image ids"),
    "description key": ({"descriptions": {"first": "x"}}, "descriptions must map image ids"),
    "description value": ({"descriptions": {"{id}": 7}},
                          "the description of image {id} must be text"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_POSTS, ids=list(BAD_POSTS))
async def test_publishing_refuses_fields_of_the_wrong_type(
    alice: httpx.AsyncClient, context: Context, case: str
) -> None:
    # Given a draft image of alice's
    media_id = await a_draft(alice)
    fields, message = BAD_POSTS[case]
    fields = {k: ({key.format(id=media_id): v for key, v in value.items()}
                  if isinstance(value, dict) and k == "descriptions" else value)
              for k, value in fields.items()}  # fmt: skip
    body = {"text": "Look", "media_ids": [media_id], **fields}
    # When she publishes with a field of the wrong JSON type
    answer = await alice.post("/api/studio/posts", json=body,
                               headers=API)  # fmt: skip
    # Then 400 says which field and what it must be, and nothing is posted
    assert answer.status_code == 400, answer.text
    assert message.format(id=media_id) in answer.json()["error"]
    assert await posts_of(context) == 0


@pytest.mark.parametrize("prompt", [42, ["a", "cat"], {"text": "a cat"}, False])
async def test_a_prompt_must_be_text(
    alice: httpx.AsyncClient, context: Context, prompt: Any
) -> None:
    answer = await alice.post("/api/studio/generations", json={"prompt": prompt},
                               headers=API)  # fmt: skip
    assert answer.status_code == 400
    assert "prompt must be text (a string)" in answer.json()["error"]


async def test_a_text_cw_still_publishes(alice: httpx.AsyncClient, context: Context) -> None:
    media_id = await a_draft(alice)
    answer = await alice.post(
        "/api/studio/posts", headers=API,
        json={"text": "Look", "media_ids": [media_id], "cw": "eye strain",
              "descriptions": {str(media_id): "A blue rectangle on white"}},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    assert await posts_of(context) == 1


# -- alt text: one rule for the upload API, the studio and the CLI ----------------------------

ALT_RULE = "alt text is required"


async def upload_with(alice: httpx.AsyncClient, data: dict[str, str]) -> httpx.Response:
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (200, 120, 20)).save(out, "PNG")
    return await alice.post(
        "/api/studio/media", headers=API,
        files={"file": ("orange.png", out.getvalue(), "image/png")}, data=data,
    )  # fmt: skip


async def media_rows(context: Context) -> int:
    async with context.db.session() as session:
        return await session.scalar(select(func.count()).select_from(Media)) or 0


@pytest.mark.parametrize("data", [{}, {"description": ""}, {"description": "  \n\t "}])
async def test_an_upload_without_alt_text_is_refused(
    alice: httpx.AsyncClient, context: Context, data: dict[str, str]
) -> None:
    # When alice uploads an image with no alt text, or only blanks
    answer = await upload_with(alice, data)
    # Then 400 states the rule, and nothing is stored
    assert answer.status_code == 400
    limit = context.settings.media_max_description
    assert answer.json()["error"] == (
        "Describe the image for people who cannot see it: alt text is required "
        f"(1 to {limit} characters)."
    )
    assert await media_rows(context) == 0
    assert not any((context.media.root).rglob("*.png"))  # type: ignore[attr-defined]


async def test_alt_text_over_the_configured_length_is_refused_not_cut(
    alice: httpx.AsyncClient, context: Context
) -> None:
    limit = context.settings.media_max_description
    answer = await upload_with(alice, {"description": "x" * (limit + 1)})
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        f"The alt text has {limit + 1} characters; at most {limit} are allowed."
    )
    assert await media_rows(context) == 0


async def test_blanking_the_alt_text_when_publishing_is_refused(
    alice: httpx.AsyncClient, context: Context
) -> None:
    # Given a draft with alt text
    media_id = await a_draft(alice)
    # When alice publishes it with its description replaced by blanks
    answer = await alice.post(
        "/api/studio/posts", headers=API,
        json={"text": "Look", "media_ids": [media_id], "descriptions": {str(media_id): " "}},
    )  # fmt: skip
    # Then the same rule refuses it, and nothing is posted
    assert answer.status_code == 400
    assert ALT_RULE in answer.json()["error"]
    assert await posts_of(context) == 0


def test_the_cli_states_the_same_rule(tmp_path: Path) -> None:
    # Given an image file and an instance (the CLI checks before it opens the database)
    image = tmp_path / "orange.png"
    Image.new("RGB", (30, 20), (200, 120, 20)).save(image)
    config = tmp_path / "fedisocial.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    env = {**os.environ, "FEDISOCIAL_CONFIG": str(config)}
    # When alice posts it with a blank --alt
    posted = subprocess.run(
        [sys.executable, "-m", "fedisocial", "post", "alice", "Look", "--image", str(image),
         "--alt", "  "], capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    # Then it stops with the rule the upload API states
    assert posted.returncode != 0
    assert f"error: Describe the image for people who cannot see it: {ALT_RULE}" in posted.stderr
