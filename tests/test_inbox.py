"""The inbox: signed deliveries in, activities processed as jobs (ActivityPub section 7).

Each test tells one story: a remote actor (stored beforehand, or served on
loopback when the story is about fetching) delivers an activity, signed the
way Mastodon signs (draft-cavage, ``(request-target) host date digest``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.ap import httpsig
from fedisocial.ap.vocab import AS_PUBLIC
from fedisocial.app import Context, job_handlers
from fedisocial.errors import InvalidDocument
from fedisocial.federation.inbox import PROCESS
from fedisocial.federation.remote import fetch_object, store_actor
from fedisocial.jobs import Worker
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.social.timeline import home_feed
from fedisocial.store.models import Actor, Block, Engagement, Follow, Job, Object, utcnow
from tests.loopback import serve

BASE = "http://127.0.0.1:8000"
REMOTE = "https://remote.example"
BOB = f"{REMOTE}/users/bob"
CAROL = f"{REMOTE}/users/carol"
AS2 = "application/activity+json"


# -- helpers (test_inbox_replay.py uses them too) ----------------------------------------


@functools.cache
def remote_key(name: str = "bob") -> httpsig.PrivateKey:
    """One RSA key per name for the whole run (generating one takes a while)."""
    return httpsig.generate_rsa_key()


def actor_doc(uri: str, key: httpsig.PrivateKey, **extra: Any) -> dict[str, Any]:
    """A minimal Mastodon-like actor document for ``uri`` publishing ``key``."""
    return {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": uri,
        "type": "Person",
        "preferredUsername": uri.rstrip("/").rsplit("/", 1)[-1] or "someone",
        "inbox": f"{uri}/inbox",
        "followers": f"{uri}/followers",
        "publicKey": {
            "id": f"{uri}#main-key",
            "owner": uri,
            "publicKeyPem": httpsig.public_key_to_pem(key),
        },
        **extra,
    }


async def deliver(
    client: httpx.AsyncClient,
    activity: dict[str, Any] | None = None,
    *,
    body: bytes | None = None,
    signer: str = BOB,
    key: httpsig.PrivateKey | None = None,
    path: str = "/inbox",
    headers: dict[str, str] | None = None,
    signed: bool = True,
    age: timedelta = timedelta(0),
) -> httpx.Response:
    """POST an activity to one of our inboxes, signed as ``signer`` (key ``#main-key``)."""
    content = body if body is not None else orjson.dumps(activity)
    sent = {"Content-Type": AS2}
    if signed:
        sent |= httpsig.sign_request("POST", BASE + path, sent, content, f"{signer}#main-key",
                                     key or remote_key(), now=utcnow() - age)  # fmt: skip
    return await client.post(path, content=content, headers={**sent, **(headers or {})})


async def run_jobs(context: Context) -> None:
    await Worker(context.queue, job_handlers(context)).run_until_idle()


def note(uri: str, author: str = BOB, **extra: Any) -> dict[str, Any]:
    return {"id": uri, "type": "Note", "attributedTo": author, "content": "<p>hello</p>",
            "published": "2026-11-26T07:39:30Z", "to": [AS_PUBLIC],
            "cc": [f"{author}/followers"], **extra}  # fmt: skip


def activity(
    kind: str, obj: Any, actor: str = BOB, name: str = "1", **extra: Any
) -> dict[str, Any]:
    return {"@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{actor}/activities/{kind.lower()}-{name}", "type": kind, "actor": actor,
            "object": obj, **extra}  # fmt: skip


async def count(context: Context, model: type[Any], *where: Any) -> int:
    async with context.db.session() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def object_row(context: Context, uri: str) -> Object | None:
    async with context.db.session() as session:
        return await session.scalar(select(Object).where(Object.uri == uri))


async def process_jobs(context: Context) -> list[Job]:
    async with context.db.session() as session:
        return list(await session.scalars(select(Job).where(Job.kind == PROCESS).order_by(Job.id)))


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
async def alice(context: Context) -> Actor:
    await create_user(context.db, context.urls, "alice", "long enough", display_name="Alice")
    return await find_local_actor(context.db, context.urls, "alice")


@pytest.fixture
async def bob(context: Context) -> Actor:
    """A remote actor whose key we already have."""
    return await store_actor(context.db, actor_doc(BOB, remote_key()))


async def follows(context: Context, follower: str, followee: str) -> None:
    async with context.db.transaction() as session:
        session.add(Follow(follower_uri=follower, followee_uri=followee, state="accepted",
                           activity_uri=f"{follower}/follows/{followee}"))  # fmt: skip


Documents = dict[str, dict[str, Any]]


@asynccontextmanager
async def remote_host(docs: Documents, hits: list[str] | None = None) -> AsyncIterator[str]:
    """A remote server on loopback serving ``docs`` by path (filled in once its URL is known)."""

    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            return Response(status_code=202)
        if hits is not None:
            hits.append(request.url.path)
        doc = docs.get(request.url.path)
        if doc is None:
            return Response(status_code=404)
        return Response(orjson.dumps(doc), media_type=AS2)

    async with serve(
        Starlette(routes=[Route("/{p:path}", endpoint, methods=["GET", "POST"])])
    ) as url:
        yield url


# -- accepting: HTTP and signatures ----------------------------------------------------


async def test_a_signed_delivery_is_accepted_then_processed(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given bob, whose key we have, and a Like of nothing we know
    like = activity("Like", f"{REMOTE}/notes/unknown")
    # When he delivers it
    response = await deliver(client, like)
    # Then it is accepted at once, stored as received, and processed as a job
    assert response.status_code == 202 and response.json() == {}
    stored = await object_row(context, like["id"])
    assert stored is not None and stored.type == "Like" and stored.actor_uri == BOB
    assert [job.status for job in await process_jobs(context)] == ["queued"]
    await run_jobs(context)
    assert [job.status for job in await process_jobs(context)] == ["done"]


async def test_an_unsigned_delivery_is_refused(client: httpx.AsyncClient, bob: Actor) -> None:
    response = await deliver(client, activity("Like", f"{REMOTE}/notes/1"), signed=False)
    assert response.status_code == 401
    assert "not signed" in response.json()["error"]


@pytest.mark.parametrize(
    ("story", "change", "reason"),
    [
        ("signed with another key", {"key": "mallory"}, "signature does not match"),
        ("body changed after signing", {"body": "another object"}, "Digest does not match"),
        ("a wrong Digest", {"headers": {"Digest": "SHA-256=" + "A" * 43 + "="}},
         "Digest does not match"),
        ("signed 13 hours ago", {"age": timedelta(hours=13)}, "outside the 12 hour window"),
    ],
)  # fmt: skip
async def test_a_bad_signature_is_refused_with_its_reason(
    client: httpx.AsyncClient, context: Context, bob: Actor,
    story: str, change: dict[str, Any], reason: str,
) -> None:  # fmt: skip
    # Given a delivery that is wrong in one way
    like = activity("Like", f"{REMOTE}/notes/1")
    options: dict[str, Any] = {**change}
    if "key" in options:
        options["key"] = remote_key(options["key"])
    if "body" in options:  # sign the real body, send another one
        signed = httpsig.sign_request(
            "POST", BASE + "/inbox", {"Content-Type": AS2}, orjson.dumps(like), f"{BOB}#main-key",
            remote_key(),
        )  # fmt: skip
        tampered = orjson.dumps({**like, "object": f"{REMOTE}/notes/2"})
        options = {"headers": signed, "body": tampered, "signed": False}
    # When it arrives
    response = await deliver(client, like, **options)
    # Then it is refused with a reason the sender's admin can act on, and nothing is kept
    assert response.status_code == 401, story
    assert reason in response.json()["error"], story
    assert await count(context, Object, Object.type == "Like") == 0


async def test_a_delivery_signed_for_another_host_is_refused(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given a Like that bob signed for other.example's inbox (Host: other.example)
    like = activity("Like", f"{REMOTE}/notes/1")
    body = orjson.dumps(like)
    sent = {"Content-Type": AS2}
    sent |= httpsig.sign_request("POST", "https://other.example/inbox", sent, body,
                                 f"{BOB}#main-key", remote_key())  # fmt: skip
    # When someone replays it to our inbox, Host header and all
    response = await client.post("/inbox", content=body, headers=sent)
    # Then it is refused with the host it was signed for, and nothing is kept
    assert response.status_code == 401
    assert "signed for host other.example, not ours (127.0.0.1:8000)" in response.json()["error"]
    assert await count(context, Object, Object.type == "Like") == 0


async def test_the_signer_must_be_the_actor(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given carol, also known, and bob signing an activity in carol's name
    await store_actor(context.db, actor_doc(CAROL, remote_key("carol")))
    forged = activity("Like", f"{REMOTE}/notes/1", actor=CAROL)
    # When bob delivers it
    response = await deliver(client, forged, signer=BOB)
    # Then it is refused: a key speaks only for its owner
    assert response.status_code == 403
    assert f"signed with the key of {BOB}" in response.json()["error"]


async def test_an_activity_id_on_another_host_is_refused(
    client: httpx.AsyncClient, bob: Actor
) -> None:
    like = activity("Like", f"{REMOTE}/notes/1", id="https://elsewhere.example/likes/1")
    response = await deliver(client, like)
    assert response.status_code == 400
    assert "not on the host of its actor" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"[1, 2]", AS2, 400, "JSON but not an object"),
        (b"{not json", AS2, 400, "body is not JSON"),
        (b'{"type": "Like"}', "text/plain", 415, "application/activity+json"),
        (b"{}", "", 415, "without a type"),
        (b'{"a": "' + b"x" * 1_048_576 + b'"}', AS2, 413, "at most 1048576 bytes"),
    ],
)
async def test_malformed_deliveries_get_the_right_status(
    client: httpx.AsyncClient, bob: Actor, body: bytes, content_type: str, status: int, reason: str
) -> None:
    response = await deliver(client, body=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert reason in response.json()["error"]


@pytest.mark.parametrize("depth", [1000, 1100])
async def test_json_nested_too_deep_is_refused_before_it_is_walked(
    client: httpx.AsyncClient, context: Context, bob: Actor, depth: int
) -> None:
    # Given a signed Like whose object is an array nested 1,000 levels deep (or past orjson's cap)
    like = activity("Like", f"{REMOTE}/notes/1")
    nested = b"[" * depth + orjson.dumps(f"{REMOTE}/notes/1") + b"]" * depth
    body = orjson.dumps({**like, "object": "NESTED"}).replace(b'"NESTED"', nested)
    # When it is delivered
    response = await deliver(client, body=body)
    # Then it is refused as bad input, and nothing is kept
    assert response.status_code == 400, response.text
    assert "JSON nested deeper than 64 levels" in response.json()["error"]
    assert await count(context, Object, Object.type == "Like") == 0


async def test_a_fetched_document_nested_too_deep_is_refused(context: Context) -> None:
    # Given a remote server whose post is nested 1,000 levels deep
    async def deep(request: Request) -> Response:
        url = orjson.dumps(str(request.url))
        nested = b"[" * 1000 + url + b"]" * 1000
        body = b'{"id": %s, "type": "Note", "attributedTo": %s}' % (url, nested)
        return Response(body, media_type=AS2)

    async with serve(Starlette(routes=[Route("/notes/1", deep)])) as origin:
        # When we fetch it / Then it is refused as an unusable document, and not stored
        with pytest.raises(InvalidDocument, match="JSON nested deeper than 64 levels"):
            await fetch_object(context.db, context.client, f"{origin}/notes/1")
        assert await object_row(context, f"{origin}/notes/1") is None


async def test_a_body_streamed_past_the_cap_is_cut_off(
    client: httpx.AsyncClient, bob: Actor
) -> None:
    # Given a sender that streams its body without a Content-Length
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100_000

    # When it goes past 1 MB, then it gets 413
    response = await client.post("/inbox", content=chunks(), headers={"Content-Type": AS2})
    assert response.status_code == 413


async def test_these_content_types_are_accepted(client: httpx.AsyncClient, bob: Actor) -> None:
    for name, content_type in enumerate(
        ['application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
         "application/json; charset=utf-8", "Application/Activity+JSON"]
    ):  # fmt: skip
        like = activity("Like", f"{REMOTE}/notes/1", name=str(name))
        response = await deliver(client, like, headers={"Content-Type": content_type})
        assert response.status_code == 202, content_type


async def test_a_nul_character_is_refused(client: httpx.AsyncClient, bob: Actor) -> None:
    like = activity("Like", f"{REMOTE}/notes/1", content="\u0000")
    response = await deliver(client, like)
    assert response.status_code == 400 and "NUL" in response.json()["error"]


async def test_personal_inboxes(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # When bob delivers to alice's inbox, and to the inbox of someone who does not exist
    like = activity("Like", f"{REMOTE}/notes/1")
    to_alice = await deliver(client, like, path="/users/alice/inbox")
    to_nobody = await deliver(client, like, path="/users/nobody/inbox")
    # And to the instance actor's inbox (where relays deliver)
    relayed = activity("Like", f"{REMOTE}/notes/1", name="relayed")
    to_instance = await deliver(client, relayed, path="/actor/inbox")
    # Then alice's inbox and the instance's take it, and the other answers 404 with a message
    assert (to_alice.status_code, to_instance.status_code) == (202, 202)
    recipients = [job.payload["recipient"] for job in await process_jobs(context)]
    assert recipients == ["alice", context.urls.netloc]
    assert to_nobody.status_code == 404 and "nobody" in to_nobody.json()["error"]


async def test_a_redelivered_activity_is_acknowledged_and_processed_once(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice's post, liked by bob
    post = await context.outbox.post(alice, "hello")
    like = activity("Like", post.uri)
    # When bob's server delivers the Like three times at once, and again later
    at_once = await asyncio.gather(*(deliver(client, like) for _ in range(3)))
    later = await deliver(client, like)
    await run_jobs(context)
    # Then all are acknowledged, but it is stored, queued and counted once
    assert [r.status_code for r in [*at_once, later]] == [202] * 4
    assert len(await process_jobs(context)) == 1
    assert await count(context, Engagement, Engagement.object_uri == post.uri) == 1


async def test_a_rotated_key_is_fetched_again_once(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given bob on a real server, whose key we cached an hour ago; he has a new key since
    docs: Documents = {}
    hits: list[str] = []
    async with remote_host(docs, hits) as origin:
        uri = f"{origin}/users/bob"
        await store_actor(context.db, actor_doc(uri, remote_key("old")))
        async with context.db.transaction() as session:
            await session.execute(update(Actor).where(Actor.uri == uri)
                                  .values(fetched_at=utcnow() - timedelta(hours=1)))  # fmt: skip
        docs["/users/bob"] = actor_doc(uri, remote_key("new"))
        # When he delivers an activity signed with the new key
        like = activity("Like", f"{origin}/notes/1", actor=uri)
        response = await deliver(client, like, signer=uri, key=remote_key("new"))
        # Then the old key fails, the key is fetched again once, and the delivery verifies
        assert response.status_code == 202
        assert hits == ["/users/bob"]
        # And a delivery signed with a key he never had fails without another fetch
        forged = activity("Like", f"{origin}/notes/2", actor=uri)
        refused = await deliver(client, forged, signer=uri, key=remote_key("mallory"))
        assert refused.status_code == 401 and hits == ["/users/bob"]


async def test_the_self_delete_of_an_unknown_actor_is_acknowledged(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given an actor we never heard of, whose server deletes them (their key is gone with them)
    gone = f"{REMOTE}/users/gone"
    delete = activity("Delete", gone, actor=gone)
    # When the Delete arrives, then it is acknowledged without fetching or storing anything
    response = await deliver(client, delete, signer=gone)
    assert response.status_code == 202
    assert await object_row(context, delete["id"]) is None


# -- follows ----------------------------------------------------------------------------


async def test_a_follow_is_accepted_and_the_accept_is_sent(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # When bob follows alice
    follow = activity("Follow", alice.uri)
    assert (await deliver(client, follow)).status_code == 202
    await run_jobs(context)
    # Then he is her follower, and an Accept of his Follow is on its way to him
    async with context.db.session() as session:
        row = await session.scalar(select(Follow).where(Follow.activity_uri == follow["id"]))
        accept = await session.scalar(select(Object).where(Object.type == "Accept"))
        fanout = await session.scalar(select(Job).where(Job.kind == "fanout"))
    assert row is not None and row.state == "accepted" and row.follower_uri == BOB
    assert accept is not None and accept.data["object"]["id"] == follow["id"]
    assert accept.data["actor"] == alice.uri and accept.data["to"] == [BOB]
    assert fanout is not None and fanout.payload["activity"] == accept.uri


async def test_a_follow_waits_when_followers_are_approved_by_hand(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice approves her followers by hand
    async with context.db.transaction() as session:
        await session.execute(update(Actor).where(Actor.id == alice.id)
                              .values(manually_approves_followers=True))  # fmt: skip
    # When bob follows her
    await deliver(client, activity("Follow", alice.uri))
    await run_jobs(context)
    # Then his request waits, unanswered
    async with context.db.session() as session:
        row = await session.scalar(select(Follow).where(Follow.follower_uri == BOB))
    assert row is not None and row.state == "pending"
    assert await count(context, Object, Object.type.in_(("Accept", "Reject"))) == 0


async def test_a_blocked_actor_is_rejected(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice blocked bob
    async with context.db.transaction() as session:
        session.add(Block(blocker_uri=alice.uri, blocked_uri=BOB, activity_uri=f"{alice.uri}#b"))
    # When he tries to follow her, then he is told no and does not follow her
    await deliver(client, activity("Follow", alice.uri))
    await run_jobs(context)
    assert await count(context, Follow) == 0
    assert await count(context, Object, Object.type == "Reject") == 1


async def test_undo_follow(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given bob follows alice
    follow = activity("Follow", alice.uri)
    await deliver(client, follow)
    await run_jobs(context)
    # When he undoes his Follow
    await deliver(client, activity("Undo", follow))
    await run_jobs(context)
    # Then he no longer follows her
    assert await count(context, Follow) == 0


async def test_accept_and_reject_of_our_follows(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice asked to follow bob, and carol
    await store_actor(context.db, actor_doc(CAROL, remote_key("carol")))
    to_bob = await context.outbox.follow(alice, BOB)
    to_carol = await context.outbox.follow(alice, CAROL)
    # When bob accepts (naming the Follow by id) and carol rejects (embedding it)
    await deliver(client, activity("Accept", to_bob.uri))
    await deliver(client, activity("Reject", to_carol.data, actor=CAROL), signer=CAROL,
                  key=remote_key("carol"))  # fmt: skip
    # And carol also claims to accept alice's follow of bob
    await deliver(client, activity("Accept", to_bob.uri, actor=CAROL, name="2"), signer=CAROL,
                  key=remote_key("carol"))  # fmt: skip
    await run_jobs(context)
    # Then alice follows bob, not carol; and carol could not answer for bob
    async with context.db.session() as session:
        rows = {f.followee_uri: f.state for f in await session.scalars(select(Follow))}
        failed = await session.scalar(select(Job).where(Job.status == "failed"))
    assert rows == {BOB: "accepted"}
    assert failed is not None and f"only {BOB} can answer" in (failed.last_error or "")


# -- posts ------------------------------------------------------------------------------


async def test_a_post_is_sanitized_and_reaches_the_followers_feed(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice follows bob
    await follows(context, alice.uri, BOB)
    # When bob posts a Note with hostile HTML, an image, a mention and a hashtag
    hostile = ('<p onclick="steal()">hi <script>alert(1)</script><img src="x">'
               '<a href="javascript:evil()">link</a> <a href="https://x.example/tags/cats" '
               'class="mention hashtag" rel="tag">#cats</a></p>')  # fmt: skip
    post = note(f"{BOB}/notes/1", content=hostile, summary="<b>cw</b><style>x</style>",
                sensitive=True, inReplyTo=f"{REMOTE}/notes/0",
                attachment={"type": "Document", "mediaType": "image/png",
                            "url": [{"type": "Link", "href": "https://remote.example/a.png"}],
                            "name": "a cat", "blurhash": "LEHV6n"},
                tag=[{"type": "Mention", "href": alice.uri, "name": "@alice"},
                     {"type": "Hashtag", "href": "https://x.example/tags/cats",
                      "name": "#cats"}])  # fmt: skip
    assert (await deliver(client, activity("Create", post))).status_code == 202
    await run_jobs(context)
    # Then the post is stored clean, with its media as references
    row = await object_row(context, post["id"])
    assert row is not None and row.actor_uri == BOB and row.visibility == "public"
    content = row.data["content"]
    for bad in ("onclick", "<script", "<img", "javascript:", "<style"):
        assert bad not in content + row.data["summary"]
    assert "hi" in content and "#cats" in content and row.data["summary"] == "<b>cw</b>"
    assert row.data["sensitive"] is True and row.in_reply_to == f"{REMOTE}/notes/0"
    assert row.data["attachment"] == [{"type": "Document", "mediaType": "image/png",
                                       "url": "https://remote.example/a.png", "name": "a cat",
                                       "blurhash": "LEHV6n"}]  # fmt: skip
    assert [t["type"] for t in row.data["tag"]] == ["Mention", "Hashtag"]
    # And it is in alice's home feed
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [post["id"]]


async def test_a_post_embedded_from_another_host_is_not_trusted(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given carol's real post on her own server, and alice following bob
    await follows(context, alice.uri, BOB)
    docs: Documents = {}
    async with remote_host(docs) as origin:
        carol = f"{origin}/users/carol"
        real = note(f"{origin}/notes/1", author=carol, content="<p>the real words</p>")
        docs["/notes/1"] = real
        # When bob sends a Create embedding a forged copy of it, attributed to himself
        forged = {**real, "attributedTo": BOB, "content": "<p>forged words</p>"}
        assert (await deliver(client, activity("Create", forged))).status_code == 202
        await run_jobs(context)
    # Then the post was fetched from its own host, bob's claim refused, and nothing forged kept
    row = await object_row(context, real["id"])
    assert row is None or (row.actor_uri == carol and "real words" in row.data["content"])
    assert (await home_feed(context.db, alice.id)).items == []
    failed = (await process_jobs(context))[0]
    assert failed.status == "failed"
    assert f"{BOB} cannot create a post attributed to {carol}" in (failed.last_error or "")


async def test_a_post_from_an_unreachable_host_is_refused_clearly(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given a Create embedding a post on a host that does not answer (here: 404)
    async with remote_host({}) as origin:
        post = note(f"{origin}/notes/404", author=BOB)
        await deliver(client, activity("Create", post))
        await run_jobs(context)
    # Then nothing is stored and the job says why
    assert await object_row(context, post["id"]) is None
    job = (await process_jobs(context))[0]
    assert job.status == "failed" and "answered HTTP 404" in (job.last_error or "")


async def test_a_post_with_a_uri_too_long_to_store_is_refused_clearly(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    post = note(f"{BOB}/notes/1", inReplyTo=f"{REMOTE}/notes/{'9' * 3000}")
    await deliver(client, activity("Create", post))
    await run_jobs(context)
    assert await object_row(context, post["id"]) is None
    job = (await process_jobs(context))[0]
    assert job.status == "failed" and "inReplyTo is longer than 2048" in (job.last_error or "")


async def test_an_edit_keeps_its_updated_time_and_only_the_author_may_edit(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given bob's post, and carol on bob's server
    await store_actor(context.db, actor_doc(CAROL, remote_key("carol")))
    post = note(f"{BOB}/notes/1")
    await deliver(client, activity("Create", post))
    await run_jobs(context)
    # When bob edits it, and carol tries to edit it too
    edited = {**post, "content": "<p>edited</p>", "updated": "2026-11-27T10:00:00Z"}
    await deliver(client, activity("Update", edited))
    hijack = {**post, "attributedTo": CAROL, "content": "<p>carol was here</p>"}
    await deliver(client, activity("Update", hijack, actor=CAROL), signer=CAROL,
                  key=remote_key("carol"))  # fmt: skip
    await run_jobs(context)
    # Then the post has bob's edit with its time, and carol was refused
    row = await object_row(context, post["id"])
    assert row is not None and row.data["content"] == "<p>edited</p>"
    assert row.data["updated"] == "2026-11-27T10:00:00Z"
    statuses = [job.status for job in await process_jobs(context)]
    assert statuses == ["done", "done", "failed"]


async def test_a_profile_update_is_stored(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    new_profile = actor_doc(BOB, remote_key(), name="Bob B.", summary="<p>new bio</p>")
    await deliver(client, activity("Update", new_profile))
    await run_jobs(context)
    async with context.db.session() as session:
        stored = await session.scalar(select(Actor).where(Actor.uri == BOB))
    assert stored is not None and stored.name == "Bob B."


# -- likes, boosts, reactions -----------------------------------------------------------


async def test_likes_boosts_and_reactions_are_counted_and_undone(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice's post
    post = await context.outbox.post(alice, "hello fediverse")
    like = activity("Like", post.uri)
    boost = activity("Announce", post.uri, to=[AS_PUBLIC])
    misskey = activity("Like", post.uri, name="2", _misskey_reaction="🍮", content="🍮")
    pleroma = activity("EmojiReact", post.uri, content="🔥")
    # When bob likes, boosts and reacts to it (Misskey and Pleroma style)
    for sent in (like, boost, misskey, pleroma):
        assert (await deliver(client, sent)).status_code == 202
    await run_jobs(context)

    async def counts() -> dict[str, int]:
        async with context.db.session() as session:
            rows = await session.execute(select(Engagement.kind, func.count())
                                         .where(Engagement.object_uri == post.uri)
                                         .group_by(Engagement.kind))  # fmt: skip
            return {kind: number for kind, number in rows}

    # Then each is counted
    assert await counts() == {"like": 1, "announce": 1, "reaction": 2}
    # When he undoes the like (embedded) and the boost (by id only)
    await deliver(client, activity("Undo", like, name="a"))
    await deliver(client, activity("Undo", boost["id"], name="b"))
    await run_jobs(context)
    # Then only the reactions are left
    assert await counts() == {"reaction": 2}


async def test_a_boost_fetches_the_post_and_reaches_the_boosters_followers(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice follows bob, and carol's post lives on another server
    await follows(context, alice.uri, BOB)
    docs: Documents = {}
    async with remote_host(docs) as origin:
        carol = f"{origin}/users/carol"
        docs["/notes/1"] = note(f"{origin}/notes/1", author=carol, content="<p>carol's<script>")
        # When bob boosts carol's post, naming it by id only
        boost = activity("Announce", f"{origin}/notes/1", to=[AS_PUBLIC], cc=[f"{BOB}/followers"])
        await deliver(client, boost)
        await run_jobs(context)
    # Then the post was fetched (and sanitized), the boost counted, and alice sees the boost
    row = await object_row(context, f"{origin}/notes/1")
    assert row is not None and row.actor_uri == carol and "<script" not in row.data["content"]
    assert await count(context, Engagement, Engagement.kind == "announce") == 1
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [boost["id"]]


async def test_a_like_of_something_we_do_not_have_is_ignored(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    await deliver(client, activity("Like", f"{REMOTE}/notes/unknown"))
    await run_jobs(context)
    assert await count(context, Engagement) == 0
    assert [job.status for job in await process_jobs(context)] == ["done"]


# -- deletes and blocks -----------------------------------------------------------------


async def test_a_deleted_post_becomes_a_tombstone(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given bob's post in alice's feed, and carol (on bob's server) who did not write it
    await follows(context, alice.uri, BOB)
    await store_actor(context.db, actor_doc(CAROL, remote_key("carol")))
    post = note(f"{BOB}/notes/1")
    await deliver(client, activity("Create", post))
    await run_jobs(context)
    # When carol tries to delete it, then bob deletes it
    await deliver(client, activity("Delete", post["id"], actor=CAROL), signer=CAROL,
                  key=remote_key("carol"))  # fmt: skip
    await deliver(client, activity("Delete", {"id": post["id"], "type": "Tombstone"}))
    await run_jobs(context)
    # Then it is a tombstone, gone from the feed; carol's attempt was refused
    row = await object_row(context, post["id"])
    assert row is not None and row.deleted_at is not None
    assert row.data["type"] == "Tombstone" and row.data["formerType"] == "Note"
    assert (await home_feed(context.db, alice.id)).items == []
    assert [job.status for job in await process_jobs(context)] == ["done", "failed", "done"]


async def test_a_delete_that_overtakes_its_create_wins(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given bob's Delete of a post is processed before the Create of that post
    post = note(f"{BOB}/notes/1")
    await deliver(client, activity("Delete", post["id"]))
    await run_jobs(context)
    await deliver(client, activity("Create", post))
    await run_jobs(context)
    # Then the post stays deleted, and the late Create says why it was not stored
    row = await object_row(context, post["id"])
    assert row is not None and row.deleted_at is not None and row.data["type"] == "Tombstone"
    late = (await process_jobs(context))[-1]
    assert late.status == "failed" and "was deleted" in (late.last_error or "")


async def test_an_actor_deleting_itself_takes_its_content_along(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given bob follows alice, likes her post, and has a post of his own in her feed
    await follows(context, alice.uri, BOB)
    await follows(context, BOB, alice.uri)
    post = await context.outbox.post(alice, "hello")
    await deliver(client, activity("Like", post.uri))
    await deliver(client, activity("Create", note(f"{BOB}/notes/1")))
    await run_jobs(context)
    assert len((await home_feed(context.db, alice.id)).items) == 2
    # When his account is deleted
    await deliver(client, activity("Delete", actor_doc(BOB, remote_key())))
    await run_jobs(context)
    # Then his follows, likes, posts and actor row are gone; alice keeps her post
    assert await count(context, Follow) == 0
    assert await count(context, Engagement) == 0
    assert await count(context, Actor, Actor.uri == BOB) == 0
    row = await object_row(context, f"{BOB}/notes/1")
    assert row is not None and row.deleted_at is not None and row.data["type"] == "Tombstone"
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [post.uri]


async def test_a_block_ends_follows_both_ways(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    await follows(context, alice.uri, BOB)
    await follows(context, BOB, alice.uri)
    block = activity("Block", alice.uri)
    await deliver(client, block)
    await run_jobs(context)
    assert await count(context, Follow) == 0
    assert await count(context, Block, Block.blocker_uri == BOB) == 1
    await deliver(client, activity("Undo", block))
    await run_jobs(context)
    assert await count(context, Block) == 0


async def test_undoing_someone_elses_activity_is_refused(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given bob likes alice's post
    post = await context.outbox.post(alice, "hello")
    like = activity("Like", post.uri)
    await deliver(client, like)
    # When carol undoes bob's like, by id
    await store_actor(context.db, actor_doc(CAROL, remote_key("carol")))
    await deliver(client, activity("Undo", like["id"], actor=CAROL), signer=CAROL,
                  key=remote_key("carol"))  # fmt: skip
    await run_jobs(context)
    # Then the like stays, and the Undo is refused with a reason
    assert await count(context, Engagement) == 1
    refused = (await process_jobs(context))[-1]
    assert refused.status == "failed"
    assert f"{CAROL} cannot undo an activity of {BOB}" in (refused.last_error or "")


# -- the rest ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Flag", "Move", "Listen", "Bite"])
async def test_other_types_are_stored_and_ignored(
    client: httpx.AsyncClient, context: Context, bob: Actor, kind: str
) -> None:
    sent = activity(kind, f"{REMOTE}/notes/1")
    assert (await deliver(client, sent)).status_code == 202
    await run_jobs(context)
    row = await object_row(context, sent["id"])
    assert row is not None and row.type == kind
    assert [job.status for job in await process_jobs(context)] == ["done"]


def test_handlers_cover_the_issue() -> None:
    """The dispatch table names every activity the issue lists."""
    from fedisocial.federation.inbox import HANDLERS

    wanted: list[tuple[str, str | None]] = [
        ("Follow", None), ("Accept", "Follow"), ("Reject", "Follow"), ("Undo", "Follow"),
        ("Undo", "Like"), ("Undo", "Announce"), ("Undo", "Block"), ("Create", "Note"),
        ("Create", "Article"), ("Create", "Page"), ("Create", "Question"), ("Update", "Note"),
        ("Update", "Person"), ("Delete", None), ("Like", None), ("Announce", None),
        ("EmojiReact", None), ("Block", None),
    ]  # fmt: skip
    assert [key for key in wanted if key not in HANDLERS] == []
