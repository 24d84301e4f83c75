"""Rows that outlive their use, deleted by the job workers' periodic pruning.

The workers prune finished jobs every minute or so (:class:`fedisocial.jobs.Worker`);
the app hands them :func:`prune` to run at the same time: mutes that have ended
(:func:`fedisocial.social.mutes.expire`; every read ignores them already), stream
events older than :data:`STREAM_EVENTS_KEPT` (streams read only new ones) and
``Idempotency-Key`` records past their window (a repeated key then posts again, as on
Mastodon, whose keys last an hour), and the assistant's ended requests after
:data:`ASSISTANT_REQUESTS_KEPT` (its quotas count a day; the admin's queue shows the
recent ones). Each is one short DELETE by an indexed time column.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from fedisocial.social import mutes
from fedisocial.social.statuses import IDEMPOTENCY_WINDOW
from fedisocial.store.db import Database
from fedisocial.store.models import AssistantRequest, IdempotencyKey, Mute, StreamEvent, utcnow

__all__ = ["ASSISTANT_REQUESTS_KEPT", "STREAM_EVENTS_KEPT", "prunable", "prune"]

#: stream events are read within seconds (:mod:`fedisocial.social.streaming`); kept this long
STREAM_EVENTS_KEPT = timedelta(minutes=10)
#: the assistant's requests that ended are kept this long (quotas count one day of them)
ASSISTANT_REQUESTS_KEPT = timedelta(days=30)


async def prune(db: Database, now: datetime | None = None) -> dict[str, int]:
    """Delete ended mutes, old stream events, idempotency keys and assistant requests; how
    many of each."""
    moment = now or utcnow()
    done = {"mutes": await mutes.expire(db, moment)}
    async with db.transaction() as session:
        events = await session.execute(
            delete(StreamEvent).where(StreamEvent.created_at < moment - STREAM_EVENTS_KEPT)
        )
        keys = await session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at < moment - IDEMPOTENCY_WINDOW)
        )
        asked = await session.execute(
            delete(AssistantRequest).where(
                AssistantRequest.created_at < moment - ASSISTANT_REQUESTS_KEPT,
                AssistantRequest.status.not_in(("queued", "running")),
            )
        )
    done["stream_events"] = int(getattr(events, "rowcount", 0) or 0)
    done["idempotency_keys"] = int(getattr(keys, "rowcount", 0) or 0)
    done["assistant_requests"] = int(getattr(asked, "rowcount", 0) or 0)
    return done


async def prunable(db: Database, now: datetime | None = None) -> dict[str, int]:
    """How many rows :func:`prune` would delete now, by table (``fedisocial status``)."""
    moment = now or utcnow()
    counted = {
        "mutes": select(func.count()).select_from(Mute).where(
            Mute.expires_at.is_not(None), Mute.expires_at <= moment),
        "stream_events": select(func.count()).select_from(StreamEvent).where(
            StreamEvent.created_at < moment - STREAM_EVENTS_KEPT),
        "idempotency_keys": select(func.count()).select_from(IdempotencyKey).where(
            IdempotencyKey.created_at < moment - IDEMPOTENCY_WINDOW),
        "assistant_requests": select(func.count()).select_from(AssistantRequest).where(
            AssistantRequest.created_at < moment - ASSISTANT_REQUESTS_KEPT,
            AssistantRequest.status.not_in(("queued", "running"))),
    }  # fmt: skip
    async with db.session() as session:
        return {name: await session.scalar(query) or 0 for name, query in counted.items()}
