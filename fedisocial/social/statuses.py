"""Statuses as Mastodon apps make and read them: posting, editing, threads, pins.

What ``/api/v1/statuses`` does, on top of :class:`Outbox` (so every post, edit
and delete federates like any other) and of the read rule of
:mod:`fedisocial.social.access` (a status nobody may show to the viewer does
not exist for them). Mastodon's rules kept here:

- a post needs text or media; its text has our one length rule
  (:func:`fedisocial.social.outbox.check_length`); failures are 422;
- the ``Idempotency-Key`` of a post: the same key from the same account within
  an hour gives back the first post and posts nothing (Mastodon keeps it an hour
  in Redis; we keep a hash of it in ``idempotency_keys``);
- a thread (``/context``) is what we have stored of it: ancestors up the
  ``inReplyTo`` chain, descendants depth first, each only if the viewer may read it;
- pins: one's own public or unlisted posts, at most :data:`MAX_PINS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fedisocial.ap.addressing import Visibility
from fedisocial.ap.vocab import POST_TYPES
from fedisocial.errors import BadRequest, NotFound, Unprocessable
from fedisocial.social.access import readable_by
from fedisocial.social.c2s import Attached
from fedisocial.social.outbox import Outbox, check_length
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Engagement, IdempotencyKey, Media, Object, utcnow

__all__ = [
    "CONTEXT_LIMIT",
    "IDEMPOTENCY_WINDOW",
    "MAX_PINS",
    "Composed",
    "ancestors",
    "create",
    "delete_status",
    "descendants",
    "edit",
    "engagement",
    "favourite",
    "pin",
    "readable_status",
    "readable_statuses",
    "reblog",
    "target_of",
    "unfavourite",
    "unreblog",
]

#: how long an Idempotency-Key gives back the first post (Mastodon: one hour)
IDEMPOTENCY_WINDOW = timedelta(hours=1)
#: Mastodon allows five pinned posts
MAX_PINS = 5
#: the most ancestors or descendants a thread shows (Mastodon's 4,096 for descendants)
CONTEXT_LIMIT = 4096
_MAX_ANCESTORS = 256


@dataclass(frozen=True)
class Composed:
    """What an app sends for a post or its edit, read and checked by the web layer."""

    text: str
    visibility: Visibility = "public"
    parent: Object | None = None
    summary: str | None = None
    sensitive: bool = False
    language: str | None = None


def _check(composed: Composed, attached: Attached) -> None:
    if not composed.text.strip() and not attached.attachments:
        raise Unprocessable("Validation failed: Text can't be blank")
    try:
        check_length(composed.text)
    except BadRequest as exc:
        raise Unprocessable(f"Validation failed: {exc.message}") from exc


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def _idempotent(db: Database, owner_id: int, key: str) -> Object | None:
    """The post an earlier request with this key made, if within the window and not deleted."""
    query = (
        select(Object)
        .join(IdempotencyKey, IdempotencyKey.object_id == Object.id)
        .where(IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == _key_hash(key),
               IdempotencyKey.created_at > utcnow() - IDEMPOTENCY_WINDOW,
               Object.deleted_at.is_(None))
    )  # fmt: skip
    async with db.session() as session:
        return await session.scalar(query)


async def create(
    outbox: Outbox, actor: Actor, composed: Composed, attached: Attached, key: str | None,
    application_id: int | None = None,
) -> Object:  # fmt: skip
    """Post ``composed`` with ``attached`` media (through the app ``application_id``, if
    any); a repeated ``key`` gives the first post."""
    if key:
        earlier = await _idempotent(outbox.db, actor.id, key)
        if earlier is not None:
            return earlier
    _check(composed, attached)
    note = await outbox.compose(
        actor, composed.text, visibility=composed.visibility, parent=composed.parent,
        summary=composed.summary, attachments=attached.attachments,
        sensitive=composed.sensitive, language=composed.language, keep_source=True,
    )  # fmt: skip
    note = attached.finish(note)

    async def within(session: AsyncSession, row: Object) -> None:
        if attached.link is not None:
            await attached.link(session, row, [])
        if key:
            hashed = _key_hash(key)
            await session.execute(delete(IdempotencyKey).where(
                IdempotencyKey.owner_id == actor.id, IdempotencyKey.key == hashed))  # fmt: skip
            session.add(IdempotencyKey(owner_id=actor.id, key=hashed, object_id=row.id))

    try:
        row, _create = await outbox.publish(actor, note, within=within,
                                            application_id=application_id)  # fmt: skip
    except IntegrityError:
        # the same key, at the same moment, from another request: that one posted
        earlier = await _idempotent(outbox.db, actor.id, key) if key else None
        if earlier is None:
            raise
        return earlier
    return row


async def edit(
    outbox: Outbox, actor: Actor, row: Object, composed: Composed, attached: Attached
) -> Object:
    """Edit one of the actor's posts: new text, content warning, media, language.

    The visibility and the post replied to stay; the Update federates and the version
    replaced is kept in the post's history.
    """
    _check(composed, attached)
    parent = None
    if row.in_reply_to:
        async with outbox.db.session() as session:
            parent = await session.scalar(select(Object).where(Object.uri == row.in_reply_to))
    note = await outbox.compose(
        actor, composed.text, visibility=composed.visibility, parent=parent,
        summary=composed.summary, attachments=attached.attachments,
        sensitive=composed.sensitive, language=composed.language, keep_source=True,
        uri=row.uri, published=row.published, updated=utcnow(),
    )  # fmt: skip
    if parent is None and row.in_reply_to:
        note["inReplyTo"] = row.in_reply_to  # a parent we never stored stays the parent
    note = attached.finish(note)

    async def within(session: AsyncSession, stored: Object) -> None:
        if attached.link is not None:
            await attached.link(session, stored, [])

    edited, _update = await outbox.replace(actor, row.uri, lambda _row: note, within=within)
    return edited


async def delete_status(outbox: Outbox, actor: Actor, row: Object) -> None:
    """Delete one of the actor's posts; its media may be attached again (delete and redraft,
    as Mastodon keeps them for a redraft)."""
    await outbox.delete(actor, row.uri)
    async with outbox.db.transaction() as session:
        await session.execute(update(Media).where(Media.note_uri == row.uri).values(note_uri=None))


async def pin(outbox: Outbox, actor: Actor, row: Object, *, pinned: bool) -> Object:
    """Pin (or unpin) a post to the actor's profile, as Mastodon validates it: one's own
    public or unlisted posts only, at most :data:`MAX_PINS`; unpinning what is not pinned
    does nothing. Returns the post."""
    if not pinned:
        if row.pinned_at is not None:
            await outbox.feature(actor, row.uri, pinned=False)
        return await _reload(outbox.db, row)
    if row.actor_uri != actor.uri or not row.local or row.type == "Announce":
        raise Unprocessable("Validation failed: You can only pin your own posts")
    if row.visibility not in ("public", "unlisted"):
        raise Unprocessable("Validation failed: Only public and unlisted posts can be pinned")
    if row.pinned_at is not None:
        raise Unprocessable("Validation failed: this post is already pinned")
    async with outbox.db.session() as session:
        count = await session.scalar(select(func.count()).select_from(Object).where(
            Object.actor_uri == actor.uri, Object.pinned_at.is_not(None),
            Object.deleted_at.is_(None)))  # fmt: skip
    if (count or 0) >= MAX_PINS:
        raise Unprocessable(f"Validation failed: you can pin at most {MAX_PINS} posts")
    await outbox.feature(actor, row.uri, pinned=True)
    return await _reload(outbox.db, row)


# -- favourites and boosts (acting twice is not an error, as on Mastodon) ------------------


async def engagement(db: Database, actor: Actor, kind: str, row: Object) -> str | None:
    """The id of the actor's ``kind`` ("like", "announce") of ``row``, if any."""
    async with db.session() as session:
        return await session.scalar(select(Engagement.activity_uri).where(
            Engagement.kind == kind, Engagement.actor_uri == actor.uri,
            Engagement.object_uri == row.uri))  # fmt: skip


