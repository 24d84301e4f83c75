"""An account's own uploads as Mastodon apps handle them: read, describe, set the focus.

Apps upload first and describe afterwards (``PUT /api/v1/media/:id``), until the
image is attached to a post; the alt text is required by then
(:class:`~fedisocial.studio.attachments.StudioAttacher` checks it). The focal
point is Mastodon's: ``x`` and ``y`` from -1 to 1, the centre at 0,0
(https://docs.joinmastodon.org/api/guidelines/#focal-points).
"""

from __future__ import annotations

from sqlalchemy import select

from fedisocial.errors import BadRequest, NotFound, Unprocessable
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Media
from fedisocial.studio.media import check_alt_text

__all__ = ["alt_text", "change", "own_upload", "parse_focus"]


def parse_focus(value: str) -> tuple[float, float]:
    """``"x,y"``, each from -1.0 to 1.0; 422 otherwise."""
    parts = value.split(",")
    try:
        x, y = (float(part) for part in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        x = y = None
    if x is None or y is None or not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0):
        raise Unprocessable(f"focus must be x,y with each from -1.0 to 1.0, not {value!r}")
    return x, y


async def own_upload(db: Database, actor: Actor, media_id: int, *, draft: bool = False) -> Media:
    """One of the actor's uploads (``draft``: only while not attached to a post); 404 else."""
    query = select(Media).where(Media.id == media_id, Media.owner_id == actor.id)
    if draft:
        query = query.where(Media.note_uri.is_(None))
    async with db.session() as session:
        media = await session.scalar(query)
    if media is None:
        raise NotFound("Record not found")
    return media


def alt_text(description: str, max_length: int) -> str:
    """The alt text as given (stripped), "" for none yet; 422 when too long."""
    if not description.strip():
        return ""  # described later, before it is posted
    try:
        return check_alt_text(description, max_length)
    except BadRequest as exc:
        raise Unprocessable(f"Validation failed: {exc.message}") from exc


async def change(
    db: Database,
    actor: Actor,
    media_id: int,
    *,
    description: str | None,
    focus: tuple[float, float] | None,
    max_description: int,
) -> Media:
    """Set the alt text and/or focal point of one of the actor's unattached uploads."""
    async with db.transaction() as session:
        mine = (Media.id == media_id) & (Media.owner_id == actor.id)
        media = await session.scalar(select(Media).where(mine, Media.note_uri.is_(None)))
        if media is None:
            raise NotFound("Record not found")
        if description is not None:
            media.description = alt_text(description, max_description)
        if focus is not None:
            media.focal_x, media.focal_y = focus
    return media
