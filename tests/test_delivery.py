"""Delivery: one signed POST per distinct inbox, retries, final failures, dead hosts, cancels.

Runs on SQLite and PostgreSQL against a real loopback server that answers
each inbox with the status the test asks for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.ap import httpsig
from fedisocial.app import Context, job_handlers
from fedisocial.federation.remote import store_actor
from fedisocial.jobs import Worker
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.store.models import Actor, Follow, Host, Job, utcnow
from tests.conftest import free_port
from tests.loopback import serve


class Remote:
    """Inboxes on loopback; ``answers`` maps an inbox path to the status it returns."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes, dict[str, str]]] = []
        self.answers: dict[str, tuple[int, dict[str, str]]] = {}

        async def inbox(request: Request) -> Response:
            self.received.append((request.url.path, await request.body(), dict(request.headers)))
            status, headers = self.answers.get(request.url.path, (202, {}))
            return Response(status_code=status, headers=headers)

        self.app = Starlette(routes=[
            Route("/inbox", inbox, methods=["POST"]),
            Route("/users/{name}/inbox", inbox, methods=["POST"]),
        ])  # fmt: skip


@pytest.fixture
async def remote() -> AsyncIterator[tuple[Remote, str]]:
    sink = Remote()
    async with serve(sink.app) as base:
        yield sink, base


async def follower(context: Context, base: str, name: str, *, shared: bool) -> str:
    uri = f"{base}/users/{name}"
    doc: dict[str, Any] = {
        "id": uri, "type": "Person", "preferredUsername": name, "inbox": f"{uri}/inbox",
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": "unused"},
    }  # fmt: skip
    if shared:
        doc["endpoints"] = {"sharedInbox": f"{base}/inbox"}
    await store_actor(context.db, doc)
    alice = await find_local_actor(context.db, context.urls, "alice")
    async with context.db.transaction() as session:
        session.add(Follow(follower_uri=uri, followee_uri=alice.uri, state="accepted",
                           activity_uri=f"{uri}#follows/1"))  # fmt: skip
    return uri


@pytest.fixture
async def context(app: Starlette) -> Context:
    ctx: Context = app.state.context
    await create_user(ctx.db, ctx.urls, "alice", "a good password")
    return ctx


async def run_jobs(context: Context) -> None:
    await Worker(context.queue, job_handlers(context)).run_until_idle()


async def deliver_jobs(context: Context) -> list[Job]:
    async with context.db.session() as session:
        return list(await session.scalars(select(Job).where(Job.kind == "deliver")))


async def test_one_signed_post_per_distinct_inbox(
    context: Context, remote: tuple[Remote, str]
) -> None:
    # Given three followers sharing one shared inbox and one with only a personal inbox
    sink, base = remote
    for name in ("a", "b", "c"):
        await follower(context, base, name, shared=True)
    await follower(context, base, "d", shared=False)
    alice = await find_local_actor(context.db, context.urls, "alice")
    # When alice posts
    note = await context.outbox.post(alice, "Hello followers")
    await run_jobs(context)
    # Then the shared inbox gets it once and the personal inbox once
    paths = sorted(path for path, _, _ in sink.received)
    assert paths == ["/inbox", "/users/d/inbox"]
    # and each POST is the Create, signed with alice's key (verifiable by its key id)
    for path, body, headers in sink.received:
        activity = orjson.loads(body)
        assert activity["type"] == "Create" and activity["object"]["id"] == note.uri
        parsed = httpsig.parse_signature("POST", f"{base}{path}", headers)
        assert parsed.key_id == f"{alice.uri}#main-key"
        httpsig.verify_signature(parsed, httpsig.load_public_key(alice.public_key_pem), body,
                                 now=datetime.now(UTC))  # fmt: skip


@pytest.mark.parametrize(
    ("status", "final"),
    [(404, True), (410, True), (400, True), (401, False), (429, False), (500, False),
     (503, False)],
)  # fmt: skip
async def test_which_failures_are_final(
    context: Context, remote: tuple[Remote, str], status: int, final: bool
) -> None:
    """Most 4xx are final; 401, 408, 429 and 5xx are retried with backoff."""
    sink, base = remote
    await follower(context, base, "f", shared=False)
    sink.answers["/users/f/inbox"] = (status, {})
    alice = await find_local_actor(context.db, context.urls, "alice")
    await context.outbox.post(alice, "Hello")
    await run_jobs(context)
    (job,) = await deliver_jobs(context)
    if final:
        assert job.status == "failed" and f"HTTP {status}" in (job.last_error or "")
    else:
        assert job.status == "queued" and job.run_at > utcnow() + timedelta(seconds=20)
        assert f"HTTP {status}" in (job.last_error or "")


