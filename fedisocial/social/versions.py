"""The edit history of posts: every edit keeps the version it replaces.

Mastodon shows a post's history (``GET /api/v1/statuses/:id/history``) as its
versions, oldest first, ending with the current one. We keep each earlier
document in :class:`PostVersion` when an edit replaces it: our own edits
(:meth:`fedisocial.social.outbox.Outbox.replace` and ``edit``) and the
``Update`` of a remote post (:mod:`fedisocial.federation.handlers`), where a
redelivered Update (the same ``updated``) records nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.social.content import plain_text
from fedisocial.store.db import Database
from fedisocial.store.models import Object, PostVersion

__all__ = ["Version", "history", "made_at", "record", "source_text"]


@dataclass(frozen=True)
class Version:
    """One version of a post: its document and when it was made."""

    data: dict[str, Any]
    created_at: datetime


def made_at(doc: Mapping[str, Any], published: datetime) -> datetime:
    """When the version ``doc`` was made: its ``updated``, else when the post was published."""
    value = doc.get("updated")
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return published
        if moment.tzinfo is not None:
            return moment
    return published


def record(session: AsyncSession, row: Object) -> None:
    """Keep ``row``'s document as an earlier version, before an edit replaces it."""
    session.add(PostVersion(object_id=row.id, data=row.data,
                            created_at=made_at(row.data, row.published)))  # fmt: skip


async def history(db: Database, row: Object) -> list[Version]:
    """Every version of ``row``, oldest first, the current one last."""
    query = (
        select(PostVersion)
        .where(PostVersion.object_id == row.id)
        .order_by(PostVersion.created_at, PostVersion.id)
    )
    async with db.session() as session:
        earlier = [Version(v.data, v.created_at) for v in await session.scalars(query)]
    return [*earlier, Version(row.data, made_at(row.data, row.published))]


def source_text(doc: Mapping[str, Any]) -> str:
    """The text a post was written as: its plain-text ``source``, else its content as text."""
    source = doc.get("source")
    if isinstance(source, dict) and isinstance(source.get("content"), str):
        return str(source["content"])
    return plain_text(str(doc.get("content") or ""))
