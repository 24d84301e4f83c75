"""Home feeds: written on arrival (fan-out on write) and read here.

When a post or boost is stored, :func:`add_to_feeds` adds one
``timeline_entries`` row for each local actor whose feed shows it
(:func:`fedisocial.social.access.local_audiences`: the author, the local
followers of its author, its addressees; blocks and the read rule applied).
Reading a feed is then one index range scan, whatever the number of accounts
followed; the read applies the same rule again, so that no entry shows what
its owner may not read.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fedisocial.social.access import Reach, in_feed_of, local_audiences
from fedisocial.social.collections import (
    PAGE_SIZE,
    Cursor,
    Listing,
    Page,
    read_page,
)
from fedisocial.social.mutes import hides
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Object, TimelineEntry
from fedisocial.store.rows import upsert

__all__ = ["FeedItem", "add_all_to_feeds", "add_to_feeds", "home", "home_feed"]


@dataclass(frozen=True)
class FeedItem:
    """A home-feed entry: a post, or a boost (``object`` is the Announce) with what it boosts."""

    object: Object
    boosted: Object | None = None


async def add_to_feeds(
    session: AsyncSession, row: Object, boosted: Object | None = None, reached: Iterable[str] = ()
) -> None:
    """Add a post, or a boost of ``boosted``, to the feeds of its local audience (once each)."""
    await add_all_to_feeds(session, [Reach(row, boosted, reached)])


async def add_all_to_feeds(session: AsyncSession, reaches: Sequence[Reach]) -> None:
    """Add many posts and boosts to the feeds of their local audiences: two statements.

    (:func:`~fedisocial.social.access.local_audiences`; a row deleted meanwhile reaches no one.)
    """
    await session.flush()  # rows added but not yet inserted get their ids
    published = {reach.row.id: reach.row.published for reach in reaches}
    entries = [{"owner_id": owner, "object_id": row_id, "published": published[row_id]}
               for row_id, owner in await local_audiences(session, reaches)]  # fmt: skip
    if entries:
        await session.execute(upsert(session, TimelineEntry).on_conflict_do_nothing(), entries)


@functools.cache
def _feed_joins() -> tuple[Any, Any, ColumnElement[bool]]:
    """The boosted post and owner aliases and what an entry must pass to be shown.

    Built once: building the read rule's expression costs more than running it.
    """
    boosted, owner = aliased(Object, name="boosted"), aliased(Actor, name="owner")
    shown = and_(
        Object.deleted_at.is_(None),
        boosted.deleted_at.is_(None),
        in_feed_of(owner.uri, Object),
        or_(boosted.id.is_(None), in_feed_of(owner.uri, boosted)),
    )
    return boosted, owner, shown


def _feed_item(row: Sequence[Any]) -> FeedItem:
    return FeedItem(row[1], row[2])


def home(owner_id: int) -> Listing[FeedItem]:
    """The home feed of a local actor: its posts, those of whom it follows, boosts.

    Deleted posts, withdrawn boosts, boosts of deleted posts and whatever the
    owner may not read (or whose author it blocks) are left out, and so are the
    posts and boosts of accounts it mutes and boosts of their posts (:mod:`.mutes`).
    """
    boosted, owner, shown = _feed_joins()

    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(TimelineEntry)
            .join(owner, owner.id == TimelineEntry.owner_id)
            .join(Object, Object.id == TimelineEntry.object_id)
            .outerjoin(boosted, (Object.type == "Announce") & (boosted.uri == Object.object_uri))
            .where(TimelineEntry.owner_id == owner_id, shown)
            .where(~hides(owner_id, Object.actor_uri, boosted.actor_uri))
        )

    # a boost's row comes with the post it boosts (joined above): one query a page
    return Listing(TimelineEntry, "published", query, (Object, boosted), _feed_item)


async def home_feed(
    db: Database, owner_id: int, cursor: Cursor = Cursor(), limit: int = PAGE_SIZE
) -> Page[FeedItem]:
    """A page of the home feed, each boost with the post it boosts."""
    return await read_page(db, home(owner_id), cursor, limit)
