"""A persistent job queue in the database, shared by every worker process.

Jobs move ``queued → running → done | failed`` (or ``cancelled`` while
queued). A worker claims a batch by setting a lease; on PostgreSQL the claim
uses ``FOR UPDATE SKIP LOCKED`` so workers on many hosts share one queue
without blocking each other; SQLite serializes writers, so one claim runs at a
time there. A worker renews the leases of the jobs it runs (a heartbeat), so a
slow job is never taken over while it still runs; a job whose worker died is
claimed again once its lease expires.

One retry contract: a handler fails by raising; :func:`is_final` is the one
rule for whether retrying can help (:class:`JobFailed` says so itself), the
exception's ``retry_after`` (a server's ``Retry-After``) is honoured, and each
job kind has its own :class:`RetryPolicy`. This module never imports its
handlers: the app registers them by kind, each as a :class:`JobKind`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.config import Settings
from fedisocial.errors import (
    BlockedAddress,
    FedisocialError,
    RateLimited,
    RemoteError,
    RemoteStatus,
)
from fedisocial.store.db import Database
from fedisocial.store.models import JOB_ACTIVE, Job, utcnow

__all__ = [
    "BATCHES_AT_ONCE",
    "DEFAULT_RETRY",
    "Handler",
    "JobFailed",
    "JobKind",
    "JobQueue",
    "JobStats",
    "PermanentFailure",
    "RetryPolicy",
    "Worker",
    "final_status",
    "is_final",
]

log = logging.getLogger(__name__)

#: claim and finish are Core statements: the ORM's bulk-update bookkeeping costs more
_JOBS = cast(Table, Job.__table__)
#: in every lookup of active jobs, so that its plan may read the partial index ix_jobs_due
_ACTIVE = text(JOB_ACTIVE)
#: finished jobs kept for ``JobQueue.retention`` (failed ones: ``failed_retention``)
_FINISHED = ("done", "cancelled")


class JobFailed(Exception):
    """A handler's failure that says itself whether to retry, and when at the earliest."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, final: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.final = final


class PermanentFailure(JobFailed):
    """Raised by a handler when retrying cannot help (e.g. the row it works on is gone)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, final=True)


#: 4xx answers that may change on a retry: 401 (a key not yet known, a clock skew), 408 (a
#: timeout) and 429 (rate limited). Mastodon treats every other 4xx as unsalvageable too.
_RETRYABLE_4XX = frozenset({401, 408, 429})


def final_status(status: int) -> bool:
    """Whether a remote's HTTP error status makes retrying pointless: 4xx but 401, 408, 429."""
    return 400 <= status < 500 and status not in _RETRYABLE_4XX


def is_final(exc: BaseException) -> bool:
    """The one rule for whether a failed job may succeed on a retry.

    Final: a :class:`JobFailed` that says so, a remote answer whose status is
    :func:`final_status`, a refused address, and our own errors (bad input, not
    found…). Retried: other remote failures (network, 5xx), rate limits, and
    anything unexpected (a database that went away).
    """
    if isinstance(exc, JobFailed):
        return exc.final
    if isinstance(exc, RemoteStatus):
        return final_status(exc.status_code)
    if isinstance(exc, BlockedAddress):
        return True
    if isinstance(exc, RemoteError | RateLimited):
        return False
    return isinstance(exc, FedisocialError)


