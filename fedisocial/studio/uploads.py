"""An account's own uploads: read, describe, set the focus, list the drafts, discard one.

Apps upload first and describe afterwards (``PUT /api/v1/media/:id``), until the
image is attached to a post; the alt text is required by then
(:class:`~fedisocial.studio.attachments.StudioAttacher` checks it). The focal
point is Mastodon's: ``x`` and ``y`` from -1 to 1, the centre at 0,0
(https://docs.joinmastodon.org/api/guidelines/#focal-points). The web composer lists
the :func:`drafts` (uploads and generated images not posted yet), so an image made
while its author was elsewhere can still be posted, and :func:`discard` drops one.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select

from fedisocial.errors import BadRequest, NotFound, Unprocessable
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Media
from fedisocial.studio.media import MediaStore, check_alt_text

__all__ = ["DRAFTS_SHOWN", "alt_text", "change", "discard", "drafts", "own_upload", "parse_focus"]

#: the drafts the composer lists, at most (newest first)
DRAFTS_SHOWN = 20


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


async def drafts(db: Database, actor: Actor, limit: int = DRAFTS_SHOWN) -> list[Media]:
    """The actor's images not attached to a post yet, newest first."""
    query = (select(Media).where(Media.owner_id == actor.id, Media.note_uri.is_(None))
             .order_by(Media.id.desc()).limit(limit))  # fmt: skip
    async with db.session() as session:
        return list(await session.scalars(query))


async def discard(db: Database, store: MediaStore, actor: Actor, media_id: int) -> None:
    """Drop one of the actor's unattached images, and its files unless another upload of
    the same bytes still uses them; 404 when it is not such a draft."""
    async with db.transaction() as session:
        mine = (Media.id == media_id) & (Media.owner_id == actor.id)
        media = await session.scalar(select(Media).where(mine, Media.note_uri.is_(None)))
        if media is None:
            raise NotFound("Record not found")
        await session.execute(delete(Media).where(Media.id == media.id))
        shared = await session.scalar(
            select(func.count()).select_from(Media).where(Media.path == media.path)
        )
    if not shared:
        for key in dict.fromkeys((media.path, media.thumbnail_path)):
            await store.delete(key)
