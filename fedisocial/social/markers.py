"""Where a local account stopped reading its home feed and its notifications.

Mastodon's markers (https://docs.joinmastodon.org/methods/markers/): one row per
account and timeline, the id of the last item read and a ``version`` that grows
by one with each change (Rails' lock_version: 0 when made, a save that changes
nothing leaves it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select

from fedisocial.store.db import Database
from fedisocial.store.models import Marker, utcnow

__all__ = ["TIMELINES", "advance", "read", "save"]

#: the timelines that have markers
TIMELINES = ("home", "notifications")


async def read(db: Database, owner_id: int, timelines: Iterable[str]) -> list[Marker]:
    """The markers of ``owner_id`` for ``timelines`` (those it has; others are ignored)."""
    wanted = [name for name in dict.fromkeys(timelines) if name in TIMELINES]
    if not wanted:
        return []
    query = select(Marker).where(Marker.owner_id == owner_id, Marker.timeline.in_(wanted))
    async with db.session() as session:
        return list(await session.scalars(query.order_by(Marker.timeline)))


async def save(db: Database, owner_id: int, last_read: Mapping[str, str]) -> list[Marker]:
    """Set ``last_read`` (timeline → id read) for ``owner_id``; the markers as saved."""
    wanted = {name: value for name, value in last_read.items() if name in TIMELINES}
    saved = []
    async with db.transaction() as session:
        for name, value in sorted(wanted.items()):
            marker = await session.get(Marker, (owner_id, name), with_for_update=True)
            if marker is None:
                marker = Marker(owner_id=owner_id, timeline=name, last_read_id=value,
                                version=0, updated_at=utcnow())  # fmt: skip
                session.add(marker)
            elif marker.last_read_id != value:
                marker.last_read_id, marker.version = value, marker.version + 1
                marker.updated_at = utcnow()
            saved.append(marker)
    return saved


async def advance(db: Database, owner_id: int, timeline: str, read_up_to: int) -> None:
    """Move the marker of ``timeline`` up to ``read_up_to`` (an id), never back: what the
    web app does when a page shows the newest items (Mastodon's web UI does the same)."""
    found = await read(db, owner_id, [timeline])
    current = found[0].last_read_id if found else ""
    if not (current.isdigit() and int(current) >= read_up_to):
        await save(db, owner_id, {timeline: str(read_up_to)})
