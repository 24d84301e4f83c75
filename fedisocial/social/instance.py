"""Facts about this instance that its public descriptions share (Mastodon's instance API).

- :func:`peers`: the domains of the remote accounts we know (``/api/v1/instance/peers``),
  and :func:`peer_count` for the ``domain_count`` statistic.
- :func:`contact`: the account to contact about the instance, the first admin.
"""

from __future__ import annotations

from sqlalchemy import func, select

from fedisocial.store.db import Database
from fedisocial.store.models import Actor, User

__all__ = ["contact", "peer_count", "peers"]

_REMOTE = (Actor.local.is_(False), Actor.domain != "")


async def peers(db: Database) -> list[str]:
    """The domains of the remote actors we know, sorted."""
    query = select(Actor.domain).where(*_REMOTE).distinct().order_by(Actor.domain)
    async with db.session() as session:
        return list(await session.scalars(query))


async def peer_count(db: Database) -> int:
    """How many domains :func:`peers` lists."""
    query = select(func.count(func.distinct(Actor.domain))).where(*_REMOTE)
    async with db.session() as session:
        return await session.scalar(query) or 0


async def contact(db: Database) -> Actor | None:
    """The instance's contact: its first approved admin (None when it has none)."""
    query = (
        select(Actor)
        .join(User, User.actor_id == Actor.id)
        .where(User.is_admin.is_(True), User.approved.is_(True))
        .order_by(User.id)
        .limit(1)
    )
    async with db.session() as session:
        found: Actor | None = await session.scalar(query)
    return found
