"""The workers' periodic pruning deletes rows past their use, on SQLite and PostgreSQL.

Ended mutes (every read ignores them already), stream events older than ten minutes
(streams read only new ones) and Idempotency-Key records older than their hour.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from fedisocial.app import Context, housekeeping, job_handlers
from fedisocial.jobs import Worker
from fedisocial.social import mutes
from fedisocial.social.housekeeping import prunable, prune
from fedisocial.store.models import AssistantRequest, IdempotencyKey, Mute, StreamEvent, utcnow
from tests.c2s_helpers import Person, person
from tests.conftest import run_worker_until


async def _rows(context: Context, model: type) -> int:
    async with context.db.session() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def _given_old_and_new_rows(context: Context, alice: Person) -> None:
    """Two mutes (one ended), two stream events and two idempotency keys (one old each), and
    three assistant requests (one ended long ago, one open as long, one recent)."""
    me = await context.outbox.actor_of("alice")
    for name in ("bob", "dave"):
        await person(context, name)
    ended = await mutes.mute(context.db, me, await context.outbox.actor_of("bob"), duration=60)
    await mutes.mute(context.db, me, await context.outbox.actor_of("dave"), duration=3600)
    post = await context.outbox.post(me, "hello")
    long_ago = utcnow() - timedelta(hours=2)
    async with context.db.transaction() as session:
        await session.execute(update(Mute).where(Mute.id == ended.id)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))  # fmt: skip
        session.add_all([
            StreamEvent(kind="delete", object_id=post.id, created_at=long_ago),
            StreamEvent(kind="delete", object_id=post.id),
            IdempotencyKey(owner_id=me.id, key="old", object_id=post.id, created_at=long_ago),
            IdempotencyKey(owner_id=me.id, key="new", object_id=post.id),
            *(AssistantRequest(post_uri=f"{me.uri}/asked/{n}", service_uri="s",
                               asker_uri=me.uri, asker_domain="d", status=status,
                               created_at=utcnow() - age)
              for n, (status, age) in enumerate([("answered", timedelta(days=31)),
                                                 ("queued", timedelta(days=31)),
                                                 ("answered", timedelta(days=1))])),
        ])  # fmt: skip


async def test_prune_deletes_ended_mutes_old_stream_events_and_idempotency_keys(
    context: Context, alice: Person
) -> None:
    await _given_old_and_new_rows(context, alice)
    every = {"mutes": 1, "stream_events": 1, "idempotency_keys": 1, "assistant_requests": 1}
    assert await prunable(context.db) == every
    # When pruned
    assert await prune(context.db) == every
    # Then the fresh rows stay (and an old request still open), and pruning again finds nothing
    tables = (Mute, StreamEvent, IdempotencyKey, AssistantRequest)
    assert [await _rows(context, m) for m in tables] == [1, 1, 1, 2]
    assert await prune(context.db) == dict.fromkeys(every, 0)
    # ten minutes on, the fresh stream event goes too (keys last an hour, the mute its hour)
    later = await prune(context.db, utcnow() + timedelta(minutes=11))
    assert later == {**dict.fromkeys(every, 0), "stream_events": 1}


async def test_the_worker_loop_prunes_them(context: Context, alice: Person) -> None:
    # Given old rows and the worker the app runs, with its housekeeping
    await _given_old_and_new_rows(context, alice)
    worker = Worker(context.queue, job_handlers(context), housekeeping=housekeeping(context),
                    poll_interval=0.05)  # fmt: skip

    # When its loop runs a moment
    async def pruned() -> bool:
        return await _rows(context, StreamEvent) == 1 and await _rows(context, Mute) == 1

    await run_worker_until(worker, pruned)
    # Then the ended mute, the old event and the old key are gone
    assert [await _rows(context, m) for m in (Mute, StreamEvent, IdempotencyKey)] == [1, 1, 1]
