"""Mutes: a local account hides another account without telling them.

A mute is private (it is never federated, unlike a block). While it lasts, the
muted account's posts, its boosts and boosts of its posts leave the muter's home
feed (:func:`hides`, applied by :func:`fedisocial.social.timeline.home`), and, when
``notifications`` is set (Mastodon's default), its notifications too. A mute with
a ``duration`` ends by itself: expired rows are ignored by every read at once and
removed by :func:`expire`. https://docs.joinmastodon.org/methods/accounts/#mute
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, exists, or_, select

from fedisocial.errors import BadRequest
from fedisocial.social.collections import Listing
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Mute, utcnow
from fedisocial.store.rows import upsert

__all__ = ["active", "expire", "hides", "mute", "muted", "mutes_of", "unmute"]

#: the longest mute with a duration Mastodon's apps offer is 7 days; we allow a year
_MAX_DURATION = 365 * 24 * 3600


def active(now: datetime | None = None) -> ColumnElement[bool]:
    """A mute row that has not expired (at ``now``: default, the moment of the call)."""
    moment = now or utcnow()
    return or_(Mute.expires_at.is_(None), Mute.expires_at > moment)


def hides(owner_id: Any, *authors: Any, notifications: bool = False) -> ColumnElement[bool]:
    """Whether the local actor ``owner_id`` (a value or column) mutes any of ``authors``
    (actor id columns or values; a NULL one matches nothing). ``notifications``: only mutes
    that hide notifications too (what a notification list asks)."""
    muting = exists().where(Mute.owner_id == owner_id, Mute.muted_uri.in_(authors), active())
    return muting.where(Mute.notifications.is_(True)) if notifications else muting


async def mute(
    db: Database, owner: Actor, target: Actor, *, notifications: bool = True,
    duration: int | None = None,
) -> Mute:  # fmt: skip
    """Mute ``target`` for ``owner`` (again: the options are updated, as Mastodon does).

    ``duration`` in seconds; None or 0 mutes until unmuted.
    """
    if target.id == owner.id:
        raise BadRequest("you cannot mute yourself")
    if duration is not None and not 0 <= duration <= _MAX_DURATION:
        raise BadRequest(f"duration must be between 0 and {_MAX_DURATION} seconds")
    expires = utcnow() + timedelta(seconds=duration) if duration else None
    values = {"owner_id": owner.id, "muted_uri": target.uri, "notifications": notifications,
              "expires_at": expires, "created_at": utcnow()}  # fmt: skip
    async with db.transaction() as session:
        statement = upsert(session, Mute).values(values)
        await session.execute(statement.on_conflict_do_update(
            index_elements=["owner_id", "muted_uri"],
            set_={"notifications": notifications, "expires_at": expires},
        ))  # fmt: skip
        row = await session.scalar(
            select(Mute).where(Mute.owner_id == owner.id, Mute.muted_uri == target.uri)
        )
    assert row is not None
    return row


async def unmute(db: Database, owner: Actor, target: Actor) -> None:
    """End a mute (nothing happens when there is none)."""
    async with db.transaction() as session:
        await session.execute(
            delete(Mute).where(Mute.owner_id == owner.id, Mute.muted_uri == target.uri)
        )


async def mutes_of(db: Database, owner_id: int, uris: Iterable[str]) -> dict[str, Mute]:
    """The active mutes of ``owner_id`` among ``uris``, by muted actor id."""
    wanted = list(dict.fromkeys(uris))
    if not wanted:
        return {}
    query = select(Mute).where(Mute.owner_id == owner_id, Mute.muted_uri.in_(wanted), active())
    async with db.session() as session:
        return {row.muted_uri: row for row in await session.scalars(query)}


def _uri(row: Sequence[Any]) -> str:
    return str(row[1])


def muted(owner_id: int) -> Listing[str]:
    """The actor ids ``owner_id`` mutes now, the latest mute first (paged by mute row)."""

    def query(*columns: Any) -> Select[Any]:
        return select(*columns).select_from(Mute).where(Mute.owner_id == owner_id, active())

    return Listing(Mute, None, query, (Mute.muted_uri,), _uri)


async def expire(db: Database, now: datetime | None = None) -> int:
    """Remove the mutes that have ended; returns how many."""
    moment = now or utcnow()
    async with db.transaction() as session:
        result = await session.execute(
            delete(Mute).where(Mute.expires_at.is_not(None), Mute.expires_at <= moment)
        )
    return int(getattr(result, "rowcount", 0) or 0)
