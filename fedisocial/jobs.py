"""A persistent job queue in the database, shared by every worker process.

Jobs move ``queued → running → done | failed`` (or ``cancelled`` while
queued). A worker claims a batch by setting a lease; on PostgreSQL the claim
uses ``FOR UPDATE SKIP LOCKED`` so workers on many hosts share one queue
without blocking each other; SQLite serializes writers, so one claim runs at a
time there. A job whose worker died is claimed again once its lease expires.
Failures are retried on the schedule of :func:`retry_delay`. This module never
imports its handlers: the app registers them by kind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, Update, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.store.db import Database
from fedisocial.store.models import Job, utcnow

__all__ = ["Handler", "JobQueue", "PermanentFailure", "Worker", "retry_delay"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]

#: claim and finish are Core statements: the ORM's bulk-update bookkeeping costs more
_JOBS = cast(Table, Job.__table__)


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help (e.g. a 404 from the remote)."""


def retry_delay(
    attempt: int,
    *,
    base: float = 30.0,
    cap: float = 6 * 3600.0,
    retry_after: float | None = None,
    max_attempts: int = 12,
    jitter: Callable[[], float] = random.random,
) -> timedelta | None:
    """How long to wait before attempt ``attempt + 1``, or None to give up.

    Exponential backoff (``base * 2**(attempt-1)``) with up to 25% random
    jitter and a cap; a server's ``Retry-After`` wins when it asks for longer.
    With the defaults, 12 attempts span about two and a half days.
    """
    if attempt >= max_attempts:
        return None
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    delay *= 1 + 0.25 * jitter()
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap * 4))
    return timedelta(seconds=delay)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


