"""Receiving activities: accept (verify, dedupe, persist, enqueue), then process.

``accept`` runs in the request and does only what must happen before the 202:
parse the JSON, verify the HTTP signature (refetching the key once when it
fails: keys rotate), check that the signer is the activity's actor and that
the activity's id is on the actor's host, then store the activity and queue
its processing in one transaction. The activity is stored exactly as
received (the raw JSON is the record; it is normalized when processed, so
processing can be re-run after a fix). An id already stored is acknowledged
and not queued again, so redeliveries are harmless.

Writes are group-committed: concurrent deliveries wait for one writer that
stores up to ``_BATCH`` of them (each activity with its job) per transaction.
Row-at-a-time commits through aiosqlite top out near 350 a second; batches
reach thousands (see the performance notes in DESIGN.md). On SQLite a group
commit is bound before it takes the writers' turn and then runs in one trip to
the writer's thread (:meth:`~fedisocial.store.db.Database.write_at_once`): as a
transaction of awaited statements, the file's lock stayed held while this busy
process served other requests between them, and the other processes waited.
Keys are looked up through a short in-memory cache, so a known sender costs no
database read.

Processing runs as ``process_activity`` jobs, claimed in batches of up to
:data:`PROCESS_BATCH` (``process_batch``; ``process`` is a batch of one). It
dispatches on ``(activity type, object type)`` to the small handlers of
:mod:`fedisocial.federation.handlers`, falling back to ``(activity type, None)``
(``handlers.handler_for``); batching lives here, not in the handlers:

1. one read of the batch's activities;
2. each handler's ``prepare`` (what needs the network: fetching an object
   from its own host), concurrently and outside any transaction;
3. one write transaction that reads the objects and authors the batch mentions
   up front (two queries), applies the handlers in order, writes every feed
   entry with one query for the audiences and one insert, and marks the jobs
   done, before it commits. It commits early once it has applied activities for
   :data:`_APPLY_SECONDS` (so that accepts are not kept waiting), at least
   :data:`_APPLY_AT_LEAST` of them, and the rest follows in the next one.

The handlers are applied without savepoints first; when one fails, that
transaction is rolled back and the same activities are applied again, each in
a savepoint of its own, so that the failing one fails alone with its reason and
nothing else is lost or done twice. Types without a handler stay stored and
are ignored; an object that is an array of several is refused with the reason.
A handler failure that retrying cannot fix (the job queue's one rule,
:func:`~fedisocial.jobs.is_final`) ends the job with a
:class:`~fedisocial.jobs.PermanentFailure` that says why; others are retried on
:data:`PROCESS_RETRY`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import DataError, DBAPIError

from fedisocial.ap import httpsig
from fedisocial.ap.client import FederationClient
from fedisocial.ap.vocab import get_id, normalize, parse_json_object, same_origin
from fedisocial.config import Settings
from fedisocial.errors import (
    BadRequest,
    FedisocialError,
    Forbidden,
)
from fedisocial.federation.backpressure import Backpressure
from fedisocial.federation.handlers import (
    HANDLERS,
    Handler,
    Received,
    Services,
    Tx,
    handler_for,
    write_engagements,
)
from fedisocial.federation.signatures import SignatureVerifier
from fedisocial.jobs import (
    BATCHES_AT_ONCE,
    ClaimedJob,
    JobQueue,
    PermanentFailure,
    RetryPolicy,
    is_final,
)
from fedisocial.social.notifications import record
from fedisocial.social.outbox import Outbox
from fedisocial.social.timeline import add_all_to_feeds
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Job, Object
from fedisocial.store.rows import check_uri_lengths, dialect_insert, object_columns, upsert
from fedisocial.store.sqlite import PreparedInsert
from fedisocial.urls import Urls

__all__ = ["HANDLERS", "PROCESS", "PROCESS_BATCH", "PROCESS_RETRY", "Inbox", "batches_at_once"]

log = logging.getLogger(__name__)

PROCESS = "process_activity"
#: most activities written in one transaction by the group commit
_BATCH = 200
#: most activities processed together (one batch of ``process_activity`` jobs)
PROCESS_BATCH = 100
#: a batch's transaction commits (letting other writers in) once it has applied activities
#: this long, and at least :data:`_APPLY_AT_LEAST` of them
_APPLY_SECONDS = 0.025
#: activities a transaction applies before it may commit early: each awaited statement can
#: wait a GIL switch (5 ms) on a busy process, and a transaction of one or two activities
#: would read the rest of the batch up front again each time
_APPLY_AT_LEAST = 25
#: Processing waits on other servers (the object, its author): retry for about three hours
#: (10 attempts, then hourly). An activity whose context is still missing by then is stale.
PROCESS_RETRY = RetryPolicy(base=30.0, cap=3600.0, attempts=10)


def batches_at_once(db: Database) -> int:
    """How many batches of ``process_activity`` jobs a worker of ``db`` runs at once.

    On SQLite one: a batch's transaction holds the file's one write lock, which the
    web processes' group commits wait for, and the next batch's preparing (a worker
    has one thread) would run while it is held: with two, SQLite ``default`` accepted
    1,360-1,390 a second, with one 1,560-1,610, and processed more too (bench/inbox.py).
    On PostgreSQL a batch's statements wait for the server, and two overlap (1,310
    processed a second against 880 with one).
    """
    return 1 if db.is_sqlite else BATCHES_AT_ONCE


def _parse(body: bytes) -> dict[str, Any]:
    doc = parse_json_object(body)
    if b"\\u0000" in body:
        # PostgreSQL's jsonb cannot hold U+0000; refuse it everywhere, not only there.
        raise BadRequest("the activity contains a NUL character (\\u0000)")
    return doc


def _activity_id(doc: dict[str, Any], actor: str, body: bytes) -> str:
    """The activity's id; GoToSocial sends some Deletes without one: derive a stable one."""
    given = doc.get("id")
    if given is None:
        return f"{actor}#{hashlib.sha256(body).hexdigest()}"
    if not isinstance(given, str) or not given.startswith(("https://", "http://")):
        raise BadRequest(f"the activity id {given!r} is not an http(s) URI")
    if not same_origin(given, actor):
        # Dedupe is by id: an id on another host could shadow that host's real activity.
        raise BadRequest(f"the activity id {given} is not on the host of its actor {actor}")
    return given