async def favourite(outbox: Outbox, actor: Actor, row: Object) -> None:
    if await engagement(outbox.db, actor, "like", row) is None:
        await outbox.like(actor, row.uri)


async def unfavourite(outbox: Outbox, actor: Actor, row: Object) -> None:
    if await engagement(outbox.db, actor, "like", row) is not None:
        await outbox.unlike(actor, row.uri)


async def reblog(outbox: Outbox, actor: Actor, row: Object, visibility: Visibility) -> Object:
    """Boost ``row`` (public, unlisted or followers); the boost, new or the one made before."""
    if visibility == "direct":
        raise Unprocessable("Validation failed: a boost is public, unlisted or private")
    existing = await engagement(outbox.db, actor, "announce", row)
    if existing is None:
        return await outbox.boost(actor, row.uri, visibility)
    async with outbox.db.session() as session:
        boost = await session.scalar(select(Object).where(Object.uri == existing))
    if boost is None:
        raise NotFound("Record not found")
    return boost


async def unreblog(outbox: Outbox, actor: Actor, row: Object) -> None:
    if await engagement(outbox.db, actor, "announce", row) is not None:
        await outbox.unboost(actor, row.uri)


async def _reload(db: Database, row: Object) -> Object:
    async with db.session() as session:
        return await session.get_one(Object, row.id)


