"""The image studio API end to end, as an app with a token uses it: ask, wait, review,
publish (SQLite and PostgreSQL). The web composer's use of it is in test_web_compose.py."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from PIL import Image
from sqlalchemy import func, select, update
from starlette.applications import Starlette

from fedisocial.ap.render import TRAINED_ALGORITHMIC_MEDIA
from fedisocial.app import Context, create_app, job_handlers
from fedisocial.auth.tokens import create_personal_token
from fedisocial.config import Settings
from fedisocial.jobs import Worker
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Job, Media, utcnow
from fedisocial.studio.generation import GENERATE_RETRY
from fedisocial.studio.media import read_xmp
from tests.fake_openai import SECRET, FakeImagesAPI
from tests.loopback import serve

SCHEMA = json.loads((Path(__file__).parent.parent / "schemas" / "note.json").read_text())
PASSWORD = "a good password"
BASE = "http://127.0.0.1:8000"


def basic(name: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


#: each account's Bearer token (an app's), made by the fixtures for the test running
TOKENS: dict[str, str] = {}
#: alice's Authorization header, for the test running
ALICE: dict[str, str] = {}


async def person(context: Context, name: str) -> None:
    """``name``, with an app's token (the studio API takes tokens, or our pages' session)."""
    await create_user(context.db, context.urls, name, PASSWORD)
    TOKENS[name], _ = await create_personal_token(context.db, name, "read write")
    if name == "alice":
        ALICE.clear()
        ALICE.update(bearer("alice"))


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def validate_note(note: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(note)


@pytest.fixture
async def context(app: Starlette) -> Context:
    ctx: Context = app.state.context
    await person(ctx, "alice")
    await person(ctx, "bob")
    return ctx


async def run_jobs(context: Context) -> None:
    await Worker(context.queue, job_handlers(context)).run_until_idle()


async def generate(client: httpx.AsyncClient, context: Context, prompt: str) -> dict[str, Any]:
    asked = await client.post("/api/studio/generations", json={"prompt": prompt}, headers=ALICE)
    assert asked.status_code == 202, asked.text
    await run_jobs(context)
    status = await client.get(asked.json()["status_url"], headers=ALICE)
    result: dict[str, Any] = status.json()
    return result


async def test_ask_wait_review_publish(client: httpx.AsyncClient, context: Context) -> None:
    # Given alice asks the (default, offline) image model for a picture
    asked = await client.post(
        "/api/studio/generations", json={"prompt": "a lighthouse at dawn, watercolor"},
        headers=ALICE,
    )  # fmt: skip
    # Then it is queued, not made inside the request
    assert asked.status_code == 202
    assert asked.json()["status"] == "queued" and asked.json()["provider"] == "local"
    # When the worker runs, Then the status says done, with a draft image
    await run_jobs(context)
    status = (await client.get(asked.json()["status_url"], headers=ALICE)).json()
    assert status["status"] == "done", status
    media = status["media"]
    assert (media["width"], media["height"]) == (1024, 1024)
    assert "a lighthouse at dawn, watercolor" in media["description"]
    assert media["model"] == "fedisocial-local-1"
    # and the file is served to anyone, cacheable, labeled inside as AI media
    image = await client.get(media["url"].removeprefix("http://127.0.0.1:8000"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert "immutable" in image.headers["cache-control"]
    xmp = read_xmp(image.content) or ""
    assert "trainedAlgorithmicMedia" in xmp and "lighthouse at dawn" in xmp
    # When she edits the alt text and publishes
    published = await client.post("/api/studio/posts", headers=ALICE, json={
        "text": "Morning light", "media_ids": [media["id"]],
        "descriptions": {str(media["id"]): "A watercolour lighthouse at dawn (AI-generated)"},
    })  # fmt: skip
    assert published.status_code == 201, published.text
    # Then the Note carries the image the way Mastodon shows it, and the AI label
    note = (await client.get(published.json()["id"].removeprefix("http://127.0.0.1:8000"),
                             headers={"Accept": "application/activity+json"})).json()  # fmt: skip
    validate_note(note)
    (attachment,) = note["attachment"]
    assert attachment["type"] == "Image" and attachment["mediaType"] == "image/png"
    assert (
        attachment["name"]
        == attachment["summary"]
        == ("A watercolour lighthouse at dawn (AI-generated)")
    )
    assert attachment["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert attachment["blurhash"] and attachment["width"] == 1024
    assert "Image generated by AI" in note["content"]
    assert {"type": "Hashtag", "href": "http://127.0.0.1:8000/tags/aigenerated",
            "name": "#AIGenerated"} in note["tag"]  # fmt: skip
    context_terms = note["@context"][1]
    assert context_terms["digitalSourceType"]["@id"] == "fedisocial:digitalSourceType"
    # and it went through the outbox: a Create is queued for the followers
    async with context.db.session() as session:
        kinds = list(await session.scalars(select(Job.kind)))
    assert "fanout" in kinds


async def test_limits_and_bad_requests_get_clear_errors(
    client: httpx.AsyncClient, context: Context
) -> None:
    empty = await client.post("/api/studio/generations", json={"prompt": "  "}, headers=ALICE)
    assert empty.status_code == 400 and "prompt is empty" in empty.json()["error"]
    # two at once is the limit (settings: ai.images.concurrent = 2)
    for prompt in ("one", "two"):
        ok = await client.post("/api/studio/generations", json={"prompt": prompt}, headers=ALICE)
        assert ok.status_code == 202
    third = await client.post("/api/studio/generations", json={"prompt": "3"}, headers=ALICE)
    assert third.status_code == 429 and "at most 2 at once" in third.json()["error"]
    # nobody else reads or publishes alice's drafts
    await run_jobs(context)
    status = await client.get("/api/studio/generations/1", headers=bearer("bob"))
    assert status.status_code == 404
    theft = await client.post("/api/studio/posts", headers=bearer("bob"),
                              json={"text": "mine", "media_ids": [1]})  # fmt: skip
    assert theft.status_code == 404 and "no draft image 1" in theft.json()["error"]
    none = await client.post("/api/studio/posts", headers=ALICE, json={"text": "x"})
    assert none.status_code == 400
    five = await client.post("/api/studio/posts", headers=ALICE,
                             json={"text": "x", "media_ids": [1, 2, 3, 4, 5]})  # fmt: skip
    assert five.status_code == 400 and "at most 4" in five.json()["error"]


@pytest.mark.parametrize("settings", [{"FEDISOCIAL_AI_IMAGES_PER_HOUR": "3"}], indirect=True)
async def test_per_hour_limit(client: httpx.AsyncClient, context: Context) -> None:
    for n in range(3):
        await generate(client, context, f"picture {n}")
    over = await client.post("/api/studio/generations", json={"prompt": "4"}, headers=ALICE)
    assert over.status_code == 429 and "3 per hour" in over.json()["error"]


async def test_only_signed_in_users_and_our_own_pages(
    client: httpx.AsyncClient, context: Context
) -> None:
    anonymous = await client.post("/api/studio/generations", json={"prompt": "x"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    # a password (HTTP Basic) is not taken here, even the right one: browsers resend it
    password = await client.post("/api/studio/generations", json={"prompt": "x"},
                                 headers=basic("alice"))  # fmt: skip
    assert password.status_code == 401
    forged = await client.post(
        "/api/studio/generations", json={"prompt": "x"},
        headers={**ALICE, "Origin": "https://evil.example"},
    )  # fmt: skip
    assert forged.status_code == 403 and "evil.example" in forged.json()["error"]


def _png_with_gps() -> bytes:
    image = Image.new("RGB", (640, 480), (200, 80, 40))
    exif = Image.Exif()
    exif[0x8825] = {2: (48.0, 51.0, 30.0)}  # GPSInfo: latitude
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


async def test_uploads_are_cleaned_and_hostile_ones_refused(
    client: httpx.AsyncClient, context: Context
) -> None:
    # A photo with GPS data is stored without it
    upload = await client.post(
        "/api/studio/media", headers=ALICE, data={"description": "A red square"},
        files={"file": ("photo.jpg", _png_with_gps(), "image/jpeg")},
    )  # fmt: skip
    assert upload.status_code == 201, upload.text
    stored = await client.get(upload.json()["url"].removeprefix("http://127.0.0.1:8000"))
    assert not Image.open(io.BytesIO(stored.content)).getexif()
    # An SVG is refused with a clear message, and nothing is stored
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    refused = await client.post(
        "/api/studio/media", headers=ALICE, data={"description": "x"},
        files={"file": ("evil.svg", svg, "image/svg+xml")},
    )  # fmt: skip
    assert refused.status_code == 400 and "SVG" in refused.json()["error"]
    async with context.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Media)) == 1


async def test_a_restart_does_not_lose_queued_work(
    client: httpx.AsyncClient, context: Context, app: Starlette
) -> None:
    # Given a request queued while no worker runs (the server then stops)
    asked = await client.post("/api/studio/generations", json={"prompt": "after the restart"},
                              headers=ALICE)  # fmt: skip
    generation_id = asked.json()["id"]
    # When a new instance starts on the same database and its worker runs
    restarted = create_app(context.settings, database=context.db)
    async with restarted.router.lifespan_context(restarted):
        await run_jobs(restarted.state.context)
    # Then the image was made
    status = (await client.get(f"/api/studio/generations/{generation_id}", headers=ALICE)).json()
    assert status["status"] == "done"


@pytest.fixture
async def with_model(
    settings: Settings, db: Database
) -> AsyncIterator[tuple[FakeImagesAPI, Context, httpx.AsyncClient]]:
    """The instance with an OpenAI-compatible image model on loopback (the real SDK)."""
    fake = FakeImagesAPI()
    async with serve(fake.app) as base:
        configured = dataclasses.replace(settings, ai_images_base_url=f"{base}/v1",
                                         ai_images_api_key=SECRET)  # fmt: skip
        app = create_app(configured, database=db)
        async with app.router.lifespan_context(app):
            ctx: Context = app.state.context
            await person(ctx, "alice")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                yield fake, ctx, client


async def generation_job(context: Context) -> Job:
    async with context.db.session() as session:
        (job,) = await session.scalars(select(Job).where(Job.kind == "generate_image"))
    return job


@pytest.mark.parametrize(
    ("mode", "waits"),
    [("429", timedelta(seconds=10)), ("429-long", timedelta(seconds=290))],
    ids=["backoff", "retry-after"],
)
async def test_a_rate_limited_generation_stays_queued_then_succeeds(
    with_model: tuple[FakeImagesAPI, Context, httpx.AsyncClient], mode: str, waits: timedelta
) -> None:
    # Given an image model that answers 429 (the SDK does not retry: the job queue does)
    fake, context, client = with_model
    fake.mode = mode
    asked = await client.post("/api/studio/generations", json={"prompt": "a red fox"},
                              headers=ALICE)  # fmt: skip
    # When the worker runs the generation
    await run_jobs(context)
    # Then alice sees it still queued, not failed
    status = (await client.get(asked.json()["status_url"], headers=ALICE)).json()
    assert (status["status"], status["error"]) == ("queued", None)
    # and its job waits (the backoff, or the model's Retry-After when that is longer)
    job = await generation_job(context)
    assert job.status == "queued" and job.run_at > utcnow() + waits
    assert "quota or rate limit reached" in (job.last_error or "")
    # When the quota is back and the retry is due
    fake.mode = "b64"
    async with context.db.transaction() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(run_at=utcnow()))
    await run_jobs(context)
    # Then the image is made
    status = (await client.get(asked.json()["status_url"], headers=ALICE)).json()
    assert status["status"] == "done" and status["media"]["model"] == "gpt-image-1"


async def test_a_generation_still_rate_limited_at_its_last_attempt_fails_with_the_reason(
    with_model: tuple[FakeImagesAPI, Context, httpx.AsyncClient],
) -> None:
    # Given a generation that has used all but one of its attempts
    fake, context, client = with_model
    fake.mode = "429"
    asked = await client.post("/api/studio/generations", json={"prompt": "a red fox"},
                              headers=ALICE)  # fmt: skip
    job = await generation_job(context)
    async with context.db.transaction() as session:
        await session.execute(update(Job).where(Job.id == job.id)
                              .values(attempts=GENERATE_RETRY.attempts - 1))  # fmt: skip
    # When the last attempt is rate limited too
    await run_jobs(context)
    # Then alice sees it failed, and why
    status = (await client.get(asked.json()["status_url"], headers=ALICE)).json()
    assert status["status"] == "failed"
    assert status["error"].startswith("quota or rate limit reached at http://127.0.0.1:")
    assert (await generation_job(context)).status == "failed"


async def test_a_refused_prompt_fails_at_once_with_the_reason(
    with_model: tuple[FakeImagesAPI, Context, httpx.AsyncClient],
) -> None:
    # Given an image model whose content policy refuses the prompt
    fake, context, client = with_model
    fake.mode = "400-policy"
    asked = await client.post("/api/studio/generations", json={"prompt": "something awful"},
                              headers=ALICE)  # fmt: skip
    # When the worker runs it
    await run_jobs(context)
    # Then alice sees it failed, and why; it is not tried again
    status = (await client.get(asked.json()["status_url"], headers=ALICE)).json()
    assert status["status"] == "failed"
    assert status["error"] == (
        "The image model refused this prompt: "
        "Your request was rejected as a result of our safety system."
    )
    assert (await generation_job(context)).status == "failed"
    assert len(fake.bodies) == 1


async def test_every_note_we_send_validates(context: Context) -> None:
    """schemas/note.json: plain, reply, mention, content warning, direct, edited, with images."""
    alice_actor = await _actor(context, "alice")
    notes = [
        await context.outbox.post(alice_actor, "Hello #fediverse https://example.com"),
        await context.outbox.post(alice_actor, "Careful", summary="spoilers"),
        await context.outbox.post(alice_actor, "Hi @bob", visibility="direct"),
    ]
    notes.append(await context.outbox.post(alice_actor, "A reply", in_reply_to=notes[0].uri))
    notes.append(await context.outbox.edit(alice_actor, notes[2].uri, "Hi @bob, #edited"))
    generation = await context.studio.request(alice_actor, "a small boat")
    await context.studio.run({"generation": generation.id})
    status = await context.studio.status(alice_actor, generation.id)
    notes.append(await context.studio.publish(alice_actor, "With a picture",
                                              [status["media"]["id"]]))  # fmt: skip
    for note in notes:
        validate_note(note.data)


async def _actor(context: Context, name: str) -> Actor:
    return await find_local_actor(context.db, context.urls, name)
