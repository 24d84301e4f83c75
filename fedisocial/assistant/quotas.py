"""The assistant's quotas: per asker, per asker's server and in all, per hour and per day.

The ledger (``assistant_requests``) is the counter: a request counts once the
assistant takes it on (running, answered, refused or failed), in a sliding window.
Over a quota, the asker is told once per window when to try again (a ``limited``
request with a reply); later requests in that window are left unanswered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.config import Settings
from fedisocial.store.models import AssistantRequest

__all__ = ["COUNTED", "Over", "over_quota", "told_in"]

#: the statuses of requests the assistant took on: what the quotas count
COUNTED = ("running", "answered", "refused", "failed")
_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)


@dataclass(frozen=True)
class Over:
    """A quota reached: which (``scope``, for the reply), its window, and when a request
    fits again (``until``)."""

    scope: str
    limit: int
    window: timedelta
    until: datetime


def _quotas(settings: Settings, asker: str, domain: str) -> list[
    tuple[str, int, timedelta, ColumnElement[bool]]
]:  # fmt: skip
    s, by_asker = settings, AssistantRequest.asker_uri == asker
    by_domain = AssistantRequest.asker_domain == domain
    every = AssistantRequest.id.is_not(None)
    return [
        ("per account per hour", s.assistant_per_actor_per_hour, _HOUR, by_asker),
        ("per account per day", s.assistant_per_actor_per_day, _DAY, by_asker),
        (f"per server ({domain}) per hour", s.assistant_per_domain_per_hour, _HOUR, by_domain),
        (f"per server ({domain}) per day", s.assistant_per_domain_per_day, _DAY, by_domain),
        ("for everyone per hour", s.assistant_per_instance_per_hour, _HOUR, every),
        ("for everyone per day", s.assistant_per_instance_per_day, _DAY, every),
    ]


async def over_quota(
    session: AsyncSession, settings: Settings, request: AssistantRequest, now: datetime
) -> Over | None:
    """The first quota ``request`` would exceed, if any (itself not counted: a request run
    again after its text model failed was counted once already)."""
    asker, domain = request.asker_uri, request.asker_domain
    for scope, limit, window, which in _quotas(settings, asker, domain):
        counted = (select(AssistantRequest.created_at)
                   .where(which, AssistantRequest.status.in_(COUNTED),
                          AssistantRequest.created_at > now - window,
                          AssistantRequest.id != request.id))  # fmt: skip
        used = await session.scalar(select(func.count()).select_from(counted.subquery())) or 0
        if used < limit:
            continue
        # a request fits again when the one that makes the count reach the limit leaves
        oldest = await session.scalar(
            counted.order_by(AssistantRequest.created_at).offset(used - limit).limit(1)
        )
        assert oldest is not None
        return Over(f"{limit} {scope}", limit, window, oldest + window)
    return None


async def told_in(session: AsyncSession, asker: str, window: timedelta, now: datetime) -> bool:
    """Whether ``asker`` was told to wait within the last ``window`` (told once a window)."""
    told = await session.scalar(
        select(AssistantRequest.id).where(
            AssistantRequest.asker_uri == asker, AssistantRequest.status == "limited",
            AssistantRequest.reply_uri.is_not(None), AssistantRequest.created_at > now - window,
        ).limit(1)
    )  # fmt: skip
    return told is not None
