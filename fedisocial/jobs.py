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
import contextlib
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.store.db import Database
from fedisocial.store.models import Job, utcnow

__all__ = ["Handler", "JobQueue", "PermanentFailure", "Worker", "retry_delay"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


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

    async def enqueue_many(
        self, kind: str, payloads: list[dict[str, Any]], *, ref: str | None = None
    ) -> None:
        """Insert many jobs in one transaction (row-at-a-time inserts are slow on SQLite)."""
        if not payloads:
            return
        now = utcnow()
        rows = [{"kind": kind, "payload": p, "ref": ref, "run_at": now, "status": "queued",
                 "attempts": 0, "created_at": now} for p in payloads]  # fmt: skip
        async with self.db.transaction() as session:
            await session.execute(insert(Job), rows)

    @staticmethod
    async def cancel(session: AsyncSession, ref: str) -> int:
        """Cancel the queued jobs about ``ref`` (e.g. deliveries of a deleted post)."""
        result = await session.execute(
            update(Job)
            .where(Job.ref == ref, Job.status == "queued")
            .values(status="cancelled", finished_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def claim(self, worker: str, limit: int = 10) -> list[ClaimedJob]:
        """Take up to ``limit`` due jobs (or jobs whose lease expired) for ``worker``."""
        now = utcnow()
        due = or_(
            and_(Job.status == "queued", Job.run_at <= now),
            and_(Job.status == "running", Job.lease_until < now),
        )
        pick = (
            select(Job.id).where(due).order_by(Job.run_at).limit(limit)
            .with_for_update(skip_locked=True)
        )  # fmt: skip
        # One statement, so that SQLite takes its write lock before choosing rows.
        claim = (
            update(Job)
            .where(Job.id.in_(pick.scalar_subquery()))
            .values(
                status="running", lease_until=now + self.lease, worker=worker,
                attempts=Job.attempts + 1,
            )
            .returning(Job.id, Job.kind, Job.payload, Job.attempts)
        )  # fmt: skip
        async with self.db.transaction() as session:
            rows = await session.execute(claim, execution_options={"synchronize_session": False})
            return [ClaimedJob(*row) for row in rows]

    async def finish(self, job_id: int) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status="done", finished_at=utcnow(), lease_until=None)
            )

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
    """Claims jobs and runs their handlers until asked to stop."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 16,
        poll_interval: float = 0.5,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Loop: claim, run concurrently, repeat; on stop, let running jobs finish."""
        running: set[asyncio.Task[None]] = set()
        while not self._stop.is_set():
            free = self.concurrency - len(running)
            jobs = await self.queue.claim(self.name, free) if free > 0 else []
            for job in jobs:
                task = asyncio.create_task(self._run_one(job))
                running.add(task)
                task.add_done_callback(running.discard)
            if not jobs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.poll_interval)
            elif free <= len(jobs):
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        if running:
            await asyncio.wait(running)

    async def run_until_idle(self) -> None:
        """Run until no job is due (tests and one-shot commands)."""
        while jobs := await self.queue.claim(self.name, self.concurrency):
            await asyncio.gather(*(self._run_one(job) for job in jobs))

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
            await self.queue.finish(job.id)