async def test_retry_after_is_honoured(context: Context, remote: tuple[Remote, str]) -> None:
    sink, base = remote
    await follower(context, base, "f", shared=False)
    sink.answers["/users/f/inbox"] = (429, {"Retry-After": "3600"})
    alice = await find_local_actor(context.db, context.urls, "alice")
    await context.outbox.post(alice, "Hello")
    await run_jobs(context)
    (job,) = await deliver_jobs(context)
    assert job.status == "queued" and job.run_at > utcnow() + timedelta(minutes=59)


async def test_a_network_failure_is_retried_and_says_what_happened(context: Context) -> None:
    # Given a follower whose server no longer listens
    gone = f"http://127.0.0.1:{free_port()}"
    await store_actor(context.db, {
        "id": f"{gone}/users/g", "type": "Person", "inbox": f"{gone}/users/g/inbox",
        "publicKey": {"id": f"{gone}/users/g#main-key", "owner": f"{gone}/users/g",
                      "publicKeyPem": "unused"},
    })  # fmt: skip
    alice = await find_local_actor(context.db, context.urls, "alice")
    async with context.db.transaction() as session:
        session.add(Follow(follower_uri=f"{gone}/users/g", followee_uri=alice.uri,
                           state="accepted", activity_uri=f"{gone}/users/g#follows/1"))  # fmt: skip
    # When alice posts
    await context.outbox.post(alice, "Anyone there?")
    await run_jobs(context)
    # Then the delivery waits for a retry, and its error says why
    (job,) = await deliver_jobs(context)
    assert job.status == "queued" and job.run_at > utcnow() + timedelta(seconds=50)
    assert job.last_error == (
        f"RemoteError: could not deliver to {gone}/users/g/inbox: connection refused"
    )


async def test_a_host_failing_for_days_is_skipped_but_probed(
    context: Context, remote: tuple[Remote, str]
) -> None:
    # Given a host that has failed for four days, the last time just now
    sink, base = remote
    await follower(context, base, "f", shared=False)
    sink.answers["/users/f/inbox"] = (503, {})
    alice = await find_local_actor(context.db, context.urls, "alice")
    await context.outbox.post(alice, "first")
    await run_jobs(context)
    domain = base.removeprefix("http://")
    async with context.db.transaction() as session:
        await session.execute(update(Host).where(Host.domain == domain)
                              .values(first_failure_at=utcnow() - timedelta(days=4)))  # fmt: skip
    await context.outbox.post(alice, "second")
    await run_jobs(context)
    async with context.db.session() as session:
        host = await session.get(Host, domain)
    assert host is not None and host.unreachable_since is not None
    # When alice posts again, Then nothing is sent there (no probe due yet)
    before = len(sink.received)
    await context.outbox.post(alice, "third")
    await run_jobs(context)
    assert len(sink.received) == before
    # When the probe is due and the host answers again, Then it is reachable again
    sink.answers.clear()
    async with context.db.transaction() as session:
        await session.execute(update(Host).where(Host.domain == domain)
                              .values(last_failure_at=utcnow() - timedelta(hours=7)))  # fmt: skip
    context.delivery._failing_read_at = 0.0  # forget the cached host health
    await context.outbox.post(alice, "fourth")
    await run_jobs(context)
    assert len(sink.received) == before + 1
    async with context.db.session() as session:
        host = await session.get(Host, domain)
    assert host is not None and host.unreachable_since is None and host.failures == 0


async def test_deleting_a_post_cancels_its_waiting_deliveries(
    context: Context, remote: tuple[Remote, str]
) -> None:
    # Given a post whose delivery is still queued (no worker ran)
    _, base = remote
    await follower(context, base, "f", shared=False)
    alice = await find_local_actor(context.db, context.urls, "alice")
    note = await context.outbox.post(alice, "oops")
    # When alice deletes it
    await context.outbox.delete(alice, note.uri)
    # Then the Create's fan-out is cancelled and only the Delete goes out
    async with context.db.session() as session:
        jobs = {(job.kind, job.status, job.ref) for job in await session.scalars(select(Job))}
    assert ("fanout", "cancelled", note.uri) in jobs
    assert any(kind == "fanout" and status == "queued" for kind, status, _ in jobs)


async def test_an_actor_gone_makes_its_deliveries_final(
    context: Context, remote: tuple[Remote, str]
) -> None:
    _, base = remote
    await follower(context, base, "f", shared=False)
    alice = await find_local_actor(context.db, context.urls, "alice")
    await context.outbox.post(alice, "bye")
    async with context.db.transaction() as session:
        await session.execute(update(Actor).where(Actor.id == alice.id)
                              .values(private_key_pem=None))  # fmt: skip
    await run_jobs(context)
    assert all(job.status == "failed" for job in await deliver_jobs(context))
