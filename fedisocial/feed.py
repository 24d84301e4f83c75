"""Home feeds, written on arrival (fan-out on write).

When a post or boost is stored, one ``timeline_entries`` row is added for each
local actor who should see it: its author, the local followers of its author
(the post is public, unlisted or followers-only) and the local actors it is
addressed to. Reading a feed is then one index range scan, whatever the number
of accounts followed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.store.models import Actor, Follow, TimelineEntry

__all__ = ["add_to_feeds", "local_audience"]


async def local_audience(
    session: AsyncSession, author_uri: str, visibility: str, addressed: Iterable[str]
) -> list[int]:
    """Ids of the local actors who should see a post: author, followers, addressees."""
    audience = {author_uri, *addressed}
    query = select(Actor.id).where(Actor.local.is_(True), Actor.uri.in_(audience))
    ids = set(await session.scalars(query))
    if visibility != "direct":
        followers = (
            select(Actor.id)
            .join(Follow, Follow.follower_uri == Actor.uri)
            .where(Follow.followee_uri == author_uri, Follow.state == "accepted")
            .where(Actor.local.is_(True))
        )
        ids.update(await session.scalars(followers))
    return sorted(ids)


async def add_to_feeds(
    session: AsyncSession, object_id: int, published: datetime, owner_ids: Iterable[int]
) -> None:
    """Add an object to the feeds of ``owner_ids`` (repeats are ignored)."""
    rows = [{"owner_id": o, "object_id": object_id, "published": published} for o in owner_ids]
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(upsert(TimelineEntry).on_conflict_do_nothing(), rows)
