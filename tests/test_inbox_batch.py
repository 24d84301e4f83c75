"""Batched inbox processing stores exactly what processing one activity at a time stores.

The same story of deliveries — good, duplicate, malformed, unauthorized and out of
order (an Update before its Create, an Undo before its Like, a Delete before its
Create) — is played twice on one instance (``db``: SQLite and PostgreSQL), by two
pairs of remote actors: once processed one job at a time, once all in one batch.
What is stored (posts, tombstones, engagements, follows, alice's feed, the job
outcomes and their reasons) must be the same, names aside.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy import select

from fedisocial.app import Context, job_handlers
from fedisocial.federation.inbox import PROCESS, PROCESS_RETRY
from fedisocial.federation.remote import store_actor
from fedisocial.jobs import ClaimedJob, JobKind, JobQueue, Worker
from fedisocial.store.models import Actor, Engagement, Follow, Job, Object, TimelineEntry
from tests import test_inbox
from tests.conftest import run_worker_until
from tests.test_inbox import REMOTE, activity, actor_doc, deliver, follows, note, remote_key

alice = test_inbox.alice


def _story(author: str, other: str, tag: str) -> list[tuple[str, dict[str, Any]]]:
    """(signer, activity) in delivery order; ids carry ``tag`` so the two runs never meet."""
    post = f"{author}/statuses/{tag}"

    def act(kind: str, obj: Any, name: str, actor: str = author, **extra: Any) -> dict[str, Any]:
        return activity(kind, obj, actor, f"{tag}-{name}", **extra)

    like = act("Like", f"{post}-1", "like")
    taken_back = act("Like", f"{post}-2", "like-taken-back", actor=other)
    return [
        (author, act("Create", note(f"{post}-1", author), "create-1")),
        # the same post again, in another activity (a relay's copy): stored once
        (author, act("Create", note(f"{post}-1", author), "create-1-again")),
        # out of order: the edit before its post (nothing to edit yet), then the post
        (author, act("Update", note(f"{post}-2", author, content="<p>edited</p>"), "update-2")),
        (author, act("Create", note(f"{post}-2", author), "create-2")),
        # out of order: the Undo before its Like (nothing to undo), then the Like
        (author, act("Undo", like, "undo-like")),
        (author, like),
        (other, act("Like", f"{post}-1", "like-other", actor=other)),
        (other, act("Announce", f"{post}-1", "boost", actor=other)),
        # in order within one batch: a Like, then its Undo (written at the batch's end)
        (other, taken_back),
        (other, act("Undo", taken_back, "undo-taken-back", actor=other)),
        # the Delete before its Create: the tombstone keeps the late Create out
        (author, act("Delete", f"{post}-3", "delete-3")),
        (author, act("Create", note(f"{post}-3", author), "create-3")),
        # malformed: a post without an id
        (author, act("Create", {"type": "Note", "content": "<p>?</p>"}, "no-id")),
        # unauthorized: a post attributed to someone else, an edit of someone else's post
        (author, act("Create", note(f"{post}-4", other), "spoof")),
        (other, act("Update", note(f"{post}-1", author), "update-theirs", actor=other)),
        # a reply to the first post, and a follow of alice
        (
            other,
            act(
                "Create",
                note(f"{other}/statuses/{tag}-reply", other, inReplyTo=f"{post}-1"),
                "reply",
                actor=other,
            ),
        ),
        (other, act("Follow", test_inbox.BASE + "/users/alice", "follow", actor=other)),
    ]


async def _actors(context: Context, *names: str) -> list[str]:
    uris = []
    for name in names:
        uri = f"{REMOTE}/users/{name}"
        await store_actor(context.db, actor_doc(uri, remote_key(name)))
        await follows(context, test_inbox.BASE + "/users/alice", uri)
        uris.append(uri)
    return uris


async def _deliver_all(client: httpx.AsyncClient, story: list[tuple[str, dict[str, Any]]],
                       each: Any = None) -> None:  # fmt: skip
    for signer, sent in story:
        name = signer.rsplit("/", 1)[1]
        response = await deliver(client, sent, signer=signer, key=remote_key(name))
        assert response.status_code == 202, response.text
        if each is not None:
            await each()


def _only_processing(context: Context, kind: JobKind) -> Worker:
    return Worker(context.queue, {PROCESS: kind})


async def _snapshot(context: Context, names: dict[str, str]) -> dict[str, Any]:
    """What is stored about the story of ``names`` (actor uri or tag → placeholder)."""

    def named(*values: Any) -> tuple[str, ...]:
        out = []
        for value in values:
            text = str(value)
            for real, placeholder in names.items():
                text = text.replace(real, placeholder)
            out.append(re.sub(r"#[0-9a-f]{64}", "#derived", text))
        return tuple(out)

    def mine(uri: str | None) -> bool:
        return uri is not None and any(real in uri for real in names)

    async with context.db.session() as session:
        objects = sorted(
            named(row.uri, row.type, row.actor_uri, row.visibility, row.in_reply_to,
                  row.deleted_at is not None, row.data.get("content"))
            for row in await session.scalars(select(Object).where(Object.local.is_(False)))
            if mine(row.uri)
        )  # fmt: skip
        engagements = sorted(
            named(e.kind, e.actor_uri, e.object_uri, e.activity_uri)
            for e in await session.scalars(select(Engagement))
            if mine(e.activity_uri)
        )
        followings = sorted(
            named(f.follower_uri, f.followee_uri, f.state)
            for f in await session.scalars(select(Follow))
            if mine(f.follower_uri) or mine(f.followee_uri)
        )
        feed = sorted(
            named(uri)
            for uri in await session.scalars(
                select(Object.uri)
                .join(TimelineEntry, TimelineEntry.object_id == Object.id)
                .join(Actor, Actor.id == TimelineEntry.owner_id)
                .where(Actor.username == "alice")
            )
            if mine(uri)
        )
        jobs = sorted(
            named(uri, job.status, job.last_error)
            for job, uri in await session.execute(
                select(Job, Object.uri)
                .join(Object, Object.id == Job.payload["object_id"].as_integer())
                .where(Job.kind == PROCESS)
            )
            if mine(uri)
        )
        answers = sorted(
            named(row.data.get("type"))
            for row in await session.scalars(select(Object).where(Object.local.is_(True)))
            if mine(str(row.data.get("object")))
        )
    return {"objects": objects, "engagements": engagements, "follows": followings,
            "feed": feed, "jobs": jobs, "answers": answers}  # fmt: skip


async def test_a_batch_stores_what_one_at_a_time_stores(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    single, batched = await _actors(context, "ann", "ben"), await _actors(context, "cat", "dan")
    (x1, y1), (x2, y2) = single, batched
    one_by_one = _only_processing(context, JobKind(context.inbox.process, PROCESS_RETRY))
    await _deliver_all(client, _story(x1, y1, "run1q"), each=one_by_one.run_until_idle)

    batches: list[int] = []
    kind = job_handlers(context)[PROCESS]
    assert kind.run_batch is not None
    run_batch = kind.run_batch

    async def counted(jobs: Any) -> Any:
        batches.append(len(jobs))
        return await run_batch(jobs)

    story = _story(x2, y2, "run2q")
    await _deliver_all(client, story)
    together = JobKind(kind.run, kind.retry, run_batch=counted, batch_size=len(story))
    await _only_processing(context, together).run_until_idle()
    assert batches == [len(story)]  # one batch did it all

    first = await _snapshot(context, {x1: "X", y1: "Y", "run1q": "T"})
    second = await _snapshot(context, {x2: "X", y2: "Y", "run2q": "T"})
    assert first == second
    # and the story did what it says
    failed = sorted(uri.rsplit("/", 1)[1] for uri, status, _ in first["jobs"] if status == "failed")
    assert failed == [
        "create-T-create-3",
        "create-T-no-id",
        "create-T-spoof",
        "update-T-update-theirs",
    ]
    assert len(first["engagements"]) == 3  # X's like, Y's like, Y's boost
    assert first["answers"] == [("Accept",)]


async def test_a_batch_that_fails_as_a_whole_is_run_one_job_at_a_time(
    context: Context,
) -> None:
    ran: list[int] = []

    async def one(payload: dict[str, Any]) -> None:
        ran.append(payload["n"])

    async def broken(jobs: Sequence[ClaimedJob]) -> dict[int, Exception]:
        raise RuntimeError("the database went away mid-batch")

    for n in range(5):
        await context.queue.enqueue("batched", {"n": n})
    worker = Worker(context.queue, {"batched": JobKind(one, run_batch=broken)})
    await worker.run_until_idle()
    assert sorted(ran) == [0, 1, 2, 3, 4]
    assert await context.queue.counts() == {"done": 5}


async def test_a_worker_waits_for_a_running_batch_without_spinning(context: Context) -> None:
    """While a batch runs, its lane has no room: the loop sleeps until something happens."""
    started, release = asyncio.Event(), asyncio.Event()

    async def one(payload: dict[str, Any]) -> None:
        raise AssertionError("a batch kind runs in batches")

    async def slow(jobs: Sequence[ClaimedJob]) -> dict[int, Exception]:
        started.set()
        await release.wait()
        async with context.db.transaction() as session:
            await JobQueue.mark_done(session, [job.id for job in jobs])
        return {}

    for n in range(3):  # fewer than a batch: the lane is drained while its batch runs
        await context.queue.enqueue("batched", {"n": n})
    worker = Worker(context.queue, {"batched": JobKind(one, run_batch=slow)}, poll_interval=0.05)
    loops = 0
    idle = worker._idle

    async def counted() -> None:
        nonlocal loops
        loops += 1
        await idle()

    worker._idle = counted  # type: ignore[method-assign]
    running = asyncio.create_task(worker.run())
    await started.wait()
    await asyncio.sleep(0.5)  # ten poll intervals of the other lane
    release.set()
    await asyncio.sleep(0.1)
    worker.stop()
    await running
    assert await context.queue.counts() == {"done": 3}
    assert loops < 60, f"the worker loop went round {loops} times in 0.6 s"


async def test_a_worker_runs_two_batches_at_once_and_no_more(context: Context) -> None:
    """The next batch prepares while one writes: two in flight, each at most batch_size."""
    running, most, sizes = 0, 0, []
    both = asyncio.Event()  # the first two batches wait (up to 1 s) to be running together

    async def one(payload: dict[str, Any]) -> None:
        raise AssertionError("a batch kind runs in batches")

    async def slow(jobs: Sequence[ClaimedJob]) -> dict[int, Exception]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        sizes.append(len(jobs))
        if running == 2:
            both.set()
        if len(sizes) <= 2:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both.wait(), 1.0)
        async with context.db.transaction() as session:
            await JobQueue.mark_done(session, [job.id for job in jobs])
        running -= 1
        return {}

    # Given 25 jobs of a kind batched by 10
    for n in range(25):
        await context.queue.enqueue("batched", {"n": n})
    kind = JobKind(one, run_batch=slow, batch_size=10, batches_at_once=2)
    worker = Worker(context.queue, {"batched": kind}, poll_interval=0.05)

    # When the worker runs until they are done
    async def all_done() -> bool:
        return (await context.queue.counts()).get("done") == 25

    await run_worker_until(worker, all_done, seconds=5)
    # Then the first two batches ran together, a third never joined them, none was too big
    assert await context.queue.counts() == {"done": 25}
    assert most == 2
    assert sizes[:2] == [10, 10] and sum(sizes) == 25 and max(sizes) <= 10
