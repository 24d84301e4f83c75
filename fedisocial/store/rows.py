"""Storage helpers shared by every writer: the dialect's upsert, URI limits, object columns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap.addressing import visibility_of
from fedisocial.ap.vocab import get_id
from fedisocial.errors import InvalidDocument
from fedisocial.store.models import utcnow

__all__ = ["MAX_URI", "check_uri_lengths", "dialect_insert", "object_columns", "upsert"]

#: the longest URI our columns hold (String(2048); PostgreSQL enforces it)
MAX_URI = 2048


def upsert(session: AsyncSession, model: Any) -> Any:
    """``INSERT`` for ``model`` in the session's dialect, with ``on_conflict_do_*`` available."""
    return dialect_insert(session.bind.dialect.name if session.bind is not None else "sqlite",
                          model)  # fmt: skip


def dialect_insert(dialect: str, model: Any) -> Any:
    """``INSERT`` for ``model`` in ``dialect`` (its name), with ``on_conflict_do_*``."""
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


def check_uri_lengths(what: str, values: Mapping[str, str | None]) -> None:
    """Refuse (400) a document whose ids do not fit our URI columns."""
    for name, value in values.items():
        if value is not None and len(value) > MAX_URI:
            raise InvalidDocument(f"the {what}'s {name} is longer than {MAX_URI} characters")


def _published(doc: dict[str, Any]) -> datetime:
    text = doc.get("published")
    if isinstance(text, str):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return utcnow()
        if moment.tzinfo is not None:
            return moment
    return utcnow()


def object_columns(doc: dict[str, Any], followers: str | None = None) -> dict[str, Any]:
    """The indexed columns of an ``objects`` row, read from a normalized document."""
    actor = get_id(doc.get("attributedTo")) or get_id(doc.get("actor"))
    return {
        "type": str(doc.get("type") or "Object")[:64],
        "actor_uri": actor,
        "published": _published(doc),
        "visibility": visibility_of(
            doc.get("to", []), doc.get("cc", []), followers, doc.get("audience", [])
        ),
        "in_reply_to": get_id(doc.get("inReplyTo")),
        "object_uri": get_id(doc.get("object")),
    }
