"""One renderer for every document we send (``fedisocial.ap.render``), seen from outside.

Posts, edits and the documents we serve, on SQLite and PostgreSQL; remote
servers are a real loopback server whose inboxes record what they receive.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.ap import render as as2
from fedisocial.ap.addressing import Visibility
from fedisocial.app import Context, job_handlers
from fedisocial.errors import BadRequest
from fedisocial.federation.remote import store_actor
from fedisocial.jobs import Worker
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.social.timeline import home_feed
from fedisocial.store.models import Actor, Object
from tests.loopback import serve

AS2 = "application/activity+json"
BASE = "http://127.0.0.1:8000"
PASSWORD = "a good password"


class Inboxes:
    """A remote server on loopback: every POST to ``/users/NAME/inbox`` is kept."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []

        async def inbox(request: Request) -> Response:
            self.received.append((request.path_params["name"], orjson.loads(await request.body())))
            return Response(status_code=202)

        self.app = Starlette(routes=[Route("/users/{name}/inbox", inbox, methods=["POST"])])

    def of(self, name: str, kind: str) -> list[dict[str, Any]]:
        """The activities of type ``kind`` that ``name``'s inbox got, in order."""
        return [doc for who, doc in self.received if who == name and doc["type"] == kind]


@pytest.fixture
async def remote(context: Context) -> AsyncIterator[tuple[Inboxes, str]]:
    """The loopback server and the handle of bob, an actor on it (no shared inbox)."""
    inboxes = Inboxes()
    async with serve(inboxes.app) as base:
        uri = f"{base}/users/bob"
        await store_actor(context.db, {
            "id": uri, "type": "Person", "preferredUsername": "bob", "inbox": f"{uri}/inbox",
            "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": "unused"},
        })  # fmt: skip
        yield inboxes, f"@bob@{base.removeprefix('http://')}"


@pytest.fixture
async def context(app: Starlette) -> Context:
    ctx: Context = app.state.context
    for name in ("alice", "carol"):
        await create_user(ctx.db, ctx.urls, name, PASSWORD)
    return ctx


async def local(context: Context, name: str) -> Actor:
    return await find_local_actor(context.db, context.urls, name)


async def run_jobs(context: Context) -> None:
    await Worker(context.queue, job_handlers(context)).run_until_idle()


def mentions(note: dict[str, Any]) -> list[str]:
    return [t["href"] for t in note.get("tag", ()) if t["type"] == "Mention"]


def audience(doc: dict[str, Any]) -> list[str]:
    return [*doc.get("to", ()), *doc.get("cc", ())]


# -- edits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visibility", "field"),
    [("public", "cc"), ("unlisted", "cc"), ("followers", "cc"), ("direct", "to")],
)
async def test_an_edit_that_adds_a_mention_tags_addresses_and_tells_them(
    context: Context, remote: tuple[Inboxes, str], visibility: Visibility, field: str
) -> None:
    # Given alice's post mentioning nobody, and bob on another server
    inboxes, bob = remote
    bob_uri = (await context.outbox.actor_of(bob)).uri
    alice = await local(context, "alice")
    post = await context.outbox.post(alice, "Hello there", visibility=visibility)
    await run_jobs(context)
    assert inboxes.received == []
    # When she edits it to mention bob
    edited = await context.outbox.edit(alice, post.uri, f"Hello there {bob}")
    await run_jobs(context)
    # Then the Note tags bob and addresses him as a post of that visibility would
    assert mentions(edited.data) == [bob_uri]
    assert bob_uri in edited.data[field]
    # and bob's inbox gets the Update, which carries that Note and is addressed to him too
    (update,) = inboxes.of("bob", "Update")
    assert update["object"] == edited.data and bob_uri in update[field]
    assert update["object"]["updated"] and update["object"]["published"] == post.data["published"]


async def test_an_edit_reads_like_a_post_of_the_same_text(
    context: Context, remote: tuple[Inboxes, str]
) -> None:
    # Given a reply of alice's to carol, edited to mention bob, carol and a tag
    _, bob = remote
    alice, carol = await local(context, "alice"), await local(context, "carol")
    parent = await context.outbox.post(carol, "Question?")
    reply = await context.outbox.post(alice, "Answer", in_reply_to=parent.uri, summary="cw")
    text = f"Answer for {bob} and @carol #fedi"
    edited = await context.outbox.edit(alice, reply.uri, text)
    # When she posts the same text as a new reply
    fresh = await context.outbox.post(alice, text, in_reply_to=parent.uri, summary="cw")
    # Then both Notes agree on everything but their id and times
    differ = {"id", "url", "published", "updated", "replies", "likes", "shares"}
    assert {k: v for k, v in edited.data.items() if k not in differ} == {
        k: v for k, v in fresh.data.items() if k not in differ
    }
    assert carol.uri in audience(edited.data) and edited.data["inReplyTo"] == parent.uri
    # and carol, mentioned on this instance, finds the edited post in her home feed
    feed = await home_feed(context.db, carol.id)
    assert reply.uri in [item.object.uri for item in feed.items]


