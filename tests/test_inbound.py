"""What we accept from other servers: URLs, addressing, objects by reference, raw records.

Each story has a remote server deliver (or serve) documents the way real servers
write them, or the way a hostile one would, and checks what we store, show and
send on. Stores run on SQLite and PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import delete, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.ap.addressing import visibility_of
from fedisocial.ap.vocab import AS_PUBLIC
from fedisocial.app import Context
from fedisocial.federation.remote import lookup, store_actor
from fedisocial.social.collections import read_page, replies
from fedisocial.social.content import MentionTarget, render
from fedisocial.social.timeline import home_feed
from fedisocial.store.models import Actor, Object, TimelineEntry
from tests import test_inbox
from tests.loopback import serve
from tests.test_inbox import (
    AS2,
    BOB,
    REMOTE,
    Documents,
    activity,
    actor_doc,
    deliver,
    follows,
    note,
    object_row,
    process_jobs,
    remote_key,
    run_jobs,
)

HOSTILE = "javascript:alert(1)"
# the inbox tests' fixtures: the app's context, alice (local) and bob (remote, key known)
alice, bob = test_inbox.alice, test_inbox.bob


@asynccontextmanager
async def remote_server(
    docs: Documents, posted: list[tuple[str, bytes]], gets: list[Request] | None = None
) -> AsyncIterator[str]:
    """A remote server on loopback: serves ``docs`` by path, keeps what is POSTed to it."""

    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            posted.append((request.url.path, await request.body()))
            return Response(status_code=202)
        if gets is not None:
            gets.append(request)
        doc = docs.get(request.url.path)
        if doc is None:
            return Response(status_code=404)
        return Response(orjson.dumps(doc), media_type=AS2)

    app = Starlette(routes=[Route("/{p:path}", endpoint, methods=["GET", "POST"])])
    async with serve(app) as url:
        yield url


# -- 1. remote URLs we store and render are http(s) -------------------------------------


async def test_a_hostile_profile_url_never_reaches_our_html(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    # Given mallory, whose actor document gives javascript: as her profile page and avatar
    docs: Documents = {}
    posted: list[tuple[str, bytes]] = []
    async with remote_server(docs, posted) as origin:
        mallory = f"{origin}/users/mallory"
        icon = {"type": "Image", "url": "javascript:x()"}
        docs["/users/mallory"] = actor_doc(mallory, remote_key("mallory"), url=HOSTILE, icon=icon)
        await lookup(context.db, context.client, mallory)
        # When alice mentions her in a post, which is delivered to mallory's inbox
        post = await context.outbox.post(alice, f"hi @mallory@{urlsplit(origin).netloc}")
        await run_jobs(context)
    # Then nothing we store, serve or deliver carries the javascript: URL
    async with context.db.session() as session:
        stored = await session.scalar(select(Actor).where(Actor.uri == mallory))
    assert stored is not None and stored.url is None and stored.icon_url is None
    assert "@<span>mallory</span>" in post.data["content"]
    assert "javascript:" not in post.data["content"]
    served = await client.get(post.uri, headers={"Accept": AS2})
    assert served.status_code == 200 and "javascript:" not in served.text
    page = await client.get(post.uri, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "javascript:" not in page.text
    delivered = [body for path, body in posted if path == "/users/mallory/inbox"]
    assert delivered and all(b"javascript:" not in body for body in delivered)


def test_a_mention_never_links_to_a_non_http_url() -> None:
    # Given a mention target whose profile URL is not http(s)
    target = MentionTarget("https://remote.example/users/m", HOSTILE, "m@remote.example")
    # When a post mentioning it is rendered
    rendered = render("hi @m@remote.example", {("m", "remote.example"): target}, str)
    # Then the link goes nowhere dangerous
    assert "javascript:" not in rendered.html


async def test_urls_in_a_remote_post_are_http_or_dropped(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice follows bob
    await follows(context, alice.uri, BOB)
    # When bob sends a Note whose url, tag hrefs, emoji and attachments are not http(s)
    post = note(f"{BOB}/notes/urls", url=HOSTILE,
                tag=[{"type": "Mention", "href": HOSTILE, "name": "@x"},
                     {"type": "Hashtag", "href": "data:text/html,<script>", "name": "#x"},
                     {"type": "Hashtag", "href": "https://remote.example/tags/ok", "name": "#ok"},
                     {"type": "Emoji", "name": ":e:",
                      "icon": {"type": "Image", "url": "javascript:e()"}}],
                attachment=[{"type": "Document", "mediaType": "image/png", "url": "//x/a.png"},
                            {"type": "Document", "mediaType": "image/png",
                             "url": "https:///no-host.png"},
                            {"type": "Document", "mediaType": "image/png",
                             "url": "https://remote.example/a.png"}])  # fmt: skip
    assert (await deliver(client, activity("Create", post, name="urls"))).status_code == 202
    await run_jobs(context)
    # Then the stored post keeps only the http(s) ones
    row = await object_row(context, post["id"])
    assert row is not None, (await process_jobs(context))[0].last_error
    text = orjson.dumps(row.data).decode()
    for bad in ("javascript:", "data:", "//x/a.png", "no-host"):
        assert bad not in text
    assert "url" not in row.data
    assert [a["url"] for a in row.data["attachment"]] == ["https://remote.example/a.png"]
    # (a tag keeps its name without its bad link; an emoji without its image goes)
    assert [(t["type"], t.get("href")) for t in row.data["tag"]] == [
        ("Mention", None),
        ("Hashtag", None),
        ("Hashtag", "https://remote.example/tags/ok"),
    ]


# -- 2. addressing: the activity's when the object has none; audience ------------------


def test_audience_counts_for_visibility() -> None:
    followers = f"{BOB}/followers"
    assert visibility_of([], [], followers, audience=[AS_PUBLIC]) == "public"
    assert visibility_of([], [], followers, audience=[followers]) == "followers"
    assert visibility_of([], [], followers) == "direct"


async def test_a_create_whose_object_has_no_addressing_uses_the_activitys(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice follows bob
    await follows(context, alice.uri, BOB)
    # When bob sends a Create addressed to Public whose Note says nothing about its audience
    post = note(f"{BOB}/notes/bare")
    del post["to"], post["cc"]
    create = activity("Create", post, name="bare", to=[AS_PUBLIC], cc=[f"{BOB}/followers"])
    assert (await deliver(client, create)).status_code == 202
    await run_jobs(context)
    # Then the post is public (as Mastodon reads it) and in alice's feed
    row = await object_row(context, post["id"])
    assert row is not None and row.visibility == "public"
    assert row.data["to"] == [AS_PUBLIC]
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [post["id"]]


async def test_an_update_whose_object_has_no_addressing_keeps_the_activitys(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given bob's public post, addressed only on its Create
    await follows(context, alice.uri, BOB)
    post = note(f"{BOB}/notes/bare-edit")
    del post["to"], post["cc"]
    addressing = {"to": [AS_PUBLIC], "cc": [f"{BOB}/followers"]}
    create = activity("Create", post, name="bare-create", **addressing)
    assert (await deliver(client, create)).status_code == 202
    await run_jobs(context)
    # When he edits it, again addressing only the Update
    edited = {**post, "content": "<p>edited</p>"}
    update = activity("Update", edited, name="bare-update", **addressing)
    assert (await deliver(client, update)).status_code == 202
    await run_jobs(context)
    # Then the post is still public (not turned into a direct message) and edited
    row = await object_row(context, post["id"])
    assert row is not None and row.visibility == "public" and "edited" in row.data["content"]


async def test_a_post_addressed_by_audience_only_is_public(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # When bob sends a Note whose only addressing is its audience (FEP-1b12 style)
    post = note(f"{BOB}/notes/audience", audience="as:Public")
    del post["to"], post["cc"]
    assert (await deliver(client, activity("Create", post, name="aud"))).status_code == 202
    await run_jobs(context)
    # Then it is public, not a direct message
    row = await object_row(context, post["id"])
    assert row is not None and row.visibility == "public"


# -- 3. a Create naming its object by id; arrays ----------------------------------------


async def test_a_create_by_id_fetches_the_post_signed_by_our_instance_actor(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    docs: Documents = {}
    gets: list[Request] = []
    async with remote_server(docs, [], gets) as origin:
        # Given carol on her own server, followed by alice, and her post served there
        carol = f"{origin}/users/carol"
        await store_actor(context.db, actor_doc(carol, remote_key("carol")))
        await follows(context, alice.uri, carol)
        docs["/notes/1"] = note(f"{origin}/notes/1", author=carol)
        # When carol sends a Create naming the post only by its id
        create = activity("Create", f"{origin}/notes/1", actor=carol)
        response = await deliver(client, create, signer=carol, key=remote_key("carol"))
        assert response.status_code == 202
        await run_jobs(context)
    # Then the post was fetched (signed as our instance actor), stored and is in alice's feed
    job = (await process_jobs(context))[0]
    assert job.status == "done", job.last_error
    assert [r.url.path for r in gets] == ["/notes/1"]
    assert f'keyId="{context.urls.instance_actor_key}"' in gets[0].headers["signature"]
    row = await object_row(context, f"{origin}/notes/1")
    assert row is not None and row.actor_uri == carol and row.visibility == "public"
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [row.uri]


async def test_a_create_by_id_of_someone_elses_post_is_refused(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    docs: Documents = {}
    async with remote_server(docs, []) as origin:
        # Given dave's post on his own server
        dave = f"{origin}/users/dave"
        docs["/notes/2"] = note(f"{origin}/notes/2", author=dave)
        # When bob sends a Create naming it by id, as if it were his
        assert (await deliver(client, activity("Create", f"{origin}/notes/2"))).status_code == 202
        await run_jobs(context)
    # Then processing fails with the reason, and nothing reaches a feed
    job = (await process_jobs(context))[0]
    assert job.status == "failed"
    assert f"{BOB} cannot create a post attributed to {dave}" in (job.last_error or "")
    assert (await home_feed(context.db, alice.id)).items == []


async def test_a_create_by_id_answered_with_a_post_of_another_host_is_refused(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    docs: Documents = {}
    async with remote_server(docs, []) as origin:
        # Given carol, whose server answers for her post's id with a document of another host
        carol = f"{origin}/users/carol"
        await store_actor(context.db, actor_doc(carol, remote_key("carol")))
        docs["/notes/4"] = note(f"{REMOTE}/notes/4", author=f"{REMOTE}/users/dave")
        # When carol sends a Create naming that id
        create = activity("Create", f"{origin}/notes/4", actor=carol, name="elsewhere")
        response = await deliver(client, create, signer=carol, key=remote_key("carol"))
        assert response.status_code == 202
        await run_jobs(context)
    # Then the job fails with the reason and nothing is stored under either id
    job = (await process_jobs(context))[0]
    assert job.status == "failed"
    assert "whose id is on another host" in (job.last_error or ""), job.last_error
    assert await object_row(context, f"{origin}/notes/4") is None
    assert await object_row(context, f"{REMOTE}/notes/4") is None


async def test_a_create_of_one_post_in_an_array_is_processed(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice follows bob
    await follows(context, alice.uri, BOB)
    # When bob sends a Create whose object is an array holding one Note
    post = note(f"{BOB}/notes/in-array")
    assert (await deliver(client, activity("Create", [post], name="arr"))).status_code == 202
    await run_jobs(context)
    # Then the Note is stored and in alice's feed
    job = (await process_jobs(context))[0]
    assert job.status == "done", job.last_error
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [post["id"]]


async def test_a_create_of_several_objects_is_refused_with_a_reason(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # When bob sends a Create whose object is an array of two Notes
    posts = [note(f"{BOB}/notes/a"), note(f"{BOB}/notes/b")]
    response = await deliver(client, activity("Create", posts, name="two"))
    # Then the delivery is accepted (processing is asynchronous) ...
    assert response.status_code == 202
    await run_jobs(context)
    # ... and the job says why nothing was stored
    job = (await process_jobs(context))[0]
    assert job.status == "failed"
    assert "2 objects" in (job.last_error or ""), job.last_error
    assert await object_row(context, posts[0]["id"]) is None


# -- 4. posts from actors nobody here follows, sent to a person -------------------------


async def test_a_mention_from_someone_nobody_follows_reaches_the_person(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # When bob, whom nobody here follows, mentions alice in a public post sent to her inbox
    post = note(f"{BOB}/notes/hi-alice", cc=[f"{BOB}/followers", alice.uri],
                tag=[{"type": "Mention", "href": alice.uri, "name": "@alice"}])  # fmt: skip
    create = activity("Create", post, name="hi", to=post["to"], cc=post["cc"])
    assert (await deliver(client, create, path="/users/alice/inbox")).status_code == 202
    await run_jobs(context)
    # Then it is stored and in alice's feed
    assert await object_row(context, post["id"]) is not None
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [post["id"]]


async def test_a_reply_to_our_post_reaches_its_author_and_counts(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given a post of alice's
    mine = await context.outbox.post(alice, "what do you think?")
    # When bob, whom nobody here follows, replies publicly without addressing alice,
    # delivered to her personal inbox
    reply = note(f"{BOB}/notes/reply", inReplyTo=mine.uri)
    assert (await deliver(client, activity("Create", reply, name="re"),
                          path="/users/alice/inbox")).status_code == 202  # fmt: skip
    # And a second reply that reaches us through the shared inbox
    other = note(f"{BOB}/notes/reply-2", inReplyTo=mine.uri)
    assert (await deliver(client, activity("Create", other, name="re2"))).status_code == 202
    await run_jobs(context)
    # Then both are stored and counted among the replies of alice's post
    page = await read_page(context.db, replies(mine.uri))
    assert sorted(page.items) == sorted([reply["id"], other["id"]])
    # And both reach alice, whose post they answer
    feed = [i.object.uri for i in (await home_feed(context.db, alice.id)).items]
    assert sorted(feed) == sorted([mine.uri, reply["id"], other["id"]])


# -- 5. the raw JSON is the record ------------------------------------------------------


async def test_an_activity_and_its_post_are_kept_exactly_as_received(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice follows bob
    await follows(context, alice.uri, BOB)
    # When bob sends a Create in the shapes servers really use (strings for lists,
    # compact Public, a Link for the url, an extension) with HTML to clean
    post: dict[str, Any] = {"id": f"{BOB}/notes/raw", "type": "Note", "attributedTo": BOB,
            "content": "<p>hi<script>x()</script></p>", "to": "as:Public",
            "url": {"type": "Link", "href": f"{BOB}/@raw"}, "_misskey_content": "hi"}  # fmt: skip
    create = activity("Create", post, name="raw", to="as:Public")
    assert (await deliver(client, create)).status_code == 202
    await run_jobs(context)
    # Then the activity is stored exactly as sent, and the post's original beside
    # the clean copy we show
    stored = await object_row(context, create["id"])
    assert stored is not None and stored.data == create
    row = await object_row(context, post["id"])
    assert row is not None and row.original == post
    assert "<script" not in row.data["content"] and row.data["to"] == [AS_PUBLIC]
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [post["id"]]


async def test_an_activity_without_id_is_stored_as_sent_and_processed(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given a post of bob's that we have
    post = note(f"{BOB}/notes/gone")
    assert (await deliver(client, activity("Create", post, name="gone"))).status_code == 202
    await run_jobs(context)
    # When bob deletes it with a Delete that has no id (GoToSocial sends some like that)
    deletion = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Delete",
              "actor": BOB, "object": post["id"], "to": AS_PUBLIC}  # fmt: skip
    assert (await deliver(client, deletion)).status_code == 202
    await run_jobs(context)
    # Then it is kept as sent (under an id of ours) and its processing deleted the post
    jobs = await process_jobs(context)
    assert [job.status for job in jobs] == ["done", "done"], jobs[-1].last_error
    async with context.db.session() as session:
        kept = await session.scalar(select(Object).where(Object.type == "Delete"))
    assert kept is not None and kept.data == deletion and kept.uri.startswith(f"{BOB}#")
    gone = await object_row(context, post["id"])
    assert gone is not None and gone.deleted_at is not None
    # And nothing of the deleted post is kept, not even the original we received
    assert gone.original is None and gone.data["type"] == "Tombstone"


async def test_processing_can_be_rerun_from_what_is_stored(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    docs: Documents = {}
    async with remote_server(docs, []) as origin:
        # Given carol's post, fetched by id for her Create, then gone from her server
        carol = f"{origin}/users/carol"
        await store_actor(context.db, actor_doc(carol, remote_key("carol")))
        await follows(context, alice.uri, carol)
        docs["/notes/3"] = note(f"{origin}/notes/3", author=carol, content="<p>kept</p>",
                                to="as:Public")  # fmt: skip
        create = activity("Create", f"{origin}/notes/3", actor=carol)
        response = await deliver(client, create, signer=carol, key=remote_key("carol"))
        assert response.status_code == 202
        await run_jobs(context)
        fetched = docs.pop("/notes/3")
    # When its feed entries are lost and the Create is processed again from the store
    row = await object_row(context, fetched["id"])
    assert row is not None and row.original == fetched
    async with context.db.transaction() as session:
        await session.execute(delete(TimelineEntry))
    stored = await object_row(context, create["id"])
    assert stored is not None
    await context.inbox.process({"object_id": stored.id})
    # Then the same post is back in alice's feed, rebuilt from what we kept
    again = await object_row(context, fetched["id"])
    assert again is not None and again.data == row.data and again.original == fetched
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [row.uri]
