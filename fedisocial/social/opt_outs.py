"""Who opted out of AI use (``actors.noai``, FEP-5e53's ``noai`` signal), read cheaply.

The web layer turns these answers into ``X-Robots-Tag: noai, noimageai`` headers, the
matching ``<meta name="robots">`` and the AI crawlers' part of ``robots.txt``; the
account's settings set the column. Each read is one small query (the caller caches).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import exists, select

from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Media

__all__ = ["local_opt_outs", "media_opted_out", "opted_out"]


async def local_opt_outs(db: Database, netloc: str, limit: int) -> list[str]:
    """Usernames of local accounts that opted out, the oldest accounts first, at most ``limit``."""
    query = (
        select(Actor.username)
        .where(Actor.local.is_(True), Actor.domain == netloc, Actor.noai.is_(True))
        .order_by(Actor.id)
        .limit(limit)
    )
    async with db.session() as session:
        return list(await session.scalars(query))


async def opted_out(db: Database, actor_uris: Iterable[str]) -> bool:
    """Whether any of these actors (local or remote) opted out."""
    uris = sorted(set(actor_uris))
    if not uris:
        return False
    query = select(exists().where(Actor.uri.in_(uris), Actor.noai.is_(True)))
    async with db.session() as session:
        return bool(await session.scalar(query))


async def media_opted_out(db: Database, sha256: str) -> bool:
    """Whether an owner of the stored file with this hash opted out.

    Files are stored by content hash, so two accounts may share one; the file is then
    marked if either of them asked (a file is never marked less than its owner asked).
    """
    query = select(
        exists()
        .where(Media.sha256 == sha256, Actor.id == Media.owner_id, Actor.noai.is_(True))
        .correlate()
    )
    async with db.session() as session:
        return bool(await session.scalar(query))