def _is_self_delete(doc: dict[str, Any], actor: str) -> bool:
    return doc.get("type") == "Delete" and get_id(doc.get("object")) == actor


def _is_data_error(exc: DBAPIError) -> bool:
    """A value the database refuses (too long, malformed): SQLSTATE class 22, or DataError."""
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(exc, DataError) or str(sqlstate or "").startswith("22")


def _insert_new(insert: Any) -> Any:
    """The activities of a group commit not stored before: their ids and URIs."""
    return insert.on_conflict_do_nothing(index_elements=[Object.uri]).returning(
        Object.id, Object.uri
    )


def _jobs_of(
    batch: Sequence[_Pending], new: dict[str, int]
) -> dict[str, tuple[dict[str, Any], None]]:
    """The ``process_activity`` jobs, as ``(payload, ref)``, of the activities ``new`` (by
    URI) gives the ids of, by URI.

    They have no ``ref``: nothing cancels the processing of a received activity, and an
    index entry of its URI would be one more random write per accept."""
    jobs: dict[str, tuple[dict[str, Any], None]] = {}
    for pending in batch:
        uri = pending.values["uri"]
        if uri in new:  # once, even when a batch holds the same activity twice
            jobs[uri] = ({"object_id": new.pop(uri), "recipient": pending.recipient}, None)
    return jobs


@dataclass
class _Pending:
    """One accepted activity waiting for the group commit."""

    values: dict[str, Any]
    recipient: str | None
    stored: asyncio.Future[bool]

    def settle(self, result: bool | BaseException) -> None:
        if self.stored.done():  # the request went away meanwhile
            return
        if isinstance(result, BaseException):
            self.stored.set_exception(result)
        else:
            self.stored.set_result(result)