def _retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed job of one kind runs again: exponential backoff, jitter, a cap, an end.

    Attempt ``n`` waits ``base * 2**(n-1)`` seconds, at most ``cap``, plus up to
    25% random jitter; a ``Retry-After`` wins when it asks for longer (up to
    ``max_retry_after``). The job fails for good after ``attempts`` attempts.
    """

    base: float = 30.0
    cap: float = 3600.0
    attempts: int = 10
    max_retry_after: float = 86400.0

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> timedelta | None:
        """How long to wait before attempt ``attempt + 1``, or None to give up."""
        if attempt >= self.attempts:
            return None
        delay = min(self.cap, self.base * 2 ** max(attempt - 1, 0))
        delay *= 1 + 0.25 * jitter()
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return timedelta(seconds=delay)


#: kinds registered without a policy: retried for about three hours (10 attempts)
DEFAULT_RETRY = RetryPolicy()

Handler = Callable[[dict[str, Any]], Awaitable[None]]
#: called once when a job fails for good, with its payload and the last error
GaveUp = Callable[[dict[str, Any], BaseException], Awaitable[None]]
#: runs claimed jobs together; marks the ones it did done itself (:meth:`JobQueue.mark_done`,
#: in the transaction of their work) and returns the failures of the others, by job id
BatchHandler = Callable[[Sequence["ClaimedJob"]], Awaitable[Mapping[int, Exception]]]


#: batches of one kind a worker runs at once, unless its kind says otherwise
BATCHES_AT_ONCE = 2


@dataclass(frozen=True)
class JobKind:
    """A kind of job as the app registers it: its handler, retry policy and last word.

    With ``run_batch``, the worker claims up to ``batch_size`` jobs of the kind at a
    time and hands them over together, with up to ``batches_at_once`` batches
    running (the next one prepares — reads, fetches — while one writes); ``run``
    still runs one job alone (``run_until_idle`` with a batch of one, tests).
    """

    run: Handler
    retry: RetryPolicy = DEFAULT_RETRY
    gave_up: GaveUp | None = None
    run_batch: BatchHandler | None = None
    batch_size: int = 100
    batches_at_once: int = BATCHES_AT_ONCE


#: how ``JobStats.depth`` splits active jobs: queued and due now, queued for later, running
QUEUE_STATES = ("due", "later", "running")


@dataclass(frozen=True)
class JobStats:
    """What :meth:`JobQueue.stats` reports about the queue."""

    #: kind → state (one of :data:`QUEUE_STATES`) → jobs
    depth: dict[str, dict[str, int]]
    #: how long the oldest due job has waited (None: none is due)
    oldest_due: timedelta | None
    #: kind → (jobs that failed for good in the last hour, the most recent one's error)
    failed_last_hour: dict[str, tuple[int, str]]
    #: finished jobs past their retention, which the next prunes delete
    prunable: int


#: which kinds a claim takes: None for all, ``(True, names)`` only those, ``(False, names)`` others
KindFilter = tuple[bool, frozenset[str]] | None


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


#: the time a lookup of due jobs is for: bound when it runs, so that its statement is built
#: once per shape (:func:`_pick`)
_DUE_AT = "due_at"


def _due(kinds: KindFilter) -> ColumnElement[bool]:
    # Queued jobs whose time has come, and running ones whose lease expired (a running
    # job's run_at has passed too): a range of ix_jobs_due, in the order claims take (of
    # named kinds: a range of ix_jobs_due_by_kind per kind).
    jobs = _JOBS
    now: BindParameter[datetime] = bindparam(_DUE_AT)
    due = and_(
        _ACTIVE, jobs.c.run_at <= now, or_(jobs.c.status == "queued", jobs.c.lease_until < now)
    )
    if kinds is not None:
        wanted, names = kinds
        due = and_(due, jobs.c.kind.in_(names) if wanted else jobs.c.kind.not_in(names))
    return due


@functools.lru_cache(maxsize=128)
def _pick(limit: int, kinds: KindFilter, *, lock: bool) -> Select[tuple[int]]:
    """The ids of up to ``limit`` jobs due at ``:due_at``, oldest first; on PostgreSQL
    locked (with ``lock``), skipping the rows other claims hold.

    Of named kinds, each kind's oldest ``limit`` are read from its own range of
    ix_jobs_due_by_kind and the oldest of those taken: a lane of deliveries finds its
    few without reading the thousands of other jobs due before them. Built once per
    shape: building the union of four kinds took 0.8 ms, on every poll of the lane.
    """
    jobs = _JOBS

    def oldest(due: ColumnElement[bool]) -> Select[tuple[int, datetime]]:
        pick = select(jobs.c.id, jobs.c.run_at).where(due).order_by(jobs.c.run_at).limit(limit)
        return pick.with_for_update(skip_locked=True) if lock else pick

    if kinds is None or not kinds[0] or len(kinds[1]) == 1:
        return oldest(_due(kinds)).with_only_columns(jobs.c.id)
    per_kind = [oldest(_due((True, frozenset({name})))).subquery() for name in sorted(kinds[1])]
    # each its own subquery: SQLite allows no LIMIT on a member of a compound select
    merged = union_all(*(select(one.c.id, one.c.run_at) for one in per_kind)).subquery()
    return select(merged.c.id).order_by(merged.c.run_at).limit(limit)


class JobQueue:
    """Enqueue, claim, finish and fail jobs in the ``jobs`` table, and prune finished ones.

    Done and cancelled jobs are kept for ``retention``, failed ones for
    ``failed_retention`` (to debug them), then :meth:`prune` deletes them.
    """

    def __init__(
        self,
        db: Database,
        *,
        lease: timedelta = timedelta(minutes=5),
        retention: timedelta = timedelta(hours=24),
        failed_retention: timedelta = timedelta(days=7),
    ) -> None:
        self.db = db
        self.lease = lease
        self.retention = retention
        self.failed_retention = failed_retention

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> JobQueue:
        """The queue of an instance: its lease and retention times from the settings."""
        return cls(
            db,
            lease=timedelta(seconds=settings.job_lease_seconds),
            retention=timedelta(hours=settings.job_retention_hours),
            failed_retention=timedelta(hours=settings.job_failed_retention_hours),
        )

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
        if payloads:
            await session.execute(insert(Job), JobQueue.rows(kind, payloads))

    @staticmethod
    def rows(
        kind: str, payloads: Sequence[tuple[dict[str, Any], str | None]]
    ) -> list[dict[str, Any]]:
        """The ``jobs`` rows that queue ``(payload, ref)`` jobs of ``kind``, due now."""
        now = utcnow()
        return [{"kind": kind, "payload": payload, "ref": ref, "run_at": now, "status": "queued",
                 "attempts": 0, "created_at": now} for payload, ref in payloads]  # fmt: skip

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

    async def has_due(self, kinds: KindFilter = None) -> bool:
        """Whether a job waits to be claimed: a read, so polling an idle queue writes nothing."""
        async with self.db.session() as session:
            found = await session.scalar(_pick(1, kinds, lock=False), {_DUE_AT: utcnow()})
        return found is not None

    async def claim(
        self,
        worker: str,
        limit: int = 10,
        *,
        finished: Sequence[int] = (),
        kinds: KindFilter = None,
    ) -> list[ClaimedJob]:
        """Take up to ``limit`` due jobs (or jobs whose lease expired) for ``worker``.

        ``finished`` jobs are marked done in the same transaction: a busy worker
        pays one write transaction per batch, not one per job. ``kinds``: only jobs
        of these kinds (``(True, names)``), or of any kind but these (``(False, names)``).
        """
        now = utcnow()
        jobs = _JOBS
        # One statement, so that SQLite takes its write lock before choosing rows.
        claim = (
            update(jobs)
            .where(jobs.c.id.in_(_pick(limit, kinds, lock=True).scalar_subquery()))
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
            rows = await session.execute(claim, {_DUE_AT: now})
            # in the order they were queued (PostgreSQL returns updated rows in any order):
            # a batch applies activities in the order they arrived
            return sorted((ClaimedJob(*row) for row in rows), key=lambda job: job.id)

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
                await self.mark_done(session, job_ids)

    @classmethod
    async def mark_done(cls, session: AsyncSession, job_ids: Sequence[int]) -> None:
        """Mark jobs done inside the caller's transaction: done iff their work commits."""
        if job_ids:
            await session.execute(cls._done(job_ids, utcnow()))

    async def renew(self, worker: str, job_ids: Sequence[int]) -> None:
        """Extend the leases of the jobs ``worker`` is still running (its heartbeat)."""
        if not job_ids:
            return
        jobs = _JOBS
        async with self.db.transaction() as session:
            await session.execute(
                update(jobs)
                .where(jobs.c.id.in_(list(job_ids)), jobs.c.worker == worker,
                       jobs.c.status == "running")
                .values(lease_until=utcnow() + self.lease)
            )  # fmt: skip

    async def fail(
        self,
        job: ClaimedJob,
        error: str,
        *,
        final: bool = False,
        retry_after: float | None = None,
        policy: RetryPolicy = DEFAULT_RETRY,
    ) -> bool:
        """Record a failure: requeue it as ``policy`` says, or mark it failed (returns True)."""
        delay = None if final else policy.delay(job.attempts, retry_after=retry_after)
        values: dict[str, Any] = {"last_error": error[:2000], "lease_until": None}
        if delay is None:
            values.update(status="failed", finished_at=utcnow())
        else:
            values.update(status="queued", run_at=utcnow() + delay)
        async with self.db.transaction() as session:
            await session.execute(update(Job).where(Job.id == job.id).values(**values))
        return delay is None

    def _prunable(self, now: datetime) -> ColumnElement[bool]:
        jobs = _JOBS
        return and_(
            jobs.c.finished_at < now - min(self.retention, self.failed_retention),  # the range
            or_(
                and_(jobs.c.status.in_(_FINISHED), jobs.c.finished_at < now - self.retention),
                and_(jobs.c.status == "failed", jobs.c.finished_at < now - self.failed_retention),
            ),
        )

    async def prune(self, *, batch: int = 1000, batches: int = 10) -> int:
        """Delete finished jobs older than their retention; returns how many.

        At most ``batch`` rows per statement, each in a transaction of its own (a short
        write lock on SQLite), and at most ``batches`` statements per call. The rows are
        found by a read first, so that pruning a clean table writes nothing.
        """
        jobs = _JOBS
        pruned = 0
        for _ in range(batches):
            async with self.db.session() as session:
                pick = select(jobs.c.id).where(self._prunable(utcnow())).limit(batch)
                ids = list(await session.scalars(pick))
            if ids:  # another worker may prune some of them first: count what this one did
                async with self.db.transaction() as session:
                    result = await session.execute(delete(jobs).where(jobs.c.id.in_(ids)))
                pruned += int(getattr(result, "rowcount", 0) or 0)
            if len(ids) < batch:
                break
        return pruned

    async def stats(self) -> JobStats:
        """The state of the queue, in a few grouped queries (``fedisocial status``, admin)."""
        now = utcnow()
        async with self.db.session() as session:
            return JobStats(
                depth=await self._depth(session, now),
                oldest_due=await self._oldest_due(session, now),
                failed_last_hour=await self._recent_failures(session, now - timedelta(hours=1)),
                prunable=await session.scalar(
                    select(func.count()).select_from(_JOBS).where(self._prunable(now))
                ) or 0,
            )  # fmt: skip

    async def _depth(self, session: AsyncSession, now: datetime) -> dict[str, dict[str, int]]:
        jobs = _JOBS
        state = case((jobs.c.status == "running", "running"), (jobs.c.run_at <= now, "due"),
                     else_="later").label("state")  # fmt: skip
        rows = await session.execute(
            select(jobs.c.kind, state, func.count()).where(_ACTIVE).group_by(jobs.c.kind, state)
        )
        depth: dict[str, dict[str, int]] = {}
        for kind, name, count in rows:
            depth.setdefault(kind, dict.fromkeys(QUEUE_STATES, 0))[name] = count
        return depth

    async def _oldest_due(self, session: AsyncSession, now: datetime) -> timedelta | None:
        jobs = _JOBS
        oldest = await session.scalar(
            select(func.min(jobs.c.run_at)).where(
                _ACTIVE, jobs.c.status == "queued", jobs.c.run_at <= now
            )
        )
        return None if oldest is None else now - oldest

    async def _recent_failures(
        self, session: AsyncSession, since: datetime
    ) -> dict[str, tuple[int, str]]:
        jobs = _JOBS
        latest = func.row_number().over(
            partition_by=jobs.c.kind, order_by=(jobs.c.finished_at.desc(), jobs.c.id.desc())
        )
        failed = (
            select(jobs.c.kind, jobs.c.last_error,
                   func.count().over(partition_by=jobs.c.kind).label("n"), latest.label("latest"))
            .where(jobs.c.status == "failed", jobs.c.finished_at >= since)
            .subquery()
        )  # fmt: skip
        rows = await session.execute(
            select(failed.c.kind, failed.c.n, failed.c.last_error).where(failed.c.latest == 1)
        )
        return {kind: (count, error or "") for kind, count, error in rows}

    async def counts(self) -> dict[str, int]:
        """Jobs per status (the tests read it; ``stats`` is what ``fedisocial status`` shows)."""
        async with self.db.session() as session:
            rows = await session.execute(select(Job.status, func.count()).group_by(Job.status))
            return {status: count for status, count in rows}

    async def backlog(self, kind: str, limit: int) -> int:
        """Jobs of ``kind`` due now or running, counted up to ``limit`` (a bounded scan).

        A range of the ``ix_jobs_due`` index (queued and running jobs by ``run_at``;
        a running job's ``run_at`` has passed), read up to ``limit`` matching rows
        however long the queue: the inbox asks this often to know whether it is too busy.
        """
        jobs = _JOBS
        due = (
            select(jobs.c.id)
            .where(_ACTIVE, jobs.c.run_at <= utcnow(), jobs.c.kind == kind)
            .limit(limit)
        )
        async with self.db.session() as session:
            return await session.scalar(select(func.count()).select_from(due.subquery())) or 0


