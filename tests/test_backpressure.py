"""Inbox backpressure: past the bound, 503 with Retry-After and nothing stored; below, 202.

Runs on SQLite and PostgreSQL. The backlog is read at most once a second per
process; the tests move an injected clock instead of waiting, and check when a
refused delivery runs again by its ``run_at`` in the jobs table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from fedisocial.app import Context, create_app
from fedisocial.config import Settings, load_settings
from fedisocial.errors import ConfigError
from fedisocial.federation.backpressure import MAX_WAIT, MIN_WAIT, Backpressure
from fedisocial.federation.inbox import PROCESS
from fedisocial.federation.remote import store_actor
from fedisocial.jobs import JobQueue
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.store.db import Database, migrate
from fedisocial.store.models import Actor, Follow, Job, Object, utcnow
from tests.conftest import free_port
from tests.loopback import serve
from tests.test_inbox import AS2, BOB, REMOTE, activity, actor_doc, deliver, remote_key, run_jobs

BOUND = 3


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, inbox_max_backlog=BOUND)


@pytest.fixture
def clock(context: Context) -> Clock:
    clock = Clock()
    context.inbox.backpressure = Backpressure(context.queue, PROCESS, BOUND, clock=clock)
    return clock


@pytest.fixture
async def bob(context: Context) -> Actor:
    return await store_actor(context.db, actor_doc(BOB, remote_key()))


def like(n: int) -> dict[str, object]:
    return activity("Like", f"{REMOTE}/notes/{n}", name=str(n))


async def stored(context: Context, uri: object) -> bool:
    async with context.db.session() as session:
        return await session.scalar(select(Object.id).where(Object.uri == uri)) is not None


async def test_past_the_bound_the_inbox_answers_503_and_stores_nothing(
    client: httpx.AsyncClient, context: Context, clock: Clock, bob: Actor
) -> None:
    # Given as many activities waiting to be processed as the bound allows
    for n in range(BOUND + 1):
        assert (await deliver(client, like(n))).status_code == 202
    # When bob delivers one more, signed or not
    response = await deliver(client, like(99))
    unsigned = await deliver(client, like(98), signed=False)
    # Then it is refused with 503, a Retry-After and the reason, before its signature is read
    assert response.status_code == 503 and unsigned.status_code == 503
    wait = int(response.headers["retry-after"])
    assert wait == MAX_WAIT  # no drain measured yet: the longest wait
    assert response.json()["error"] == (
        f"this server is busy: {BOUND + 1} activities waiting; retry after {wait} s"
    )
    # and nothing of it is stored or queued
    assert not await stored(context, like(99)["id"])
    assert await context.queue.backlog(PROCESS, 100) == BOUND + 1
    # and the activities accepted before are all still there
    assert all([await stored(context, like(n)["id"]) for n in range(BOUND + 1)])


async def test_once_the_backlog_drains_the_inbox_accepts_again(
    client: httpx.AsyncClient, context: Context, clock: Clock, bob: Actor
) -> None:
    # Given an inbox refusing deliveries, its backlog past the bound
    for n in range(BOUND + 1):
        await deliver(client, like(n))
    assert (await deliver(client, like(99))).status_code == 503
    # When the workers process what waits
    await run_jobs(context)
    # Then the figure read less than a second ago still stands
    assert (await deliver(client, like(99))).status_code == 503
    # and once it is read again, the delivery is accepted and stored
    clock.now += 1.0
    assert (await deliver(client, like(99))).status_code == 202
    assert await stored(context, like(99)["id"])


async def test_retry_after_is_the_backlog_over_the_measured_drain_rate(
    client: httpx.AsyncClient, context: Context, clock: Clock, bob: Actor
) -> None:
    # Given a backlog past the bound, and no drain measured yet: the longest wait
    queue, backpressure = context.queue, context.inbox.backpressure
    await queue.enqueue_many(PROCESS, [{"object_id": 0}] * (BOUND + 1))
    assert int((await deliver(client, like(1))).headers["retry-after"]) == MAX_WAIT
    # When the workers finish two of them in the next second
    done = await queue.claim("test", 2)
    await queue.finish_many([job.id for job in done])
    clock.now += 1.0
    # Then the inbox takes deliveries again
    assert (await deliver(client, like(2))).status_code == 202
    # and a backlog past the bound waits for what it takes at two a second, within bounds
    assert backpressure.retry_after(100) == 50
    assert backpressure.retry_after(BOUND + 1) == MIN_WAIT
    assert backpressure.retry_after(10_000) == MAX_WAIT


async def test_a_bound_of_zero_never_refuses(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given an instance without a bound, and a long backlog
    context.inbox.backpressure = Backpressure(context.queue, PROCESS, 0)
    await context.queue.enqueue_many(PROCESS, [{"object_id": 0}] * (BOUND * 3))
    # When bob delivers
    response = await deliver(client, like(1))
    # Then it is accepted
    assert response.status_code == 202 and await stored(context, like(1)["id"])


def test_a_negative_bound_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inbox_max_backlog: must be zero"):
        load_settings(tmp_path / "none.toml", environ={"FEDISOCIAL_INBOX_MAX_BACKLOG": "-1"})


async def test_the_backlog_counts_due_and_running_work_of_one_kind_up_to_a_limit(
    db: Database,
) -> None:
    # Given jobs due, running, later, done and of another kind
    queue = JobQueue(db)
    await queue.enqueue_many(PROCESS, [{"n": n} for n in range(5)])
    later = utcnow() + timedelta(hours=1)
    async with db.transaction() as session:
        JobQueue.add(session, PROCESS, {"n": "later"}, run_at=later)
        JobQueue.add(session, "deliver", {"n": "other"})
    (done,) = await queue.claim("test", 1)
    await queue.finish_many([done.id])
    await queue.claim("test", 1)  # one left running
    # Then the backlog is the four due and the one running (not the later, done or other)
    assert await queue.backlog(PROCESS, 100) == 4
    # and it never counts past its limit
    assert await queue.backlog(PROCESS, 2) == 2


# -- end to end: our delivery to a busy fedisocial inbox -------------------------------


@pytest.fixture
async def busy_remote(tmp_path: Path) -> AsyncIterator[tuple[str, Context]]:
    """Another instance on loopback, with a bound of 1 and two activities waiting."""
    port = free_port()
    root = tmp_path / "remote"
    root.mkdir()
    remote = load_settings(root / "none.toml", environ={
        "FEDISOCIAL_BASE_URL": f"http://127.0.0.1:{port}", "FEDISOCIAL_DATA_DIR": str(root),
        "FEDISOCIAL_ALLOW_PRIVATE_NETWORKS": "true", "FEDISOCIAL_INBOX_MAX_BACKLOG": "1",
    })  # fmt: skip
    database = Database(f"sqlite+aiosqlite:///{root / 'remote.db'}")
    await migrate(database)
    app = create_app(remote, database=database)
    try:
        async with app.router.lifespan_context(app), serve(app, port) as base:
            context: Context = app.state.context
            await context.queue.enqueue_many(PROCESS, [{"object_id": 0}] * 2)
            yield base, context
    finally:
        await database.close()


async def test_our_delivery_to_a_busy_inbox_is_retried_after_its_retry_after(
    context: Context, busy_remote: tuple[str, Context]
) -> None:
    # Given a follower of alice on a busy instance, which answers its shared inbox with 503
    base, remote = busy_remote
    async with httpx.AsyncClient() as probe:
        answer = await probe.post(f"{base}/inbox", content=b"{}", headers={"Content-Type": AS2})
    assert answer.status_code == 503
    wait = int(answer.headers["retry-after"])
    await create_user(context.db, context.urls, "alice", "a good password")
    alice = await find_local_actor(context.db, context.urls, "alice")
    carol = f"{base}/users/carol"
    await store_actor(context.db, {
        "id": carol, "type": "Person", "preferredUsername": "carol", "inbox": f"{carol}/inbox",
        "endpoints": {"sharedInbox": f"{base}/inbox"},
        "publicKey": {"id": f"{carol}#main-key", "owner": carol, "publicKeyPem": "unused"},
    })  # fmt: skip
    async with context.db.transaction() as session:
        session.add(Follow(follower_uri=carol, followee_uri=alice.uri, state="accepted",
                           activity_uri=f"{carol}#follows/1"))  # fmt: skip
    # When alice posts and her delivery to that inbox is tried
    before = utcnow()
    note = await context.outbox.post(alice, "Hello, busy server")
    await run_jobs(context)
    # Then the delivery waits in the queue, to run again no sooner than the Retry-After said
    async with context.db.session() as session:
        (job,) = await session.scalars(select(Job).where(Job.kind == "deliver"))
    assert job.status == "queued" and "HTTP 503" in (job.last_error or "")
    assert job.run_at >= before + timedelta(seconds=wait)
    # and the busy instance stored nothing of it
    async with remote.db.session() as session:
        assert await session.scalar(select(Object.id).where(Object.uri == note.uri)) is None
