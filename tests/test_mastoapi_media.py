"""``/api/v1/media`` and ``/api/v2/media`` (https://docs.joinmastodon.org/methods/media/).

Uploads go through the checks of every image; a post made with them through the
API federates to a second real instance with its Image and alt text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fedisocial.app import Context
from fedisocial.store.models import Media
from tests.c2s_helpers import Person, person, png
from tests.instances import alice_and_bob, eventually
from tests.test_roundtrip import rows, run


@pytest.fixture
async def alice(context: Context) -> Person:
    return await person(context, "alice", scope="read write")


async def upload(
    client: httpx.AsyncClient, who: Person, *, path: str = "/api/v2/media",
    data: bytes | None = None, **form: str,
) -> httpx.Response:  # fmt: skip
    return await client.post(path, headers=who.auth, data=form,
                             files={"file": ("a.png", png() if data is None else data,
                                             "image/png")})  # fmt: skip


async def media_rows(context: Context) -> int:
    async with context.db.session() as session:
        return await session.scalar(select(func.count()).select_from(Media)) or 0


@pytest.mark.parametrize("path", ["/api/v1/media", "/api/v2/media"])
async def test_an_upload_answers_a_media_attachment(
    client: httpx.AsyncClient, context: Context, alice: Person, path: str
) -> None:
    # When an app uploads an image with alt text and a focal point
    answer = await upload(client, alice, path=path, description="A teal square", focus="0.5,-0.25")
    # Then it is processed at once: 200 (not v2's 202), with its url and thumbnail
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["type"] == "image" and body["url"].startswith("http://127.0.0.1:8000/media/")
    assert body["preview_url"].endswith(".small.webp") and body["blurhash"]
    assert body["description"] == "A teal square" and body["remote_url"] is None
    meta = body["meta"]
    assert meta["original"] == {"width": 64, "height": 48, "size": "64x48", "aspect": 64 / 48}
    assert meta["small"] == {"width": 64, "height": 48, "size": "64x48", "aspect": 64 / 48}
    assert meta["focus"] == {"x": 0.5, "y": -0.25}
    # and the file is served
    assert (await client.get(body["url"])).headers["content-type"] == "image/png"


async def test_a_big_image_has_a_small_thumbnail(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    answer = await upload(client, alice, data=png(800, 400), description="Wide")
    assert answer.json()["meta"]["small"] == {"width": 400, "height": 200, "size": "400x200",
                                              "aspect": 2.0}  # fmt: skip


async def test_refused_uploads_store_nothing(
    client: httpx.AsyncClient, context: Context, alice: Person, settings: Any
) -> None:
    # a file that is not an image, and a broken PNG: 422
    text = await upload(client, alice, data=b"hello, not an image")
    assert text.status_code == 422 and "error" in text.json()
    broken = await upload(client, alice, data=png()[:60])
    assert broken.status_code == 422
    # over the size cap: 413
    huge = b"\x89PNG\r\n\x1a\n" + b"0" * settings.media_max_bytes
    assert (await upload(client, alice, data=huge)).status_code == 413
    # no file, a bad focus, alt text too long: 422
    empty = await client.post("/api/v2/media", headers=alice.auth, data={"description": "x"})
    assert empty.status_code == 422
    assert (await upload(client, alice, focus="2,0")).status_code == 422
    assert (await upload(client, alice, focus="nope")).status_code == 422
    too_long = "x" * (settings.media_max_description + 1)
    assert (await upload(client, alice, description=too_long)).status_code == 422
    assert await media_rows(context) == 0
    # and without a token, or with one that cannot write
    assert (await client.post("/api/v2/media", files={"file": ("a.png", png())})).status_code == 401
    reader = await person(context, "reader", scope="read")
    assert (await upload(client, reader)).status_code == 403
    assert await media_rows(context) == 0


async def test_one_reads_and_describes_ones_own_uploads_until_posted(
    client: httpx.AsyncClient, context: Context, alice: Person
) -> None:
    carol = await person(context, "carol", scope="read write")
    media_id = (await upload(client, alice)).json()["id"]
    url = f"/api/v1/media/{media_id}"
    # without alt text at first (apps describe afterwards)
    shown = await client.get(url, headers=alice.auth)
    assert shown.status_code == 200 and shown.json()["description"] is None
    # carol cannot see or change it; unknown ids are 404
    assert (await client.get(url, headers=carol.auth)).status_code == 404
    assert (await client.put(url, headers=carol.auth, json={"description": "x"})).status_code == 404
    assert (await client.get("/api/v1/media/999999", headers=alice.auth)).status_code == 404
    # alice describes it and moves its focus
    changed = await client.put(url, headers=alice.auth,
                               data={"description": "Sea", "focus": "-1,1"})  # fmt: skip
    assert changed.status_code == 200
    assert changed.json()["description"] == "Sea"
    assert changed.json()["meta"]["focus"] == {"x": -1.0, "y": 1.0}
    # once posted it can no longer change (as on Mastodon)
    posted = await client.post("/api/v1/statuses", headers=alice.auth,
                               json={"status": "x", "media_ids": [media_id]})  # fmt: skip
    assert posted.status_code == 200
    late = await client.put(url, headers=alice.auth, json={"description": "Changed"})
    assert late.status_code == 404
    assert (await client.get(url, headers=alice.auth)).json()["description"] == "Sea"


def test_a_post_with_media_from_an_app_federates_with_its_alt_text(tmp_path: Path) -> None:
    with alice_and_bob(tmp_path) as (one, two):
        # Given bob (on two) follows alice (on one), and alice's app has a token
        run(two, "follow", "bob", f"@alice@{one.netloc}")
        eventually(lambda: rows(two, "SELECT 1 FROM follows WHERE state='accepted'"),
                   "bob's follow is accepted")  # fmt: skip
        token = run(one, "token", "create", "alice", "--scopes", "read,write").splitlines()[1]
        auth = {"Authorization": f"Bearer {token}"}
        # When the app uploads a picture, describes it, and posts it
        picture = {"file": ("sea.png", png(80, 60, "navy"), "image/png")}
        uploaded = httpx.post(f"{one.base_url}/api/v2/media", headers=auth, files=picture)
        assert uploaded.status_code == 200, uploaded.text
        media_id = uploaded.json()["id"]
        described = httpx.put(f"{one.base_url}/api/v1/media/{media_id}", headers=auth,
                              json={"description": "A navy sea", "focus": "0,0.5"})  # fmt: skip
        assert described.status_code == 200, described.text
        posted = httpx.post(f"{one.base_url}/api/v1/statuses", headers=auth,
                            json={"status": "From my app", "media_ids": [media_id]})  # fmt: skip
        assert posted.status_code == 200, posted.text
        note_uri = posted.json()["uri"]

        # Then bob's server receives the Note with its Image, alt text and focal point
        def stored() -> dict[str, Any] | None:
            found = rows(two, "SELECT data FROM objects WHERE uri=?", note_uri)
            return json.loads(found[0][0]) if found else None

        note = eventually(stored, "bob's server has the note")
        assert "From my app" in note["content"]
        (image,) = note["attachment"]
        assert image["type"] == "Image" and image["mediaType"] == "image/png"
        assert image["name"] == "A navy sea" and image["focalPoint"] == [0.0, 0.5]
        assert image["url"] == posted.json()["media_attachments"][0]["url"]
        assert note_uri in run(two, "feed", "bob")
