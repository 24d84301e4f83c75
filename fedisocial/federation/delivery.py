"""Delivery: a fan-out job becomes one signed POST per distinct inbox.

``enqueue_fanout`` runs inside the transaction that stores the activity, so an
activity and its delivery are committed together or not at all. The fan-out
job resolves the recipients (followers collections, actors) to inboxes,
preferring shared inboxes and deduplicating them, and queues one ``deliver``
job per inbox. A delivery that fails is retried on :data:`DELIVER_RETRY` for
about three days, honouring ``Retry-After``; which answers are final is the
job queue's one rule (:func:`fedisocial.jobs.final_status`). A host
that keeps failing for days is marked unreachable: its deliveries are dropped,
except one probe now and then, until it answers again.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap.client import FederationClient, parse_retry_after
from fedisocial.ap.httpsig import HttpSignatureAuth, load_private_key
from fedisocial.ap.vocab import PUBLIC_ALIASES, host_of
from fedisocial.cache import TTLCache
from fedisocial.errors import FedisocialError, RemoteError, RemoteStatus
from fedisocial.federation.remote import fetch_actor
from fedisocial.jobs import JobQueue, PermanentFailure, RetryPolicy, final_status
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Follow, Host, Object, utcnow
from fedisocial.store.rows import upsert

__all__ = ["DELIVER", "DELIVER_RETRY", "FANOUT", "FANOUT_RETRY", "Delivery", "enqueue_fanout"]

log = logging.getLogger(__name__)

FANOUT = "fanout"
DELIVER = "deliver"
#: a host failing for this long is marked unreachable
UNREACHABLE_AFTER = timedelta(days=3)
#: an unreachable host gets one probe delivery this often
PROBE_EVERY = timedelta(hours=6)
#: A server down for a weekend still gets its posts: 15 attempts, the last ones 12 h apart,
#: span 2.7 days (3.4 with jitter), about UNREACHABLE_AFTER. Mastodon retries a delivery
#: 16 times over about two days (Sidekiq's backoff); spreading the tail keeps dead hosts cheap.
DELIVER_RETRY = RetryPolicy(base=60.0, cap=12 * 3600.0, attempts=15, max_retry_after=86400.0)
#: Fan-out is our own work (the database, cached actors): retry soon and for about three
#: hours, so a database restart does not keep a post from federating.
FANOUT_RETRY = RetryPolicy(base=10.0, cap=3600.0, attempts=12)
#: seconds an actor's signing key is reused without reading the actor again (keys rotate)
SIGNER_CACHE_SECONDS = 60.0
#: seconds an activity's bytes stay in memory (a fan-out sends them to every inbox)
BODY_CACHE_SECONDS = 600.0


def enqueue_fanout(
    session: AsyncSession, activity_uri: str, actor_id: int, recipients: Iterable[str],
    *, ref: str | None = None,
) -> None:  # fmt: skip
    """Queue the delivery of a stored activity to ``recipients`` (actor or collection ids).

    ``ref`` names the object the activity is about, so deleting that object can
    cancel deliveries still waiting.
    """
    targets = [r for r in dict.fromkeys(recipients) if r not in PUBLIC_ALIASES]
    if targets:
        payload = {"activity": activity_uri, "actor": actor_id, "recipients": targets, "ref": ref}
        JobQueue.add(session, FANOUT, payload, ref=ref)


#: hosts of inboxes, cached: a fan-out to 10,000 followers asks for the same few often
_host = functools.lru_cache(maxsize=16384)(host_of)


def _spread_hosts(inboxes: list[str]) -> list[str]:
    """Inboxes in rounds over their hosts, so that one host's deliveries do not come in a burst.

    Workers claim jobs in queue order: ten inboxes of one host side by side would
    open ten connections to it at once; spread out, they reuse one connection
    (and stay clear of the host's rate limits).
    """
    by_host: dict[str, list[str]] = {}
    for inbox in inboxes:
        by_host.setdefault(_host(inbox), []).append(inbox)
    if len(by_host) == len(inboxes):
        return inboxes
    rounds = itertools.zip_longest(*by_host.values())
    return [inbox for round_ in rounds for inbox in round_ if inbox is not None]


class Delivery:
    """Runs the ``fanout`` and ``deliver`` jobs."""

    def __init__(
        self, db: Database, client: FederationClient, queue: JobQueue, actor_max_age: timedelta
    ) -> None:
        self.db = db
        self.client = client
        self.queue = queue
        self.actor_max_age = actor_max_age
        self._bodies: TTLCache[str, bytes] = TTLCache(BODY_CACHE_SECONDS, max_entries=1000)
        self._signers: TTLCache[int, HttpSignatureAuth] = TTLCache(SIGNER_CACHE_SECONDS, 1000)
        self._failing: set[str] = set()
        self._failing_read_at = 0.0

    # -- fan-out --------------------------------------------------------------------
    async def fan_out(self, payload: dict[str, Any]) -> None:
        async with self.db.session() as session:
            actor = await session.get(Actor, payload["actor"])
            job_ref = payload["activity"]
        if actor is None:
            raise PermanentFailure(f"actor {payload['actor']} no longer exists")
        inboxes = await self.inboxes_for(actor, payload["recipients"])
        inboxes = _spread_hosts(await self._skip_unreachable(inboxes))
        await self.queue.enqueue_many(
            DELIVER,
            [{"activity": job_ref, "actor": actor.id, "inbox": inbox} for inbox in inboxes],
            ref=payload.get("ref"),
        )

    async def inboxes_for(self, actor: Actor, recipients: Iterable[str]) -> list[str]:
        """Distinct inboxes of the recipients, shared inboxes preferred; ours skipped."""
        inboxes: dict[str, None] = {}
        own_host = _host(actor.uri)
        for recipient in recipients:
            if recipient in PUBLIC_ALIASES:
                continue
            if actor.followers_url and recipient == actor.followers_url:
                for inbox in await self._follower_inboxes(actor):
                    inboxes.setdefault(inbox)
                continue
            if _host(recipient) == own_host:
                continue  # local recipients are handled when the activity is stored
            try:
                target = await fetch_actor(
                    self.db, self.client, recipient, max_age=self.actor_max_age
                )
            except FedisocialError as exc:
                log.info("not delivering to %s: %s", recipient, exc)
                continue
            inboxes.setdefault(target.shared_inbox or target.inbox)
        return list(inboxes)

    async def _follower_inboxes(self, actor: Actor) -> list[str]:
        """The followers' distinct inboxes (shared ones preferred), deduplicated by the database."""
        query = (
            select(func.coalesce(func.nullif(Actor.shared_inbox, ""), Actor.inbox))
            .join(Follow, Follow.follower_uri == Actor.uri)
            .where(Follow.followee_uri == actor.uri, Follow.state == "accepted")
            .where(Actor.local.is_(False))
            .distinct()
        )
        async with self.db.session() as session:
            return list(await session.scalars(query))

    async def _skip_unreachable(self, inboxes: list[str]) -> list[str]:
        hosts = {_host(inbox) for inbox in inboxes}
        if not hosts:
            return inboxes
        now = utcnow()
        async with self.db.session() as session:
            rows = await session.scalars(
                select(Host).where(Host.domain.in_(hosts), Host.unreachable_since.is_not(None))
            )
            down = {
                host.domain
                for host in rows
                if host.last_failure_at and now - host.last_failure_at < PROBE_EVERY
            }
        if down:
            log.info("skipping unreachable hosts: %s", ", ".join(sorted(down)))
        return [inbox for inbox in inboxes if _host(inbox) not in down]

    # -- one delivery -----------------------------------------------------------------
    async def deliver(self, payload: dict[str, Any]) -> None:
        inbox: str = payload["inbox"]
        body = await self._body(payload["activity"])
        auth = await self._auth(payload["actor"])
        try:
            answer = await self.client.post(inbox, body, auth)
        except RemoteError:
            await self._record(inbox, ok=False)
            raise
        if answer.status < 300:
            await self._record(inbox, ok=True)
            return
        final = final_status(answer.status)
        await self._record(inbox, ok=final)  # a final refusal: the host is up, it just says no
        verb = "refused the delivery with" if final else "answered"
        raise RemoteStatus(inbox, answer.status, f"{inbox} {verb} HTTP {answer.status}",
                           retry_after=parse_retry_after(answer.headers))  # fmt: skip

    async def _body(self, activity_uri: str) -> bytes:
        """The activity's bytes, kept in memory: a fan-out sends the same body to every inbox."""
        body = self._bodies.get(activity_uri)
        if body is None:
            async with self.db.session() as session:
                activity = await session.scalar(select(Object).where(Object.uri == activity_uri))
            if activity is None:
                raise PermanentFailure(f"activity {activity_uri} is gone")
            body = orjson.dumps(activity.data)
            self._bodies.put(activity_uri, body)
        return body

    async def _auth(self, actor_id: int) -> HttpSignatureAuth:
        """The signer of an actor's deliveries, kept for a minute (no database read per POST)."""
        cached = self._signers.get(actor_id)
        if cached is not None:
            return cached
        async with self.db.session() as session:
            actor = await session.get(Actor, actor_id)
        if actor is None:
            raise PermanentFailure(f"actor {actor_id} no longer exists")
        if actor.private_key_pem is None:
            raise PermanentFailure(f"{actor.uri} has no private key to sign with")
        auth = HttpSignatureAuth(actor.public_key_id, load_private_key(actor.private_key_pem))
        self._signers.put(actor_id, auth)
        return auth

    async def _failing_hosts(self) -> set[str]:
        """Hosts with recorded failures, re-read every 30 s (other workers write them too)."""
        if time.monotonic() - self._failing_read_at > 30:
            async with self.db.session() as session:
                self._failing = set(await session.scalars(
                    select(Host.domain).where(Host.failures > 0)
                ))  # fmt: skip
            self._failing_read_at = time.monotonic()
        return self._failing

    async def _record(self, inbox: str, *, ok: bool) -> None:
        """Keep the host's health: failures since when; reachable again on success."""
        domain, now = _host(inbox), utcnow()
        if ok:
            if domain in await self._failing_hosts():
                self._failing.discard(domain)
                async with self.db.transaction() as session:
                    await session.execute(
                        update(Host).where(Host.domain == domain).values(
                            failures=0, first_failure_at=None, unreachable_since=None,
                            last_success_at=now,
                        )
                    )  # fmt: skip
            return
        self._failing.add(domain)
        async with self.db.transaction() as session:
            statement = upsert(session, Host).values(
                domain=domain, failures=1, first_failure_at=now, last_failure_at=now
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[Host.domain],
                    set_={"failures": Host.failures + 1, "last_failure_at": now},
                )
            )
            await session.execute(
                update(Host)
                .where(Host.domain == domain, Host.unreachable_since.is_(None))
                .where(Host.first_failure_at < now - UNREACHABLE_AFTER)
                .values(unreachable_since=now)
            )
