"""Replay every real activity in tests/fixtures/activitypub through the inbox.

Each one, signed by a stand-in for its actor (same id, a test key), is either
accepted and processed, or refused with a reason: nothing crashes the server,
no job fails with a bare Python exception, nothing is left half-written. There
is no network here: objects that live on other hosts cannot be fetched, and
their activities must wait for a retry (or be refused) with a clear reason.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from fedisocial.ap.vocab import POST_TYPES, get_id, normalize, same_origin
from fedisocial.app import Context
from fedisocial.federation.inbox import PROCESS
from fedisocial.federation.remote import store_actor
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.social.timeline import home_feed
from fedisocial.store.models import Engagement, Follow, Job, Object
from tests.conftest import FIXTURES
from tests.test_inbox import actor_doc, deliver, follows, remote_key, run_jobs

ACTIVITY_TYPES = frozenset({
    "Accept", "Add", "Announce", "Arrive", "Block", "Create", "Delete", "Dislike", "EmojiReact",
    "Flag", "Follow", "Ignore", "Invite", "Join", "Leave", "Like", "Listen", "Move", "Offer",
    "Read", "Reject", "Remove", "TentativeAccept", "TentativeReject", "Travel", "Undo", "Update",
    "View",
})  # fmt: skip
#: deliveries refused on purpose, and the reason they are given
REFUSED = {
    # the activity's id is on misskey.xyz, its actor on mastodon.example.org: an id on
    # another host could shadow that host's own activity (we dedupe by id)
    "misskey/like-unicode-reaction.json": "not on the host of its actor",
}
#: failures that may pass on a retry: here, no network to fetch other hosts' objects
RETRYABLE_ERROR = re.compile(r"^(RemoteError|DeliveryFailed): ")
PYTHON_ERROR = re.compile(r"^[A-Z]\w*(Error|Exception|Failure|Exit|Interrupt)\b")


def _activities() -> dict[str, bytes]:
    """Fixture name → bytes, for each fixture that is an activity (a type and an actor)."""
    found = {}
    for path in sorted((FIXTURES / "activitypub").rglob("*.json")):
        body = path.read_bytes()
        doc = orjson.loads(body)
        if not isinstance(doc, dict) or not get_id(doc.get("actor")):
            continue
        if normalize(doc).get("type") in ACTIVITY_TYPES:
            found[path.relative_to(FIXTURES / "activitypub").as_posix()] = body
    return found


async def _jobs(context: Context) -> list[Job]:
    async with context.db.session() as session:
        return list(await session.scalars(select(Job).order_by(Job.id)))


async def _row(context: Context, uri: str) -> Object | None:
    async with context.db.session() as session:
        return await session.scalar(select(Object).where(Object.uri == uri))


def _trusted_post(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The post a Create carries, when it can be stored without fetching anything."""
    obj, actor = doc.get("object"), get_id(doc.get("actor")) or ""
    if doc.get("type") != "Create" or not isinstance(obj, dict):
        return None
    post = normalize(obj)
    if post.get("type") not in POST_TYPES or not same_origin(str(post.get("id")), actor):
        return None
    return post


def test_the_replay_covers_the_fixtures() -> None:
    assert len(_activities()) >= 25
    assert set(REFUSED) <= set(_activities())


@pytest.mark.parametrize(("name", "body"), list(_activities().items()), ids=list(_activities()))
async def test_a_real_activity_is_processed_or_refused_clearly(
    client: httpx.AsyncClient, app: Any, name: str, body: bytes
) -> None:
    context: Context = app.state.context
    doc = orjson.loads(body)
    actor = str(get_id(doc["actor"]))
    # Given a stand-in for the fixture's actor (its id, our test key), followed by alice
    await store_actor(context.db, actor_doc(actor, remote_key()))
    await create_user(context.db, context.urls, "alice", "long enough")
    alice = await find_local_actor(context.db, context.urls, "alice")
    await follows(context, alice.uri, actor)
    # When the activity is delivered to the shared inbox, exactly as its server wrote it
    response = await deliver(client, body=body, signer=actor)
    # Then it is accepted, or refused for the stated reason
    if name in REFUSED:
        assert response.status_code == 400
        assert REFUSED[name] in response.json()["error"]
        return
    assert response.status_code == 202, response.text
    # And it is kept exactly as its server wrote it (the raw JSON is the record)
    if isinstance(doc.get("id"), str):
        kept = await _row(context, doc["id"])
        assert kept is not None and kept.data == doc
    await run_jobs(context)
    # And every job finished, or failed (or waits for a retry) with a readable reason
    jobs = await _jobs(context)
    assert [job.kind for job in jobs if job.kind == PROCESS] == [PROCESS]
    for job in jobs:
        if job.status == "failed":
            assert job.last_error and not PYTHON_ERROR.match(job.last_error), job.last_error
        elif job.status == "queued" and job.attempts:
            assert job.last_error and RETRYABLE_ERROR.match(job.last_error), job.last_error
        else:
            assert job.status in ("done", "queued"), (job.kind, job.status, job.last_error)
    # And nothing is half-written: a Create stored its post (in alice's feed) or nothing
    processed = next(job for job in jobs if job.kind == PROCESS)
    if doc.get("type") == "Create" and isinstance(doc.get("object"), dict | str):
        post_id = str(get_id(doc["object"]))
        row = await _row(context, post_id)
        kind = normalize(doc["object"]).get("type") if isinstance(doc["object"], dict) else None
        shown = processed.status == "done" and kind in POST_TYPES
        assert (row is not None) == shown, processed.last_error
        if _trusted_post(doc) is not None:
            assert processed.status == "done", processed.last_error
            assert row is not None and row.actor_uri == actor and row.deleted_at is None
            if row.visibility != "direct":
                feed = (await home_feed(context.db, alice.id)).items
                assert [i.object.uri for i in feed] == [post_id]
    async with context.db.session() as session:
        stored = set(await session.scalars(select(Object.uri)))
        engaged = set(await session.scalars(select(Engagement.activity_uri)))
        followed = set(await session.scalars(select(Follow.activity_uri)))
    assert engaged <= stored
    assert followed - stored <= {f"{alice.uri}/follows/{actor}"}
    # And the server still answers
    assert (await client.get("/.well-known/nodeinfo")).status_code == 200
