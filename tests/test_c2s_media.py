"""C2S media: uploadMedia, attaching uploads, generated images, and proxyUrl (SQLite and
PostgreSQL). Generation runs on the offline renderer, as in the studio's tests."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from fedisocial.ap.render import TRAINED_ALGORITHMIC_MEDIA
from fedisocial.app import Context, create_app
from fedisocial.config import Settings
from fedisocial.store.db import Database
from fedisocial.store.models import Media
from tests.c2s_helpers import (
    AP_JSON,
    AS_PUBLIC,
    BASE,
    Person,
    another_token,
    created,
    fanouts,
    get_as2,
    person,
    png,
    run_jobs,
    stored,
)
from tests.loopback import serve
from tests.test_studio import validate_note

PROMPT = "https://fedisocial.github.io/ns#prompt"


@pytest.fixture
async def alice(context: Context) -> Person:
    return await person(context, "alice")


async def upload(
    client: httpx.AsyncClient,
    who: Person,
    data: bytes | None,
    obj: Any = None,
    *,
    filename: str = "photo.png",
) -> httpx.Response:
    files: dict[str, Any] = {}
    if data is not None:
        files["file"] = (filename, data, "image/png")
    if obj is not None:
        raw = obj if isinstance(obj, bytes) else orjson.dumps(obj)
        files["object"] = ("descriptor.jsonld", raw, AP_JSON)
    return await client.post(f"{who.uri}/media", files=files, headers=who.auth)


# -- uploadMedia ----------------------------------------------------------------------------------


async def test_an_upload_answers_its_image_and_can_be_attached(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    # Given alice's client uploads a picture the way the ap client does
    answer = await upload(client, alice, png(), {
        "type": "Image", "nameMap": {"en": "Teal"}, "summaryMap": {"en": "A teal square"},
        "to": [AS_PUBLIC],
    })  # fmt: skip
    # Then it is 201 with the Image, its id in Location, dereferenceable
    assert answer.status_code == 201, answer.text
    image = answer.json()
    assert answer.headers["location"] == image["id"]
    assert image["type"] == "Image" and image["mediaType"] == "image/png"
    assert image["name"] == image["summary"] == "A teal square"
    assert (image["width"], image["height"]) == (64, 48) and image["blurhash"]
    assert image["url"].startswith(f"{BASE}/media/")
    assert (await get_as2(client, image["id"])).json() == image
    # When she posts a Note attaching it by id
    body = await created(
        client,
        alice,
        {
            "type": "Note",
            "content": "Look",
            "to": [AS_PUBLIC],
            "attachment": [{"type": "Image", "id": image["id"]}],
        },
    )
    # Then the Note carries the image, and the upload is now used
    (attached,) = body["object"]["attachment"]
    assert attached["url"] == image["url"] and attached["name"] == "A teal square"
    assert "digitalSourceType" not in attached
    validate_note(body["object"])
    again = await created(client, alice, {"type": "Note", "content": "Again", "to": [AS_PUBLIC]})
    assert "attachment" not in again["object"]
    reuse = await client.post(
        alice.outbox,
        headers={**alice.auth, "Content-Type": AP_JSON},
        content=orjson.dumps({"type": "Note", "attachment": image["url"]}),
    )
    assert reuse.status_code == 400 and "already attached" in reuse.json()["error"]


async def test_an_upload_attached_by_url_may_get_new_alt_text(
    client: httpx.AsyncClient, alice: Person
) -> None:
    image = (await upload(client, alice, png(), {"type": "Image", "name": "old"})).json()
    body = await created(client, alice, {"type": "Note", "to": [AS_PUBLIC], "attachment": [
        {"type": "Image", "url": image["url"], "name": "A better description"}]})  # fmt: skip
    assert body["object"]["attachment"][0]["summary"] == "A better description"


@pytest.mark.parametrize(
    ("data", "obj", "status", "message"),
    [
        (b"<svg onload='x()'></svg>", {"name": "x"}, 400, "SVG files are not accepted"),
        (None, {"name": "x"}, 400, "the multipart part 'file'"),
        (b"PNG", b"{not json", 400, "the object part is not JSON"),
        (b"PNG", None, 400, "send the object part too"),
        (b"PNG", {"type": "Video", "name": "x"}, 400, "must be Image"),
        (b"PNG", ["a list"], 400, "must be a JSON object"),
        ("PNG", {"type": "Image"}, 400, "alt text is required"),
    ],
)
async def test_bad_uploads_are_refused_with_a_reason(
    client: httpx.AsyncClient, context: Context, alice: Person, data: bytes | str | None,
    obj: Any, status: int, message: str,
) -> None:  # fmt: skip
    payload = png() if data in (b"PNG", "PNG") else data
    answer = await upload(client, alice, payload if not isinstance(payload, str) else None, obj)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    async with context.db.session() as session:
        assert list(await session.scalars(select(Media))) == []


async def test_too_big_an_upload_is_413(settings: Settings, db: Database, tmp_path: Any) -> None:
    small = dataclasses.replace(settings, media_max_bytes=1000)
    app = create_app(small, database=db)
    async with app.router.lifespan_context(app):
        alice = await person(app.state.context, "alice")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            answer = await upload(client, alice, png(400, 400, "red") + b"\0" * 70_000,
                                  {"name": "big"})  # fmt: skip
    assert answer.status_code == 413, answer.text


async def test_uploads_need_write_media_and_ones_own_endpoint(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    bob = await person(context, "bob")
    reader = await another_token(context, alice, "read")
    refused = await upload(client, reader, png(), {"name": "x"})
    assert (
        refused.status_code == 403 and "insufficient_scope" in refused.headers["www-authenticate"]
    )
    granular = await another_token(context, alice, "write:media")
    assert (await upload(client, granular, png(), {"name": "x"})).status_code == 201
    other = await client.post(f"{bob.uri}/media", headers=alice.auth,
                              files={"file": ("a.png", png(), "image/png")})  # fmt: skip
    assert other.status_code == 403
    anonymous = await client.post(f"{alice.uri}/media", files={"file": ("a.png", png())})
    assert anonymous.status_code == 401


# -- generated images -----------------------------------------------------------------------------


async def test_a_note_asking_for_a_generated_image_is_published_when_it_is_made(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    # Given alice's client posts a Note whose Image carries our prompt instead of a url
    body = await created(client, alice, {
        "@context": ["https://www.w3.org/ns/activitystreams",
                     {"fedisocial": "https://fedisocial.github.io/ns#"}],
        "type": "Note", "content": "Morning light", "to": [AS_PUBLIC],
        "attachment": [{"type": "Image", "fedisocial:prompt": "a lighthouse at dawn"}],
    })  # fmt: skip
    note_uri = body["object"]["id"]
    # Then the answer comes at once; the post is stored but not delivered yet
    assert "attachment" not in body["object"]
    assert await fanouts(context, body["id"]) == []
    # When the worker makes the image
    await run_jobs(context)
    # Then the post carries it, with every AI label, and was delivered to the followers
    note = (await get_as2(client, note_uri)).json()
    validate_note(note)
    (image,) = note["attachment"]
    assert image["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert "a lighthouse at dawn" in image["name"] and image["width"] == 1024
    assert "Image generated by AI" in note["content"] and "AIGenerated" in note["content"]
    assert {"type": "Hashtag", "href": f"{BASE}/tags/aigenerated",
            "name": "#AIGenerated"} in note["tag"]  # fmt: skip
    (fanout,) = await fanouts(context, body["id"])
    assert f"{alice.uri}/followers" in fanout["recipients"]
    activity = await stored(context, body["id"])
    assert activity is not None and activity.data["object"]["attachment"] == [image]
    async with context.db.session() as session:
        (media,) = await session.scalars(select(Media))
    assert media.note_uri == note_uri


async def test_a_failed_generation_withdraws_the_post(
    client: httpx.AsyncClient, context: Context, alice: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedisocial.errors import BadRequest

    async def refuse(prompt: str) -> Any:
        raise BadRequest("the model refused this prompt")

    monkeypatch.setattr(context.studio.provider, "generate", refuse)
    body = await created(
        client,
        alice,
        {
            "type": "Note",
            "content": "x",
            "to": [AS_PUBLIC],
            "attachment": [{"type": "Image", "prompt": "no"}],
        },
    )
    await run_jobs(context)
    assert (await get_as2(client, body["object"]["id"])).status_code == 410
    assert await fanouts(context, body["id"]) == []


async def test_one_generated_image_per_post_and_a_prompt_must_be_text(
    client: httpx.AsyncClient, alice: Person
) -> None:
    two = [{"type": "Image", PROMPT: "a"}, {"type": "Image", PROMPT: "b"}]
    for attachment, message in (
        (two, "one generated image"),
        ([{"type": "Image", PROMPT: 3}], "must be a string"),
        ([{"type": "Image", PROMPT: " "}], "the prompt is empty"),
    ):
        answer = await client.post(
            alice.outbox,
            headers={**alice.auth, "Content-Type": AP_JSON},
            content=orjson.dumps({"type": "Note", "content": "x", "attachment": attachment}),
        )
        assert answer.status_code == 400 and message in answer.json()["error"]


# -- proxyUrl -------------------------------------------------------------------------------------


@pytest.fixture
async def remote() -> AsyncIterator[tuple[str, list[Request]]]:
    seen: list[Request] = []

    async def note(request: Request) -> Response:
        seen.append(request)
        return JSONResponse({"id": str(request.url), "type": "Note", "content": "far away"},
                            media_type="application/activity+json")  # fmt: skip

    async def html(request: Request) -> Response:
        return PlainTextResponse("<html>not json</html>")

    async def missing(request: Request) -> Response:
        return Response(status_code=404)

    app = Starlette(routes=[Route("/notes/1", note), Route("/page", html),
                            Route("/gone", missing)])  # fmt: skip
    async with serve(app) as base:
        yield base, seen


async def test_the_proxy_fetches_with_a_signed_get(
    client: httpx.AsyncClient, alice: Person, remote: tuple[str, list[Request]]
) -> None:
    base, seen = remote
    answer = await client.post("/api/proxy", data={"id": f"{base}/notes/1"}, headers=alice.auth)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/activity+json"
    assert answer.json() == {"id": f"{base}/notes/1", "type": "Note", "content": "far away"}
    (request,) = seen
    assert f'keyId="{BASE}/actor#main-key"' in request.headers["signature"]


async def test_proxy_refusals_say_why(
    client: httpx.AsyncClient, context: Context, alice: Person, remote: tuple[str, list[Request]]
) -> None:
    base, _ = remote
    for form, status, message in (
        ({"id": f"{base}/page"}, 502, "did not return JSON"),
        ({"id": f"{base}/gone"}, 404, "answered 404"),
        ({"id": "http://127.0.0.1:9/nothing"}, 502, "could not fetch"),
        ({"id": "ftp://x.example/a"}, 400, "not an http(s) URL"),
        ({}, 400, "form field id"),
        ({"id": f"{alice.uri}"}, 400, "GET it directly"),
    ):
        answer = await client.post("/api/proxy", data=form, headers=alice.auth)
        assert answer.status_code == status, (form, answer.text)
        assert message in answer.json()["error"]
    assert (await client.post("/api/proxy", data={"id": f"{base}/notes/1"})).status_code == 401


async def test_the_proxy_refuses_private_addresses_unless_allowed(
    settings: Settings, db: Database
) -> None:
    guarded = dataclasses.replace(settings, allow_private_networks=False)
    app = create_app(guarded, database=db)
    async with app.router.lifespan_context(app):
        alice = await person(app.state.context, "alice")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            answer = await client.post("/api/proxy", data={"id": "https://10.0.0.1/notes/1"},
                                       headers=alice.auth)  # fmt: skip
    assert answer.status_code == 502 and "not a public address" in answer.json()["error"]