class JobQueue:
    """Enqueue, claim, finish and fail jobs in the ``jobs`` table."""

    def __init__(self, db: Database, *, lease: timedelta = timedelta(minutes=5)) -> None:
        self.db = db
        self.lease = lease

    @staticmethod
    def add(
        session: AsyncSession,
        kind: str,
        payload: dict[str, Any],
        *,
        ref: str | None = None,
        run_at: datetime | None = None,
    ) -> Job:
        """Queue a job inside the caller's transaction: it exists iff that work commits."""
        job = Job(kind=kind, payload=payload, ref=ref, run_at=run_at or utcnow())
        session.add(job)
        return job

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        ref: str | None = None,
        run_at: datetime | None = None,
    ) -> int:
        async with self.db.transaction() as session:
            job = self.add(session, kind, payload, ref=ref, run_at=run_at)
            await session.flush()
            return job.id

    @staticmethod
    async def add_many(
        session: AsyncSession, kind: str, payloads: Sequence[tuple[dict[str, Any], str | None]]
    ) -> None:
        """Queue many ``(payload, ref)`` jobs inside the caller's transaction.

        One Core insert: ORM units of work cost 3x more per row, and row-at-a-time
        inserts are slow on SQLite.
        """
        if not payloads:
            return
        now = utcnow()
        rows = [{"kind": kind, "payload": payload, "ref": ref, "run_at": now, "status": "queued",
                 "attempts": 0, "created_at": now} for payload, ref in payloads]  # fmt: skip
        await session.execute(insert(Job), rows)

    async def enqueue_many(
        self, kind: str, payloads: list[dict[str, Any]], *, ref: str | None = None
    ) -> None:
        """Insert many jobs in one transaction of their own."""
        if payloads:
            async with self.db.transaction() as session:
                await self.add_many(session, kind, [(payload, ref) for payload in payloads])

    @staticmethod
    async def cancel(session: AsyncSession, ref: str) -> int:
        """Cancel the queued jobs about ``ref`` (e.g. deliveries of a deleted post)."""
        result = await session.execute(
            update(Job)
            .where(Job.ref == ref, Job.status == "queued")
            .values(status="cancelled", finished_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def _due(self, now: datetime) -> ColumnElement[bool]:
        jobs = _JOBS
        return or_(
            and_(jobs.c.status == "queued", jobs.c.run_at <= now),
            and_(jobs.c.status == "running", jobs.c.lease_until < now),
        )

    async def has_due(self) -> bool:
        """Whether a job waits to be claimed: a read, so polling an idle queue writes nothing."""
        async with self.db.session() as session:
            found = await session.scalar(select(_JOBS.c.id).where(self._due(utcnow())).limit(1))
        return found is not None

    async def claim(
        self, worker: str, limit: int = 10, *, finished: Sequence[int] = ()
    ) -> list[ClaimedJob]:
        """Take up to ``limit`` due jobs (or jobs whose lease expired) for ``worker``.

        ``finished`` jobs are marked done in the same transaction: a busy worker
        pays one write transaction per batch, not one per job.
        """
        now = utcnow()
        jobs = _JOBS
        pick = (
            select(jobs.c.id).where(self._due(now)).order_by(jobs.c.run_at).limit(limit)
            .with_for_update(skip_locked=True)
        )  # fmt: skip
        # One statement, so that SQLite takes its write lock before choosing rows.
        claim = (
            update(jobs)
            .where(jobs.c.id.in_(pick.scalar_subquery()))
            .values(
                status="running", lease_until=now + self.lease, worker=worker,
                attempts=jobs.c.attempts + 1,
            )
            .returning(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts)
        )  # fmt: skip
        async with self.db.transaction() as session:
            if finished:
                await session.execute(self._done(finished, now))
            if limit <= 0:
                return []
            rows = await session.execute(claim)
            return [ClaimedJob(*row) for row in rows]

    @staticmethod
    def _done(job_ids: Sequence[int], now: datetime) -> Update:
        jobs = _JOBS
        return (
            update(jobs)
            .where(jobs.c.id.in_(list(job_ids)))
            .values(status="done", finished_at=now, lease_until=None)
        )

    async def finish_many(self, job_ids: Sequence[int]) -> None:
        """Mark jobs done, in one transaction."""
        if job_ids:
            async with self.db.transaction() as session:
                await session.execute(self._done(job_ids, utcnow()))

    async def fail(
        self,
        job: ClaimedJob,
        error: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Record a failure: requeue after :func:`retry_delay`, or mark it failed."""
        delay = None if permanent else retry_delay(job.attempts, retry_after=retry_after)
        values: dict[str, Any] = {"last_error": error[:2000], "lease_until": None}
        if delay is None:
            values.update(status="failed", finished_at=utcnow())
        else:
            values.update(status="queued", run_at=utcnow() + delay)
        async with self.db.transaction() as session:
            await session.execute(update(Job).where(Job.id == job.id).values(**values))

    async def counts(self) -> dict[str, int]:
        """Jobs per status (for the admin and the tests)."""
        async with self.db.session() as session:
            rows = await session.execute(select(Job.status, func.count()).group_by(Job.status))
            return {status: count for status, count in rows}


class Worker:
    """Claims jobs and runs their handlers until asked to stop.

    Finished jobs are recorded in the transaction of the next claim (or within
    ``poll_interval`` when the queue is idle), and slots are refilled a batch
    at a time, so a busy worker writes once per batch, not twice per job. A
    worker that dies before recording a finished job leaves it to run again
    after its lease: delivery is at least once either way.
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 16,
        poll_interval: float = 0.2,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stop = asyncio.Event()
        self._finished: list[int] = []
        self._stopping: asyncio.Future[Any] | None = None

    def stop(self) -> None:
        self._stop.set()

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        finished, self._finished = self._finished, []
        try:
            return await self.queue.claim(self.name, limit, finished=finished)
        except BaseException:
            self._finished[:0] = finished  # not recorded: try again with the next claim
            raise

    async def _flush(self) -> None:
        finished, self._finished = self._finished, []
        if not finished:
            return
        try:
            await self.queue.finish_many(finished)
        except BaseException:
            self._finished[:0] = finished
            raise

    async def run(self) -> None:
        """Loop: claim, run concurrently, repeat; on stop, let running jobs finish.

        Slots are refilled when a quarter of them are free (or none is busy).
        Once a claim has found the queue drained, the next look comes after
        ``poll_interval``, or at once when every running job has ended (one of
        them may have queued more); that look is a read, not a claim.
        """
        running: set[asyncio.Task[None]] = set()
        refill = max(1, self.concurrency // 4)
        drained, polled_at = True, -float("inf")
        self._stopping = asyncio.ensure_future(self._stop.wait())
        try:
            while not self._stop.is_set():
                free = self.concurrency - len(running)
                poll_due = time.monotonic() - polled_at >= self.poll_interval
                if not running or (free >= refill and (not drained or poll_due)):
                    polled_at = time.monotonic()
                    jobs = await self._take(free, look_first=drained)
                    drained = len(jobs) < free
                    for job in jobs:
                        task = asyncio.create_task(self._run_one(job))
                        running.add(task)
                        task.add_done_callback(running.discard)
                await self._idle(running, polled_at if drained else None)
            if running:
                await asyncio.wait(running)
        finally:
            self._stopping.cancel()
            await self._flush()

    async def _take(self, limit: int, *, look_first: bool) -> list[ClaimedJob]:
        """Claim up to ``limit`` jobs; with ``look_first``, only if a read finds one due."""
        if look_first and not await self.queue.has_due():
            await self._flush()
            return []
        return await self._claim(limit)

    async def _idle(self, running: set[asyncio.Task[None]], polled_at: float | None) -> None:
        """Wait for a stop, a running job to end, or (after ``polled_at``) the next poll."""
        timeout = None
        if polled_at is not None:
            timeout = max(0.0, polled_at + self.poll_interval - time.monotonic())
        assert self._stopping is not None
        await asyncio.wait({self._stopping, *running}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip

    async def run_until_idle(self) -> None:
        """Run until no job is due (tests and one-shot commands)."""
        try:
            while jobs := await self._claim(self.concurrency):
                await asyncio.gather(*(self._run_one(job) for job in jobs))
        finally:
            await self._flush()

    async def _run_one(self, job: ClaimedJob) -> None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            await self.queue.fail(job, f"no handler for job kind {job.kind!r}", permanent=True)
            return
        try:
            await handler(job.payload)
        except PermanentFailure as exc:
            log.info("job %s (%s) failed for good: %s", job.id, job.kind, exc)
            await self.queue.fail(job, str(exc), permanent=True)
        except Exception as exc:
            log.warning("job %s (%s) failed, will retry: %s", job.id, job.kind, exc)
            retry_after = getattr(exc, "retry_after", None)
            await self.queue.fail(job, f"{type(exc).__name__}: {exc}", retry_after=retry_after)
        else:
            self._finished.append(job.id)