async def test_an_edit_that_drops_a_mention_still_tells_them(
    context: Context, remote: tuple[Inboxes, str]
) -> None:
    """As on Mastodon: the mention turns silent, but the Update reaches them."""
    # Given alice's post mentioning bob, who got the Create
    inboxes, bob = remote
    bob_uri = (await context.outbox.actor_of(bob)).uri
    alice = await local(context, "alice")
    post = await context.outbox.post(alice, f"Hi {bob}")
    await run_jobs(context)
    assert len(inboxes.of("bob", "Create")) == 1
    # When she edits the mention away
    edited = await context.outbox.edit(alice, post.uri, "Hi everyone")
    await run_jobs(context)
    # Then the Note neither tags nor addresses bob
    assert mentions(edited.data) == [] and bob_uri not in audience(edited.data)
    # and bob still gets the Update, so that his copy changes too
    (update,) = inboxes.of("bob", "Update")
    assert update["object"]["content"] == "<p>Hi everyone</p>"


async def test_an_edit_is_checked_like_a_post(context: Context) -> None:
    alice = await local(context, "alice")
    post = await context.outbox.post(alice, "short")
    for text, message in (("   ", "needs text"), ("x" * 5001, "at most 5,000")):
        with pytest.raises(BadRequest, match=message):
            await context.outbox.edit(alice, post.uri, text)
    assert (await context.outbox.edit(alice, post.uri, "still short")).data["content"]


# -- no empty arrays (AS2 Core: an empty array is left out) ---------------------------------------


def test_compact_leaves_out_empty_arrays_and_nothing_else() -> None:
    doc: dict[str, Any] = {
        "tag": [], "inReplyTo": None, "totalItems": 0, "summary": "", "sensitive": False,
        "attachment": [{"focalPoint": []}], "endpoints": {"x": []}, "to": ["a"],
    }  # fmt: skip
    assert as2.compact(doc) == {
        "inReplyTo": None, "totalItems": 0, "summary": "", "sensitive": False,
        "attachment": [{}], "endpoints": {}, "to": ["a"],
    }  # fmt: skip


def empty_arrays(value: Any, where: str = "$") -> list[str]:
    """Where ``value`` holds an empty array, at any depth (``$.object.cc``)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in empty_arrays(v, f"{where}.{k}")]
    if isinstance(value, list):
        found = [where] if not value else []
        return found + [p for i, v in enumerate(value) for p in empty_arrays(v, f"{where}[{i}]")]
    return []


def basic(name: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": AS2}


async def served(client: httpx.AsyncClient, uri: str, reader: str = "carol") -> dict[str, Any]:
    response = await client.get(uri.removeprefix(BASE), headers=basic(reader))
    assert response.status_code in (200, 410), (uri, response.text)
    doc: dict[str, Any] = response.json()
    return doc


async def test_no_document_we_serve_or_send_has_an_empty_array(
    client: httpx.AsyncClient, context: Context, remote: tuple[Inboxes, str]
) -> None:
    # Given alice with no profile fields or pins; a post with no tags or media; a direct
    # post to carol and bob (no cc either), carol's like of it and follow; a deleted post
    inboxes, bob = remote
    alice, carol = await local(context, "alice"), await local(context, "carol")
    public = await context.outbox.post(alice, "Hello")
    direct = await context.outbox.post(alice, f"psst @carol {bob}", visibility="direct")
    like = await context.outbox.like(carol, direct.uri)
    follow = await context.outbox.follow(carol, "alice")
    gone = await context.outbox.post(alice, "oops")
    await context.outbox.delete(alice, gone.uri)
    await run_jobs(context)
    outbox = await served(client, alice.outbox or "")
    create = (await served(client, outbox["first"]))["orderedItems"][0]["id"]
    # When servers read what we serve: actors, posts, activities, collections, pages, tombstones
    readable = [
        alice.uri, f"{BASE}/actor", public.uri, direct.uri, like.uri, follow.uri, create,
        gone.uri, alice.outbox, outbox["first"], f"{BASE}/users/carol/outbox?page=true",
        alice.featured_url, alice.followers_url, f"{alice.followers_url}?page=true",
        f"{direct.uri}/replies?page=true", carol.inbox, f"{carol.inbox}?page=true",
    ]  # fmt: skip
    documents = {uri: await served(client, uri) for uri in readable if uri}
    # and what bob's server received
    documents.update({f"sent {i}": doc for i, (_, doc) in enumerate(inboxes.received)})

    # Then none of them has an empty array: the property is left out, but for the items of
    # an empty collection page (as Mastodon's pages; clients walking pages need them)
    def empty(doc: dict[str, Any]) -> list[str]:
        page = doc.get("type") == "OrderedCollectionPage"
        return [where for where in empty_arrays(doc) if not (page and where == "$.orderedItems")]

    assert {uri: empty(doc) for uri, doc in documents.items() if empty(doc)} == {}
    assert documents[f"{alice.uri}/outbox?page=true"]["orderedItems"] != []
    # and what is there is still all there
    assert "cc" not in documents[direct.uri] and "tag" in documents[direct.uri]
    assert "tag" not in documents[public.uri] and "cc" in documents[public.uri]
    assert "orderedItems" not in documents[alice.featured_url or ""]
    assert len(inboxes.of("bob", "Create")) == 1


async def test_posts_stored_before_the_renderer_are_served_without_empty_arrays(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given a post and its Create as an older version stored them, with empty arrays
    alice = await local(context, "alice")
    post = await context.outbox.post(alice, "Hello from before")
    async with context.db.transaction() as session:
        row = await session.get(Object, post.id)
        assert row is not None
        row.data = {**row.data, "tag": [], "attachment": []}
        create = await session.scalar(select(Object).where(Object.type == "Create"))
        assert create is not None
        create.data = {**create.data, "object": row.data, "bto": []}
    # When servers fetch them, Then the empty arrays are left out
    for uri in (post.uri, create.uri):
        assert empty_arrays(await served(client, uri)) == []
