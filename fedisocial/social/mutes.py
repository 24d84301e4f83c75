"""Mutes: a local account hides another account without telling them.

A mute is private (it is never federated, unlike a block). While it lasts, the
muted account's posts, its boosts, boosts of its posts, replies to it and posts that
mention it leave the muter's home feed and public timelines (:func:`hides_posts`, as
Mastodon's ``FeedManager#filter_from_home``; the muter's own posts stay), and, when
``notifications`` is set (Mastodon's default), its notifications too. A mute with
a ``duration`` ends by itself: expired rows are ignored by every read at once and
removed by :func:`expire`. https://docs.joinmastodon.org/methods/accounts/#mute
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Select, and_, delete, exists, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from fedisocial.errors import BadRequest
from fedisocial.social.collections import Listing
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Mute, Object, utcnow
from fedisocial.store.rows import upsert

__all__ = ["active", "expire", "hides_posts", "mute", "muted", "mutes_of", "unmute"]

#: the longest mute with a duration Mastodon's apps offer is 7 days; we allow a year
_MAX_DURATION = 365 * 24 * 3600


def active(now: datetime | None = None) -> ColumnElement[bool]:
    """A mute row that has not expired (at ``now``: default, the moment of the call)."""
    moment = now or utcnow()
    return or_(Mute.expires_at.is_(None), Mute.expires_at > moment)


def hides_posts(owner_id: Any, owner_uri: Any, *posts: Any) -> ColumnElement[bool]:
    """Whether ``owner_id`` mutes someone a feed row of ``posts`` (aliases of Object: a
    post, or a boost and the post it boosts, which may be NULL) is by, replies to or
    mentions; never for a row by the owner (``owner_uri``) itself. One EXISTS over the
    owner's mutes, evaluated per row: the feed's own index scan is kept."""
    touched = []
    for post in posts:
        parent = aliased(Object, name="muted_parent")
        replied = exists().where(parent.uri == post.in_reply_to,
                                 parent.actor_uri == Mute.muted_uri)  # fmt: skip
        touched += [Mute.muted_uri == post.actor_uri,
                    and_(post.in_reply_to.is_not(None), replied),
                    _Mentions(post.data, Mute.muted_uri)]  # fmt: skip
    muting = exists().where(Mute.owner_id == owner_id, active(), or_(*touched))
    return and_(posts[0].actor_uri != owner_uri, muting)


class _Mentions(FunctionElement[bool]):
    """Whether the JSON document ``data`` has a Mention of ``uri`` in its ``tag`` (a list,
    or one object)."""

    type = Boolean()
    inherit_cache = True
    name = "mentions"


@compiles(_Mentions, "sqlite")
def _mentions_sqlite(element: _Mentions, compiler: SQLCompiler, **kw: Any) -> str:
    data, uri = (compiler.process(c, **kw) for c in element.clauses)
    return (f"(EXISTS (SELECT 1 FROM json_each({data}, '$.tag') AS t WHERE t.type = 'object' "
            f"AND json_extract(t.value, '$.type') = 'Mention' "
            f"AND json_extract(t.value, '$.href') = {uri}) "
            f"OR (json_extract({data}, '$.tag.type') = 'Mention' "
            f"AND json_extract({data}, '$.tag.href') = {uri}))")  # fmt: skip


@compiles(_Mentions, "postgresql")
def _mentions_postgresql(element: _Mentions, compiler: SQLCompiler, **kw: Any) -> str:
    data, uri = (compiler.process(c, **kw) for c in element.clauses)
    return (f"jsonb_path_exists({data}, "
            f"'lax $.tag[*] ? (@.type == \"Mention\" && @.href == $uri)', "
            f"jsonb_build_object('uri', {uri}))")  # fmt: skip


async def mute(
    db: Database, owner: Actor, target: Actor, *, notifications: bool = True,
    duration: int | None = None,
) -> Mute:  # fmt: skip
    """Mute ``target`` for ``owner`` (again: the options are updated, as Mastodon does).

    ``duration`` in seconds; None or 0 mutes until unmuted.
    """
    if target.id == owner.id:
        raise BadRequest("you cannot mute yourself")
    if duration is not None and not 0 <= duration <= _MAX_DURATION:
        raise BadRequest(f"duration must be between 0 and {_MAX_DURATION} seconds")
    expires = utcnow() + timedelta(seconds=duration) if duration else None
    values = {"owner_id": owner.id, "muted_uri": target.uri, "notifications": notifications,
              "expires_at": expires, "created_at": utcnow()}  # fmt: skip
    async with db.transaction() as session:
        statement = upsert(session, Mute).values(values)
        await session.execute(statement.on_conflict_do_update(
            index_elements=["owner_id", "muted_uri"],
            set_={"notifications": notifications, "expires_at": expires},
        ))  # fmt: skip
        row = await session.scalar(
            select(Mute).where(Mute.owner_id == owner.id, Mute.muted_uri == target.uri)
        )
    assert row is not None
    return row


async def unmute(db: Database, owner: Actor, target: Actor) -> None:
    """End a mute (nothing happens when there is none)."""
    async with db.transaction() as session:
        await session.execute(
            delete(Mute).where(Mute.owner_id == owner.id, Mute.muted_uri == target.uri)
        )


async def mutes_of(db: Database, owner_id: int, uris: Iterable[str]) -> dict[str, Mute]:
    """The active mutes of ``owner_id`` among ``uris``, by muted actor id."""
    wanted = list(dict.fromkeys(uris))
    if not wanted:
        return {}
    query = select(Mute).where(Mute.owner_id == owner_id, Mute.muted_uri.in_(wanted), active())
    async with db.session() as session:
        return {row.muted_uri: row for row in await session.scalars(query)}


def _uri(row: Sequence[Any]) -> str:
    return str(row[1])


def muted(owner_id: int) -> Listing[str]:
    """The actor ids ``owner_id`` mutes now, the latest mute first (paged by mute row)."""

    def query(*columns: Any) -> Select[Any]:
        return select(*columns).select_from(Mute).where(Mute.owner_id == owner_id, active())

    return Listing(Mute, None, query, (Mute.muted_uri,), _uri)


async def expire(db: Database, now: datetime | None = None) -> int:
    """Remove the mutes that have ended; returns how many."""
    moment = now or utcnow()
    async with db.transaction() as session:
        result = await session.execute(
            delete(Mute).where(Mute.expires_at.is_not(None), Mute.expires_at <= moment)
        )
    return int(getattr(result, "rowcount", 0) or 0)