# -- reading -----------------------------------------------------------------------------


async def readable_statuses(db: Database, ids: Sequence[int], viewer: str | None) -> list[Object]:
    """The posts and boosts among ``ids`` that ``viewer`` may read, in the order of ``ids``.

    A boost needs its post too: stored, not deleted, readable. Others are left out.
    """
    if not ids:
        return []
    boosted = aliased(Object)
    query = (
        select(Object)
        .outerjoin(boosted, (Object.type == "Announce") & (boosted.uri == Object.object_uri))
        .where(
            Object.id.in_(list(ids)),
            Object.type.in_([*POST_TYPES, "Announce"]),
            Object.deleted_at.is_(None),
            readable_by(viewer),
            (Object.type != "Announce")
            | (boosted.id.is_not(None) & boosted.deleted_at.is_(None)
               & readable_by(viewer, boosted)),
        )
    )  # fmt: skip
    async with db.session() as session:
        found = {row.id: row for row in await session.scalars(query)}
    return [found[i] for i in dict.fromkeys(ids) if i in found]


async def target_of(db: Database, row: Object) -> Object:
    """``row``; a boost stands for the post it boosts (what one favourites or replies to)."""
    if row.type != "Announce":
        return row
    async with db.session() as session:
        target = await session.scalar(select(Object).where(Object.uri == row.object_uri))
    if target is None:
        raise NotFound("Record not found")
    return target


async def readable_status(db: Database, status_id: int, viewer: str | None) -> Object:
    """One status the viewer may read; 404 otherwise (as Mastodon answers)."""
    found = await readable_statuses(db, [status_id], viewer)
    if not found:
        raise NotFound("Record not found")
    return found[0]


async def _readable_posts(db: Database, uris: Sequence[str], viewer: str | None) -> list[Object]:
    if not uris:
        return []
    query = select(Object).where(
        Object.uri.in_(list(uris)), Object.type.in_(POST_TYPES), Object.deleted_at.is_(None),
        readable_by(viewer),
    )  # fmt: skip
    async with db.session() as session:
        return list(await session.scalars(query))


async def ancestors(db: Database, row: Object, viewer: str | None) -> list[Object]:
    """The posts ``row`` replies to that we have, the thread's first post first."""
    chain: list[str] = []
    parent = row.in_reply_to
    async with db.session() as session:
        while parent and parent not in chain and len(chain) < _MAX_ANCESTORS:
            chain.append(parent)
            parent = await session.scalar(select(Object.in_reply_to).where(Object.uri == parent))
    shown = {post.uri: post for post in await _readable_posts(db, chain, viewer)}
    return [shown[uri] for uri in reversed(chain) if uri in shown]


async def descendants(db: Database, row: Object, viewer: str | None) -> list[Object]:
    """The replies to ``row``, and theirs, that we have: depth first, oldest first."""
    children: dict[str, list[tuple[datetime, int, str]]] = {}
    level, seen = [row.uri], {row.uri}
    async with db.session() as session:
        while level and len(seen) <= CONTEXT_LIMIT:
            query = select(Object.uri, Object.in_reply_to, Object.published, Object.id).where(
                Object.in_reply_to.in_(level), Object.deleted_at.is_(None)
            )
            found = [r for r in await session.execute(query) if r[0] not in seen]
            level = []
            for uri, parent, published, ident in found[: CONTEXT_LIMIT + 1 - len(seen)]:
                children.setdefault(str(parent), []).append((published, ident, uri))
                seen.add(uri)
                level.append(uri)
    ordered: list[str] = []
    stack = [uri for *_, uri in sorted(children.get(row.uri, []), reverse=True)]
    while stack:  # depth first, each post's replies oldest first (ties: in the order stored)
        uri = stack.pop()
        ordered.append(uri)
        stack.extend(u for *_, u in sorted(children.get(uri, []), reverse=True))
    shown = {post.uri: post for post in await _readable_posts(db, ordered, viewer)}
    return [shown[uri] for uri in ordered if uri in shown]
