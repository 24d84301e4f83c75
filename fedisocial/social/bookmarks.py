"""Bookmarks: posts a local account saved for later. Private: never federated, never shown
to anyone else (Mastodon's ``/api/v1/statuses/:id/bookmark``)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select

from fedisocial.store.db import Database
from fedisocial.store.models import Bookmark
from fedisocial.store.rows import upsert

__all__ = ["bookmark", "bookmarked", "unbookmark"]


async def bookmark(db: Database, owner_id: int, object_id: int) -> None:
    """Save the post ``object_id`` for ``owner_id``; saving it again changes nothing."""
    async with db.transaction() as session:
        insert = upsert(session, Bookmark).values(owner_id=owner_id, object_id=object_id)
        await session.execute(
            insert.on_conflict_do_nothing(index_elements=["owner_id", "object_id"])
        )


async def unbookmark(db: Database, owner_id: int, object_id: int) -> None:
    async with db.transaction() as session:
        await session.execute(
            delete(Bookmark).where(Bookmark.owner_id == owner_id, Bookmark.object_id == object_id)
        )


async def bookmarked(db: Database, owner_id: int, object_ids: Iterable[int]) -> set[int]:
    """Which of ``object_ids`` ``owner_id`` has bookmarked (one query)."""
    wanted = list(set(object_ids))
    if not wanted:
        return set()
    query = select(Bookmark.object_id).where(
        Bookmark.owner_id == owner_id, Bookmark.object_id.in_(wanted)
    )
    async with db.session() as session:
        return set(await session.scalars(query))
