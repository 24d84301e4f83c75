"""A status's ``application``: the app a local post was made through, on SQLite and PostgreSQL.

Mastodon's REST::StatusSerializer shows ``{"name", "website"}`` of the post's OAuth
application (to anyone: the author's ``show_application`` setting is on by default) and
null for posts made without one. https://docs.joinmastodon.org/entities/Status/#application
"""

from __future__ import annotations

import base64

import httpx
from sqlalchemy import delete, select, update

from fedisocial.app import Context
from fedisocial.auth.tokens import authenticate_bearer
from fedisocial.store.models import OAuthClient, Object, PostApplication
from tests.c2s_helpers import AS_PUBLIC, Person, created


async def _name_app(context: Context, who: Person, name: str, website: str | None) -> int:
    """Give the app behind ``who``'s token a name and a website; its row id."""
    client_id = (await authenticate_bearer(context.db, who.token)).client_id
    async with context.db.transaction() as session:
        await session.execute(update(OAuthClient).where(OAuthClient.id == client_id)
                              .values(name=name, website=website))  # fmt: skip
    return client_id


async def test_a_post_made_through_an_app_shows_it_to_anyone(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    # Given alice's token is toot's
    client_id = await _name_app(context, carol, "carol's script", None)
    await _name_app(context, alice, "toot", "https://toot.bezdomni.net")
    # When she posts through the Mastodon API
    made = await client.post("/api/v1/statuses", json={"status": "hello"}, headers=alice.auth)
    assert made.status_code == 200, made.text
    toot = {"name": "toot", "website": "https://toot.bezdomni.net"}
    # Then the status names the app: to her, to carol, to anyone, in timelines too
    assert made.json()["application"] == toot
    status_id = made.json()["id"]
    for headers in (alice.auth, carol.auth, {}):
        shown = await client.get(f"/api/v1/statuses/{status_id}", headers=headers)
        assert shown.json()["application"] == toot
    public = (await client.get("/api/v1/timelines/public")).json()
    assert [s["application"] for s in public] == [toot]
    # carol's app has no website: null, as Mastodon's blank one
    hers = await client.post("/api/v1/statuses", json={"status": "hi"}, headers=carol.auth)
    assert hers.json()["application"] == {"name": "carol's script", "website": None}
    # a boost is not made through the app: the reblog wrapper has none, its post has
    boost = await client.post(f"/api/v1/statuses/{status_id}/reblog", headers=carol.auth)
    assert boost.json()["application"] is None and boost.json()["reblog"]["application"] == toot
    # and an app removed takes its name from its posts
    async with context.db.transaction() as session:
        await session.execute(delete(OAuthClient).where(OAuthClient.id == client_id))
    gone = await client.get(f"/api/v1/statuses/{hers.json()['id']}")
    assert gone.status_code == 200 and gone.json()["application"] is None


async def test_posts_made_without_an_app_have_none(
    context: Context, client: httpx.AsyncClient, alice: Person
) -> None:
    # Given a post made on the server (the web pages, the command line) and one with a password
    me = await context.outbox.actor_of("alice")
    plain = await context.outbox.post(me, "from the web")
    basic = base64.b64encode(b"alice:a good password").decode()
    made = await client.post("/api/v1/statuses", json={"status": "with a password"},
                             headers={"Authorization": f"Basic {basic}"})  # fmt: skip
    assert made.status_code == 200, made.text
    # Then neither names an app
    assert made.json()["application"] is None
    shown = await client.get(f"/api/v1/statuses/{plain.id}")
    assert shown.status_code == 200 and shown.json()["application"] is None
    async with context.db.session() as session:
        assert await session.scalar(select(PostApplication)) is None


async def test_a_c2s_post_with_a_token_records_its_app(
    context: Context, client: httpx.AsyncClient, alice: Person
) -> None:
    await _name_app(context, alice, "an AP client", "https://client.example")
    # When alice posts a Note to her outbox with her token
    body = await created(client, alice, {"type": "Note", "content": "via C2S", "to": [AS_PUBLIC]})
    async with context.db.session() as session:
        note = await session.scalar(select(Object).where(Object.uri == body["object"]["id"]))
    assert note is not None
    # Then the Mastodon API names the app
    shown = (await client.get(f"/api/v1/statuses/{note.id}")).json()
    assert shown["application"] == {"name": "an AP client", "website": "https://client.example"}