@dataclass
class _Lane:
    """Jobs a worker claims and runs alike: single jobs, or batches of one batch kind."""

    #: which kinds it claims (:data:`KindFilter`)
    kinds: KindFilter
    #: most jobs in flight at once
    slots: int
    #: claim again once this many slots are free
    refill: int
    #: the batch kind it runs (None: each job alone)
    batch: JobKind | None = None
    running: set[asyncio.Task[None]] = field(default_factory=set)
    jobs: int = 0
    drained: bool = True
    polled_at: float = -float("inf")
    #: every job it ran has ended since its last look (one of them may have queued more)
    emptied: bool = False


class Worker:
    """Claims jobs and runs their handlers until asked to stop.

    Finished jobs are recorded in the transaction of the next claim (or within
    ``poll_interval`` when the queue is idle), and slots are refilled a batch
    at a time, so a busy worker writes once per batch, not twice per job. A
    worker that dies before recording a finished job leaves it to run again
    after its lease: delivery is at least once either way. While jobs run, their
    leases are renewed every third of a lease, in one statement for all of them.

    Kinds registered with ``run_batch`` have a lane of their own: the worker
    claims up to ``batch_size`` of them at a time and hands them over together,
    ``batches_at_once`` batches at most, beside the ``concurrency`` single jobs of the other
    kinds. A batch that fails as a whole (nothing of it committed) is run again
    one job at a time, so that one bad job cannot hold the others back.

    ``handlers`` maps a job kind to its :class:`JobKind` (or a bare handler, with
    the default retry policy). A lane claims only its own kinds, so every
    ``prune_interval`` seconds the loop fails the due jobs of kinds it has no
    handler for (with that reason), prunes finished jobs past their retention
    (:meth:`JobQueue.prune`) and runs ``housekeeping`` (the app's other rows past
    their use; it returns counts by table).
    """

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobKind | Handler],
        *,
        concurrency: int = 16,
        poll_interval: float = 0.2,
        prune_interval: float = 60.0,
        housekeeping: Callable[[], Awaitable[Mapping[str, int]]] | None = None,
    ) -> None:
        self.queue = queue
        self.housekeeping = housekeeping
        self.kinds = {
            name: kind if isinstance(kind, JobKind) else JobKind(kind)
            for name, kind in handlers.items()
        }
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.prune_interval = prune_interval
        self._maintained_at = -float("inf")
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stop = asyncio.Event()
        self._finished: list[int] = []
        self._running: set[int] = set()
        self._stopping: asyncio.Future[Any] | None = None
        batched = {name: kind for name, kind in self.kinds.items() if kind.run_batch}
        self._batched = list(batched)
        single = frozenset(self.kinds) - frozenset(batched)
        self._lanes = [
            *([_Lane((True, single), concurrency, max(1, concurrency // 4))] if single else []),
            *(_Lane((True, frozenset({name})), kind.batch_size * kind.batches_at_once,
                    kind.batch_size, kind)
              for name, kind in batched.items()),
        ]  # fmt: skip

    def stop(self) -> None:
        self._stop.set()

    async def _claim(self, limit: int, kinds: KindFilter = None) -> list[ClaimedJob]:
        finished, self._finished = self._finished, []
        try:
            return await self.queue.claim(self.name, limit, finished=finished, kinds=kinds)
        except BaseException:
            self._finished[:0] = finished  # not recorded: try again with the next claim
            raise

    async def _flush(self) -> None:
        """Record the finished jobs now (a claim of nothing records them)."""
        if self._finished:
            await self._claim(0)

    async def run(self) -> None:
        """Loop: claim, run concurrently, repeat; on stop, let running jobs finish.

        A lane's slots are refilled when a quarter of them are free (a batch
        lane: when its batch has ended). Once a claim has found its kinds
        drained, the lane looks again after ``poll_interval``, or at once when
        every job it ran has ended (one of them may have queued more); that look
        is a read, not a claim.
        """
        self._stopping = asyncio.ensure_future(self._stop.wait())
        try:
            async with self._heartbeat():
                await self._loop()
        finally:
            self._stopping.cancel()
            await self._flush()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            await self._maintain()
            for lane in self._lanes:
                await self._fill(lane)
            await self._idle()
        running = {task for lane in self._lanes for task in lane.running}
        if running:
            await asyncio.wait(running)

    async def _fill(self, lane: _Lane) -> None:
        """Claim jobs while the lane has room (a batch lane: a batch per claim)."""
        while True:
            free = lane.slots - lane.jobs
            looked_lately = time.monotonic() - lane.polled_at < self.poll_interval
            if free < lane.refill or (lane.drained and looked_lately and not lane.emptied):
                return
            lane.polled_at, lane.emptied = time.monotonic(), False
            limit = free if lane.batch is None else min(free, lane.batch.batch_size)
            jobs = await self._take(lane, limit)
            lane.drained = len(jobs) < limit
            if not jobs:
                return
            if lane.batch is not None:
                self._start(lane, self._run_batch(lane.batch, jobs), len(jobs))
                continue
            for job in jobs:
                self._start(lane, self._run_one(job), 1)

    def _start(self, lane: _Lane, work: Coroutine[Any, Any, None], jobs: int) -> None:
        lane.jobs += jobs
        task = asyncio.create_task(work)
        lane.running.add(task)

        def ended(task: asyncio.Task[None]) -> None:
            lane.running.discard(task)
            lane.jobs -= jobs
            lane.emptied = lane.emptied or not lane.running

        task.add_done_callback(ended)

    async def _maintain(self) -> None:
        """At most once per ``prune_interval``: fail the due jobs no lane claims (their kind
        has no handler), prune finished jobs and run the housekeeping."""
        if time.monotonic() - self._maintained_at < self.prune_interval:
            return
        self._maintained_at = time.monotonic()
        unknown: KindFilter = (False, frozenset(self.kinds))
        try:
            while jobs := await self._claim(self.concurrency, unknown):
                await asyncio.gather(*(self._run_one(job) for job in jobs))
        except Exception as exc:  # they wait for the next step; the lanes go on
            log.warning("could not fail the jobs of unknown kinds: %s", exc)
        try:
            pruned = await self.queue.prune()
        except Exception as exc:  # the table only grows until the next try; jobs go on
            log.warning("could not prune finished jobs: %s", exc)
            return
        if pruned:
            log.info("pruned %d finished jobs", pruned)
        if self.housekeeping is None:
            return
        try:
            done = await self.housekeeping()
        except Exception as exc:  # as above: tried again at the next prune
            log.warning("could not prune old rows: %s", exc)
            return
        if any(done.values()):
            log.info("pruned %s", ", ".join(f"{n} {table}" for table, n in done.items() if n))

    @asynccontextmanager
    async def _heartbeat(self) -> AsyncIterator[None]:
        """Renew the leases of the running jobs until the block ends."""
        beat = asyncio.create_task(self._beat())
        try:
            yield
        finally:
            beat.cancel()
            with suppress(asyncio.CancelledError):
                await beat

    async def _beat(self) -> None:
        every = self.queue.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self.queue.renew(self.name, sorted(self._running))
            except Exception as exc:  # the next beat may get through; the lease has slack
                log.warning("could not renew the leases of running jobs: %s", exc)

    async def _take(self, lane: _Lane, limit: int) -> list[ClaimedJob]:
        """Claim up to ``limit`` jobs of the lane (once drained: only if a read finds one due)."""
        if lane.drained and not await self.queue.has_due(lane.kinds):
            await self._flush()
            return []
        return await self._claim(limit, lane.kinds)

    async def _idle(self) -> None:
        """Wait for a stop, a running job to end, or the next poll of a drained lane that
        has room (a full lane waits for its jobs: polling it would spin)."""
        running = {task for lane in self._lanes for task in lane.running}
        polls = [
            lane.polled_at + self.poll_interval
            for lane in self._lanes
            if lane.drained and lane.slots - lane.jobs >= lane.refill
        ]  # could claim
        timeout = max(0.0, min(polls) - time.monotonic()) if polls else None
        assert self._stopping is not None
        await asyncio.wait({self._stopping, *running}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip

    async def run_until_idle(self) -> None:
        """Run until no job is due (tests and one-shot commands); batch kinds in batches."""
        limit = max([self.concurrency, *(lane.slots for lane in self._lanes)])
        try:
            async with self._heartbeat():
                while jobs := await self._claim(limit):
                    work = [self._run_one(job) for job in jobs if job.kind not in self._batched]
                    for name in self._batched:
                        batch = [job for job in jobs if job.kind == name]
                        if batch:
                            work.append(self._run_batch(self.kinds[name], batch))
                    await asyncio.gather(*work)
        finally:
            await self._flush()

    async def _run_one(self, job: ClaimedJob) -> None:
        kind = self.kinds.get(job.kind)
        if kind is None:
            await self.queue.fail(job, f"no handler for job kind {job.kind!r}", final=True)
            return
        self._running.add(job.id)
        try:
            await kind.run(job.payload)
        except Exception as exc:
            await self._failed(job, kind, exc)
        else:
            self._finished.append(job.id)
        finally:
            self._running.discard(job.id)

    async def _run_batch(self, kind: JobKind, jobs: list[ClaimedJob]) -> None:
        """Run a batch; record its failures. If it fails as a whole, run each job alone."""
        assert kind.run_batch is not None
        ids = {job.id for job in jobs}
        self._running |= ids
        try:
            failures = await kind.run_batch(jobs)
        except Exception as exc:
            log.warning("a batch of %d %s jobs failed (%s): running them one by one",
                        len(jobs), jobs[0].kind, exc)  # fmt: skip
            self._running -= ids
            for job in jobs:
                await self._run_one(job)
            return
        self._running -= ids
        for job in jobs:
            failure = failures.get(job.id)
            if failure is not None:
                await self._failed(job, kind, failure)

    async def _failed(self, job: ClaimedJob, kind: JobKind, exc: Exception) -> None:
        """Requeue or fail the job by the one rule (:func:`is_final`) and the kind's policy."""
        final = is_final(exc)
        error = str(exc) if final else f"{type(exc).__name__}: {exc}"
        gave_up = await self.queue.fail(job, error, final=final, retry_after=_retry_after(exc),
                                        policy=kind.retry)  # fmt: skip
        if not gave_up:
            log.warning("job %s (%s) failed, will retry: %s", job.id, job.kind, exc)
            return
        log.info("job %s (%s) failed for good: %s", job.id, job.kind, exc)
        if kind.gave_up is None:
            return
        try:
            await kind.gave_up(job.payload, exc)
        except Exception:  # the failure is recorded; one bad hook must not stop the worker
            log.exception("job %s (%s): its give-up hook failed", job.id, job.kind)
