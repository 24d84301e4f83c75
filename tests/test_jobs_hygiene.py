"""Job table hygiene: old finished jobs are pruned, and claiming stays an index search however
many finished rows the table holds. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from fedisocial.jobs import JobQueue, KindFilter, Worker
from fedisocial.store.db import Database
from fedisocial.store.models import Job, utcnow
from tests.conftest import analyze, query_plan, run_worker_until, sql_sent

DAY = timedelta(days=1)


async def _add(db: Database, status: str, count: int, *, finished: datetime | None = None,
               run_at: datetime | None = None, kind: str = "noop") -> None:  # fmt: skip
    now = utcnow()
    rows = [{"kind": kind, "payload": {}, "status": status, "attempts": 1,
             "run_at": run_at or now, "created_at": now, "finished_at": finished,
             "lease_until": now + DAY if status == "running" else None}
            for _ in range(count)]  # fmt: skip
    async with db.transaction() as session:
        await session.execute(insert(Job), rows)


async def _statuses(db: Database) -> list[tuple[str, datetime | None]]:
    async with db.session() as session:
        rows = await session.execute(select(Job.status, Job.finished_at).order_by(Job.id))
        return [(status, finished) for status, finished in rows]


async def test_prune_removes_only_old_finished_jobs(db: Database) -> None:
    # Given queued, running, recent and old finished jobs (failed ones are kept for longer)
    queue = JobQueue(db, retention=DAY, failed_retention=7 * DAY)
    now = utcnow()
    long_ago = now - 30 * DAY
    await _add(db, "queued", 3, run_at=long_ago)
    await _add(db, "running", 2, run_at=long_ago)
    await _add(db, "done", 4, finished=now - 2 * DAY)
    await _add(db, "cancelled", 2, finished=now - 2 * DAY)
    await _add(db, "done", 1, finished=now - timedelta(hours=1))
    await _add(db, "failed", 2, finished=now - 2 * DAY)
    await _add(db, "failed", 3, finished=now - 8 * DAY)
    # When the queue is pruned in batches smaller than what is due
    pruned = await queue.prune(batch=2)
    # Then the old done, cancelled and failed jobs are gone, the rest is untouched
    assert pruned == 4 + 2 + 3
    left = await _statuses(db)
    assert sorted(status for status, _ in left) == sorted(
        ["queued"] * 3 + ["running"] * 2 + ["done"] + ["failed"] * 2
    )
    assert await queue.prune() == 0


async def test_prune_is_bounded_per_call(db: Database) -> None:
    # Given more old finished jobs than one call may delete
    queue = JobQueue(db)
    await _add(db, "done", 7, finished=utcnow() - 2 * DAY)
    # When pruned with batches of 2, at most 3 batches
    first = await queue.prune(batch=2, batches=3)
    # Then one call deletes at most 6, the next call the rest
    assert first == 6
    assert await queue.prune(batch=2, batches=3) == 1
    assert await queue.counts() == {}


async def test_the_worker_prunes_while_it_polls(db: Database) -> None:
    # Given an old done job and a worker with nothing to do
    queue = JobQueue(db)
    await _add(db, "done", 3, finished=utcnow() - 2 * DAY)
    worker = Worker(queue, {}, poll_interval=0.01)

    async def pruned() -> bool:
        return not await queue.counts()

    # When it runs
    await run_worker_until(worker, pruned, seconds=5)
    # Then it has pruned the old job on its poll path
    assert await queue.counts() == {}


async def _due_lookups(
    db: Database, queue: JobQueue, kinds: KindFilter = None
) -> list[tuple[str, Any]]:
    """The statements of one has_due() and one claim() of a batch of 10, as sent."""
    with sql_sent(db) as statements:
        assert await queue.has_due(kinds)
        assert len(await queue.claim("w", 10, kinds=kinds)) == 10
    looks = [(s, p) for s, p in statements if s.lstrip().upper().startswith(("SELECT", "UPDATE"))]
    assert len(looks) == 2, statements
    return looks


async def _assert_index_search(
    db: Database, looks: list[tuple[str, Any]], *, in_order: bool = True
) -> None:
    for statement, parameters in looks:
        plan = await query_plan(db, statement, parameters)
        assert "ix_jobs_due" in plan, plan
        assert "SCAN jobs\n" not in plan + "\n" and "Seq Scan on jobs" not in plan, plan
        if not in_order:
            continue
        sorts = [line for line in plan.splitlines() if "ORDER BY" in line or "Sort Key" in line]
        assert not [line for line in sorts if "ORDER BY" in line or "run_at" in line], plan


async def test_claiming_is_an_index_search_among_many_finished_rows(db: Database) -> None:
    # Given a table of 20,000 finished jobs, a backlog of 2,000 due ones, later and running ones
    queue = JobQueue(db)
    now = utcnow()
    await _add(db, "done", 20_000, finished=now - timedelta(hours=1), run_at=now - DAY)
    await _add(db, "queued", 2_000, run_at=now - timedelta(minutes=1))
    await _add(db, "queued", 20, run_at=now + DAY)
    await _add(db, "running", 5)
    # When a worker looks for due jobs and claims a batch, as the app leaves the database
    # (SQLite never analyzed) and after an ANALYZE (as PostgreSQL's autovacuum does)
    # Then both plans read the jobs table through the index of due jobs only: no full scan
    # of the finished rows, and no sort of the backlog (unanalyzed PostgreSQL guesses the
    # backlog is tiny and may sort what it reads from that index)
    sqlite = db.engine.dialect.name == "sqlite"
    await _assert_index_search(db, await _due_lookups(db, queue), in_order=sqlite)
    await analyze(db)
    await _assert_index_search(db, await _due_lookups(db, queue))


async def test_a_lane_of_some_kinds_reads_only_their_rows(db: Database) -> None:
    # Given a backlog of 3,000 received activities queued before a few deliveries and fetches
    # (what a lane of single jobs meets while the batch lane works through an inbox flood)
    queue = JobQueue(db)
    now = utcnow()
    await _add(db, "done", 5_000, finished=now - timedelta(hours=1), run_at=now - DAY)
    await _add(db, "queued", 3_000, run_at=now - timedelta(hours=1), kind="process_activity")
    await _add(db, "queued", 8, run_at=now - timedelta(minutes=2), kind="deliver")
    await _add(db, "queued", 4, run_at=now - timedelta(minutes=3), kind="fetch")
    lane: KindFilter = (True, frozenset({"deliver", "fetch", "generate"}))
    # When that lane looks for due jobs and claims 10 of them, as the app leaves the
    # database and after an ANALYZE
    # Then each read of the table is a search of its kinds' rows (the kind is a key of the
    # index it searches), not a walk through the backlog in order of time
    await _assert_kind_search(db, await _due_lookups(db, queue, lane))
    await analyze(db)
    await _requeue_running(db)
    await _assert_kind_search(db, await _due_lookups(db, queue, lane))
    # And the claim takes the oldest due jobs of those kinds first, whatever their kind
    await _requeue_running(db)
    claimed = await queue.claim("w", 10, kinds=lane)
    assert sorted(job.kind for job in claimed) == ["deliver"] * 6 + ["fetch"] * 4


async def _requeue_running(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(update(Job).where(Job.status == "running").values(status="queued"))


async def _assert_kind_search(db: Database, looks: list[tuple[str, Any]]) -> None:
    for statement, parameters in looks:
        plan = await query_plan(db, statement, parameters)
        # (the claim then updates the rows it picked by their primary key)
        reads = [
            line for line in plan.splitlines()
            if ("USING INDEX" in line or "Index Cond" in line) and "(id = " not in line
        ]  # fmt: skip
        assert reads and all("kind" in line for line in reads), plan
        assert "SCAN jobs" not in plan and "Seq Scan on jobs" not in plan, plan


async def test_cancelled_and_retried_jobs_keep_their_place(db: Database) -> None:
    # Given a job cancelled long ago and one whose retry is due
    queue = JobQueue(db)
    await queue.enqueue("noop", {}, ref="post")
    async with db.transaction() as session:
        assert await JobQueue.cancel(session, "post") == 1
        await session.execute(update(Job).values(finished_at=utcnow() - 2 * DAY))
    retried = await queue.enqueue("noop", {}, run_at=utcnow() - timedelta(seconds=1))
    # When pruned
    assert await queue.prune() == 1
    # Then the due job is still claimed
    assert [job.id for job in await queue.claim("w", 10)] == [retried]


async def test_stats_count_the_queue_failures_and_prunable_rows(db: Database) -> None:
    # Given due, later and running deliveries, two recent failures and old finished jobs
    queue = JobQueue(db)
    now = utcnow()
    await _add(db, "queued", 3, run_at=now - timedelta(minutes=10), kind="deliver")
    await _add(db, "queued", 2, run_at=now + DAY, kind="deliver")
    await _add(db, "running", 1, run_at=now - DAY, kind="deliver")
    for error in ("older", "newest"):
        job = await queue.enqueue("generate", {}, run_at=now - 2 * DAY)
        (claimed,) = await queue.claim("w", 1)
        assert claimed.id == job
        await queue.fail(claimed, error, final=True)
    await _add(db, "failed", 1, finished=now - 2 * DAY, kind="fetch")
    await _add(db, "done", 4, finished=now - 2 * DAY)
    # When the queue reports its state
    stats = await queue.stats()
    # Then it counts by kind and state, ages the oldest due job, and names the latest error
    assert stats.depth == {"deliver": {"due": 3, "later": 2, "running": 1}}
    assert stats.oldest_due is not None and stats.oldest_due >= timedelta(minutes=10)
    assert stats.failed_last_hour == {"generate": (2, "newest")}
    assert stats.prunable == 4