@dataclass
class Inbox:
    """The receiving side of federation: ``accept`` in the request, ``process`` as a job."""

    db: Database
    client: FederationClient
    queue: JobQueue
    outbox: Outbox
    urls: Urls
    settings: Settings
    verifier: SignatureVerifier
    #: refuses deliveries (503) while too many activities wait to be processed
    backpressure: Backpressure = field(init=False, repr=False)
    _services: Services = field(init=False, repr=False)
    _waiting: list[_Pending] = field(default_factory=list, init=False, repr=False)
    _writer: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    #: on SQLite, the group commit's two inserts, for ``write_at_once``
    _at_once: tuple[PreparedInsert, PreparedInsert] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self._services = Services(self.db, self.client, self.outbox, self.urls, self._max_age)
        self.backpressure = Backpressure(self.queue, PROCESS, self.settings.inbox_max_backlog)
        if self.db.is_sqlite:
            dialect = self.db.write_engine.dialect
            self._at_once = (
                PreparedInsert(_insert_new(dialect_insert(dialect.name, Object)), dialect),
                PreparedInsert(insert(Job), dialect),
            )

    @property
    def _max_age(self) -> timedelta:
        return timedelta(seconds=self.settings.actor_cache_seconds)

    # -- accept -------------------------------------------------------------------------
    async def accept(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        recipient: str | None = None,
    ) -> bool:
        """Verify and store a delivered activity and queue its processing.

        ``url`` is the public URL the request was sent to (signatures cover it);
        ``recipient`` the username of a personal inbox (None for the shared one).
        Returns False for an activity already received (acknowledged, not queued
        again). Raises BadRequest, Unauthorized (SignatureError) or Forbidden.
        """
        parsed = httpsig.parse_signature(method, url, headers)
        doc = _parse(body)
        actor = get_id(doc.get("actor"))
        if actor and _is_self_delete(doc, actor) and not await self._known(actor):
            # Mastodon does the same: nothing of theirs to delete, and their key is gone.
            log.info("ignoring the self-Delete of %s, an actor we never stored", actor)
            return False
        signer = await self.verifier.verify(parsed, body)
        if actor is None or not actor.startswith(("https://", "http://")):
            raise BadRequest("the activity has no actor")
        if not isinstance(doc.get("type"), str | list):
            raise BadRequest("the activity has no type")
        if signer.uri != actor:
            raise Forbidden(
                f"the request is signed with the key of {signer.uri}, "
                f"but the activity's actor is {actor}"
            )
        activity_id = _activity_id(doc, actor, body)
        columns = object_columns(normalize(doc), signer.followers_url)
        check_uri_lengths("activity", {"id": activity_id, "actor": columns["actor_uri"],
                        "object": columns["object_uri"],
                        "inReplyTo": columns["in_reply_to"]})  # fmt: skip
        return await self._store(activity_id, doc, columns, recipient)

    async def _known(self, actor: str) -> bool:
        async with self.db.session() as session:
            found = await session.scalar(select(Actor.id).where(Actor.uri == actor))
        return found is not None

    async def _store(
        self, uri: str, doc: dict[str, Any], columns: dict[str, Any], recipient: str | None
    ) -> bool:
        """Store the activity as received, with its job (group-committed); False if seen before.

        ``uri`` is its id (derived when it has none); ``doc`` is kept unchanged, the
        record that processing normalizes each time it reads it.
        """
        values = {"uri": uri, "local": False, "data": doc, **columns}
        pending = _Pending(values, recipient, asyncio.get_running_loop().create_future())
        self._waiting.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        stored = await pending.stored
        if stored:
            self.backpressure.accepted()
        return stored

    async def _write_waiting(self) -> None:
        """Write what waits, a batch per transaction, until nothing does."""
        while self._waiting:
            batch, self._waiting = self._waiting[:_BATCH], self._waiting[_BATCH:]
            try:
                stored = await self._insert(batch)
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].settle(exc)
                    continue
                # one bad activity must not sink the others: write them one at a time
                for pending in batch:
                    try:
                        pending.settle(bool(await self._insert([pending])))
                    except Exception as single:
                        pending.settle(single)
                continue
            for pending in batch:
                pending.settle(pending.values["uri"] in stored)

    async def _insert(self, batch: list[_Pending]) -> set[str]:
        """One transaction: the activities not seen before, and a job for each; their ids."""
        if self._at_once is not None:
            return await self._insert_at_once(batch, *self._at_once)
        rows = [pending.values for pending in batch]
        async with self.db.transaction() as session:
            statement = _insert_new(upsert(session, Object))
            new = {uri: object_id for object_id, uri in await session.execute(statement, rows)}
            jobs = _jobs_of(batch, new)
            await JobQueue.add_many(session, PROCESS, list(jobs.values()))
        return set(jobs)

    async def _insert_at_once(
        self, batch: list[_Pending], activities: PreparedInsert, jobs: PreparedInsert
    ) -> set[str]:
        """:meth:`_insert` on SQLite: bound here, written in one trip (``write_at_once``)."""
        rows = [activities.parameters(pending.values) for pending in batch]

        def write(connection: sqlite3.Connection) -> set[str]:
            new = {uri: object_id for object_id, uri in activities.run(connection, rows)}
            queued = _jobs_of(batch, new)
            job_rows = JobQueue.rows(PROCESS, list(queued.values()))
            jobs.run(connection, [jobs.parameters(row) for row in job_rows])
            return set(queued)

        return await self.db.write_at_once(write)

    # -- process ------------------------------------------------------------------------
    async def process(self, payload: dict[str, Any]) -> None:
        """Run the handler of one stored activity (a batch of one)."""
        failure = (await self._process([(0, payload)], finish=False)).get(0)
        if failure is not None:
            raise failure

    async def process_batch(self, jobs: Sequence[ClaimedJob]) -> dict[int, Exception]:
        """Run a batch of ``process_activity`` jobs; the failures, by job id.

        The others are marked done in the transaction of their work.
        """
        return await self._process([(job.id, job.payload) for job in jobs], finish=True)

    async def _process(
        self, items: Sequence[tuple[int, dict[str, Any]]], *, finish: bool
    ) -> dict[int, Exception]:
        """Load the activities (one read), prepare them (network, concurrently), apply them.

        ``items`` are ``(job id, payload)``; with ``finish`` the jobs applied are
        marked done with their work.
        """
        failures: dict[int, Exception] = {}
        work: list[tuple[int, Received, Handler | None]] = []
        rows = await self._load([payload["object_id"] for _, payload in items])
        for job_id, payload in items:
            row = rows.get(payload["object_id"])
            if row is None:
                failures[job_id] = PermanentFailure(
                    f"the activity row {payload['object_id']} no longer exists"
                )
                continue
            act = Received.of(*row, payload.get("recipient"))
            work.append((job_id, act, handler_for(act)))
        services = replace(self._services, known=await self._named([act for _, act, _ in work]))
        prepared = await asyncio.gather(
            *(self._prepare(services, act, handler) for _, act, handler in work),
            return_exceptions=True,
        )
        steps = []
        stored_before: set[str] = set()
        for (job_id, act, handler), result in zip(work, prepared, strict=True):
            if _may_mend(result) and not act.mentions() & stored_before:
                # nothing before it in the batch can store what it missed: it waits for its
                # retry, without holding the others up (fetched again, one at a time)
                failures[job_id] = _failure(act, result)  # type: ignore[arg-type]
            else:
                steps.append(((job_id, act, handler), result))
            if isinstance(result, Received):
                stored_before |= result.stores()
        while steps:
            # Prepared before the batch applies, an activity may miss what an earlier one
            # stores (a boost of a post created just before): at the first that failed in a
            # way a retry may mend, apply those before it, then prepare it again.
            cut = next((n for n, (_, r) in enumerate(steps) if _may_mend(r)), len(steps))
            ready: list[tuple[int, Received, Handler | None]] = []
            for (job_id, act, handler), result in steps[:cut]:
                if isinstance(result, Received):
                    ready.append((job_id, result, handler))
                elif isinstance(result, Exception):
                    failures[job_id] = _failure(act, result)
                else:
                    raise result
            while ready:
                done = await self._apply(ready, failures, finish=finish)
                ready = ready[done:]
            steps = steps[cut:]
            if steps:
                (job_id, act, handler), result = steps[0]
                if cut == 0:  # nothing new was stored before it: a failure of its own
                    assert isinstance(result, Exception)
                    failures[job_id] = _failure(act, result)
                    steps = steps[1:]
                else:
                    # without the batch's up-front reads: what was applied since made them stale
                    again = await asyncio.gather(self._prepare(self._services, act, handler),
                                                 return_exceptions=True)  # fmt: skip
                    steps[0] = ((job_id, act, handler), again[0])
                    if _may_mend(again[0]):  # it failed again: it stays failed
                        failures[job_id] = _failure(act, again[0])  # type: ignore[arg-type]
                        steps = steps[1:]
        return failures

    async def _load(self, ids: Sequence[int]) -> dict[int, tuple[int, str, dict[str, Any]]]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Object.id, Object.uri, Object.data).where(Object.id.in_(set(ids)))
            )
            return {row_id: (row_id, uri, data) for row_id, uri, data in rows}

    async def _named(self, acts: Sequence[Received]) -> dict[str, Object]:
        """The stored objects the activities name (one read, for their prepare steps)."""
        uris = set().union(*(act.mentions() for act in acts))
        if not uris:
            return {}
        async with self.db.session() as session:
            return {row.uri: row for row in await session.scalars(
                select(Object).where(Object.uri.in_(uris))
            )}  # fmt: skip

    @staticmethod
    async def _prepare(services: Services, act: Received, handler: Handler | None) -> Received:
        if handler is None or handler.prepare is None:
            return act
        return await handler.prepare(services, act)

    async def _apply(
        self,
        ready: Sequence[tuple[int, Received, Handler | None]],
        failures: dict[int, Exception],
        *,
        finish: bool,
    ) -> int:
        """Apply activities in one transaction until the batch is done or has applied them
        for ``_APPLY_SECONDS`` (at least ``_APPLY_AT_LEAST``); returns how many it applied.

        First all together, without savepoints. If one of them fails, that
        transaction is rolled back and the same activities are applied again each
        in a savepoint of its own: a failing activity's savepoint is rolled back
        and its failure recorded, the others are kept. Either way the feed entries
        are written together and the jobs marked done before the commit.
        """
        try:
            return await self._apply_once(ready, failures, finish=finish, careful=False)
        except _Redo:
            return await self._apply_once(ready, failures, finish=finish, careful=True)

    async def _apply_once(
        self,
        ready: Sequence[tuple[int, Received, Handler | None]],
        failures: dict[int, Exception],
        *,
        finish: bool,
        careful: bool,
    ) -> int:
        applied: list[int] = []
        async with self.db.transaction() as session:
            tx = Tx(session, self._services)
            await tx.preload(act for _, act, _ in ready)
            started = time.monotonic()
            for job_id, act, handler in ready:
                if len(applied) >= _APPLY_AT_LEAST and time.monotonic() - started > _APPLY_SECONDS:
                    break
                applied.append(job_id)
                if handler is None:
                    log.info("%s %s: not a type we act on; kept as received", act.type, act.id)
                elif not careful:
                    try:
                        await handler.apply(tx, act)
                    except Exception as exc:
                        raise _Redo from exc
                else:
                    reaches, notices = len(tx.reaches), len(tx.notices)
                    engagements = list(tx.engagements)  # an Undo may take some back
                    try:
                        async with session.begin_nested():
                            await handler.apply(tx, act)
                    except Exception as exc:
                        failures[job_id] = _failure(act, exc)
                        del tx.reaches[reaches:]
                        del tx.notices[notices:]
                        tx.engagements[:] = engagements
                        tx.forget()
            try:
                await write_engagements(session, tx.engagements)
                await add_all_to_feeds(session, tx.reaches)
                await record(session, tx.notices)
            except Exception as exc:  # a post that cannot be written shows up here at the latest
                if careful:
                    raise
                raise _Redo from exc
            if finish:
                await JobQueue.mark_done(session, [i for i in applied if i not in failures])
        return len(applied)


class _Redo(Exception):
    """An activity failed in a batch applied without savepoints: apply it again with them."""


def _may_mend(result: object) -> bool:
    """Whether a prepare step failed in a way that trying again may mend."""
    return isinstance(result, Exception) and not is_final(result)


def _failure(act: Received, exc: Exception) -> Exception:
    """How a failed activity's job ends: for good (with the reason), or retried as raised."""
    if isinstance(exc, FedisocialError) and is_final(exc):
        return PermanentFailure(f"{act.type} {act.id}: {exc.message}")
    if isinstance(exc, DBAPIError) and _is_data_error(exc):
        return PermanentFailure(f"{act.type} {act.id}: a value does not fit its database column")
    return exc
