"""The drafting help API: an app with a Bearer token, the composer with its session and
CSRF value; the text model is the loopback chat API, spoken to by the real ``openai``
client the instance builds from its ``[ai.text]`` settings."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.config import Settings
from fedisocial.store.models import Media
from tests.c2s_helpers import another_token, person
from tests.fake_openai import SECRET, FakeChatAPI, png
from tests.loopback import serve
from tests.webapp import csrf_of, signed_in_browser

SUGGESTIONS = "/api/v1/fedisocial/suggestions"
DRAFT = "Went to the Farmers Market in Little Italy today. The peaches were perfect."
ANSWER = {
    "rewrites": [{"kind": "shorter", "text": "Perfect peaches at the market today."}],
    "hashtags": ["Peaches"],
    "content_warning": None,
}


@pytest.fixture
async def chat() -> AsyncIterator[tuple[FakeChatAPI, str]]:
    fake = FakeChatAPI()
    fake.answer = orjson.dumps(ANSWER).decode()
    async with serve(fake.app) as base:
        yield fake, base
        fake.release.set()


@pytest.fixture
def model() -> bool:
    """Whether the instance has a text model (a test parametrizes it off)."""
    return True


@pytest.fixture
def settings(settings: Settings, chat: tuple[FakeChatAPI, str], model: bool) -> Settings:
    if not model:
        return settings
    return dataclasses.replace(settings, ai_text_base_url=f"{chat[1]}/v1", ai_text_api_key=SECRET,
                               ai_text_vision=True, ai_text_drafts_per_hour=3)  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_app_gets_offline_and_ai_suggestions(
    client: httpx.AsyncClient, context: Context, chat: tuple[FakeChatAPI, str]
) -> None:
    # Given alice's app with a token that may write statuses
    alice = await person(context, "alice", scope="write:statuses")
    # When it asks for suggestions for a draft (a form, as Mastodon clients send)
    answer = await client.post(SUGGESTIONS, headers=bearer(alice.token),
                               data={"text": DRAFT, "language": "en"})  # fmt: skip
    # Then the offline hints and the model's suggestions, labeled as AI's
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["hashtags"][:2] == ["FarmersMarket", "LittleItaly"]
    assert doc["language"] == "en" and doc["max_characters"] == 5000 and doc["hints"] == []
    assert doc["ai"] == {"label": "AI suggestion", "model": "gpt-4o-mini-2024-07-18",
                         "rewrites": [ANSWER["rewrites"][0]], "hashtags": ["Peaches"],
                         "content_warning": None}  # fmt: skip
    assert doc["note"] is None and answer.headers["cache-control"] == "private, no-store"
    assert chat[0].bodies[0]["messages"][1]["content"] == DRAFT


async def test_a_token_without_the_scope_is_refused(
    client: httpx.AsyncClient, context: Context, chat: tuple[FakeChatAPI, str]
) -> None:
    reader = await person(context, "alice", scope="read")
    answer = await client.post(SUGGESTIONS, headers=bearer(reader.token), json={"text": DRAFT})
    assert answer.status_code == 403 and chat[0].bodies == []


@pytest.mark.parametrize("model", [False])
async def test_without_a_text_model_the_offline_hints(
    client: httpx.AsyncClient, context: Context
) -> None:
    alice = await person(context, "alice", scope="write")
    shouted = "BUY NOW LIMITED OFFER https://shop.example/x"
    answer = await client.post(SUGGESTIONS, headers=bearer(alice.token), json={"text": shouted})
    doc = answer.json()
    assert answer.status_code == 200 and doc["ai"] is None
    assert doc["note"] == "No text model is configured on this server: these are offline hints."
    assert [hint["code"] for hint in doc["hints"]] == ["all_caps"]


async def test_bad_input_is_a_400_that_says_what_to_do(
    client: httpx.AsyncClient, context: Context, chat: tuple[FakeChatAPI, str]
) -> None:
    alice = await person(context, "alice", scope="write")
    empty = await client.post(SUGGESTIONS, headers=bearer(alice.token), json={"text": " "})
    assert empty.status_code == 400 and "write a draft first" in empty.json()["error"]
    broken = await client.post(SUGGESTIONS, headers={**bearer(alice.token),
                               "Content-Type": "application/json"}, content=b"{")  # fmt: skip
    assert broken.status_code == 400
    assert chat[0].bodies == []


async def test_the_hourly_limit_is_a_429_with_retry_after(
    client: httpx.AsyncClient, context: Context, chat: tuple[FakeChatAPI, str]
) -> None:
    alice = await person(context, "alice", scope="write")
    for _ in range(3):
        answer = await client.post(SUGGESTIONS, headers=bearer(alice.token), json={"text": DRAFT})
        assert answer.status_code == 200
    refused = await client.post(SUGGESTIONS, headers=bearer(alice.token), json={"text": DRAFT})
    assert refused.status_code == 429
    assert re.search(r"the limit is 3 per hour\. Try again in \d+ minutes\.", refused.text)
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert len(chat[0].bodies) == 3
    # another user has a limit of their own
    bob = await person(context, "bob", scope="write")
    answer = await client.post(SUGGESTIONS, headers=bearer(bob.token), json={"text": DRAFT})
    assert answer.status_code == 200


async def test_the_models_rate_limit_is_a_429_and_an_outage_a_502(
    client: httpx.AsyncClient, context: Context, chat: tuple[FakeChatAPI, str]
) -> None:
    alice = await person(context, "alice", scope="write")
    chat[0].mode = "429-long"
    limited = await client.post(SUGGESTIONS, headers=bearer(alice.token), json={"text": DRAFT})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "300"
    chat[0].mode = "500"
    failed = await client.post(SUGGESTIONS, headers=bearer(alice.token), json={"text": DRAFT})
    assert failed.status_code == 502 and "failed with HTTP 500" in failed.json()["error"]
    assert SECRET not in limited.text + failed.text


async def test_the_composer_uses_its_session_and_csrf_value(
    app: Starlette, client: httpx.AsyncClient, context: Context, chat: tuple[FakeChatAPI, str]
) -> None:
    async with signed_in_browser(app, context, "alice") as http:
        # Without the page's CSRF value the request is refused, and the model is not asked
        refused = await http.post(SUGGESTIONS, json={"text": DRAFT})
        assert refused.status_code == 403 and chat[0].bodies == []
        # With it, the suggestions
        csrf = csrf_of((await http.get("/compose")).text)
        headers = {"X-CSRF-Token": csrf, "Accept": "application/json"}
        answer = await http.post(SUGGESTIONS, json={"text": DRAFT}, headers=headers)
        assert answer.status_code == 200 and answer.json()["ai"]["rewrites"]
        # and a cross-site page may not ask
        headers["Origin"] = "https://evil.example"
        other = await http.post(SUGGESTIONS, json={"text": DRAFT}, headers=headers)
        assert other.status_code == 403
    # and nobody signed in gets a 401
    assert (await client.post(SUGGESTIONS, json={"text": DRAFT})).status_code == 401


# -- alt text ---------------------------------------------------------------------------


async def uploaded(client: httpx.AsyncClient, token: str) -> int:
    answer = await client.post("/api/v2/media", headers=bearer(token),
                               files={"file": ("garden.png", png(), "image/png")})  # fmt: skip
    assert answer.status_code in (200, 202), answer.text
    return int(answer.json()["id"])


async def test_alt_text_for_an_upload_through_the_vision_model(
    client: httpx.AsyncClient, context: Context, chat: tuple[FakeChatAPI, str]
) -> None:
    alice = await person(context, "alice", scope="write:media")
    media_id = await uploaded(client, alice.token)
    chat[0].answer = "A blue rectangle."
    answer = await client.post(f"/api/v1/fedisocial/media/{media_id}/alt_text",
                               headers=bearer(alice.token), json={"language": "en"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"description": "A blue rectangle.", "source": "model",
                             "model": FakeChatAPI().model, "label": "AI suggestion"}  # fmt: skip
    # a suggestion only: the image's alt text is still the author's to write
    async with context.db.session() as session:
        media = await session.get(Media, media_id)
    assert media is not None and media.description == ""
    # someone else's image, or none, is not found
    bob = await another_token(context, await person(context, "bob", scope="write"), "write")
    theirs = await client.post(f"/api/v1/fedisocial/media/{media_id}/alt_text",
                               headers=bearer(bob.token))  # fmt: skip
    assert theirs.status_code == 404
    assert (await client.post("/api/v1/fedisocial/media/x/alt_text",
                              headers=bearer(alice.token))).status_code == 404  # fmt: skip
    assert len(chat[0].bodies) == 1


@pytest.mark.parametrize("model", [False])
async def test_without_a_vision_model_alt_text_is_a_422(
    client: httpx.AsyncClient, context: Context
) -> None:
    alice = await person(context, "alice", scope="write")
    media_id = await uploaded(client, alice.token)
    answer = await client.post(f"/api/v1/fedisocial/media/{media_id}/alt_text",
                               headers=bearer(alice.token))  # fmt: skip
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("no vision-capable model is configured")
