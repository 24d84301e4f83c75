"""Reads behind our collections and pages: paging and counts.

Every collection pages the way Mastodon's do: newest first, :data:`PAGE_SIZE`
items a page, ``max_id`` to go back in time and ``min_id`` to come forward
(``since_id``: the newest items down to it, as Mastodon's ``since_id``).
Cursors are row ids of the table a collection reads (opaque to clients); the
order is a keyset on (time column, row id), so any page is one index range
scan, however deep. A :class:`Listing` says what one collection selects; the
web layer turns its pages into AS2 documents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Boolean, ColumnElement, Select, and_, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from fedisocial.ap.render import iso
from fedisocial.ap.vocab import POST_TYPES
from fedisocial.social.access import in_feed_of, readable_by
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Engagement, Follow, Object

__all__ = [
    "PAGE_SIZE",
    "Counts",
    "Cursor",
    "Listing",
    "Page",
    "activity_document",
    "bare",
    "count",
    "counts",
    "engagers",
    "featured",
    "find_activity",
    "find_object",
    "followers",
    "following",
    "liked",
    "likes",
    "outbox",
    "pending_followers",
    "pending_following",
    "profile_posts",
    "read_page",
    "replies",
    "shares",
]

#: items per collection page (Mastodon's figure)
PAGE_SIZE = 20
#: at most this many pinned posts are listed (Mastodon allows 5 pins)
_MAX_FEATURED = 50

T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    """Where a page starts and ends (Mastodon's ``Paginable``): before ``max_id`` (older);
    ``min_id``: the items immediately newer (the oldest of them, shown newest first);
    ``since_id``: the newest items, down to (not including) it. ``max_id`` bounds either;
    ``since_id`` is ignored beside ``min_id``. They differ when more than a page is newer.
    """

    max_id: int | None = None
    min_id: int | None = None
    since_id: int | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """Items newest first; ``next_max_id``/``prev_min_id`` are set when more exist."""

    items: list[T]
    next_max_id: int | None = None
    prev_min_id: int | None = None


@dataclass(frozen=True)
class Listing(Generic[T]):
    """One collection: the rows it selects, their order and how a row becomes an item.

    ``query(*columns)`` selects ``columns`` with the collection's joins and
    filters; ``values`` are the columns an item is made of, ``item`` makes it.
    ``sort`` names the time column of ``model`` (None: order by id alone).
    """

    model: Any
    sort: str | None
    query: Callable[..., Select[Any]]
    values: tuple[Any, ...]
    item: Callable[[Sequence[Any]], T]


@dataclass(frozen=True)
class Counts:
    """What a post shows under it."""

    replies: int = 0
    likes: int = 0
    shares: int = 0


# -- paging -------------------------------------------------------------------------------


def _pivot(model: Any, sort: str, cursor: int) -> Any:
    """The sort value of the row ``cursor`` (a scalar subquery on an alias of ``model``)."""
    other = aliased(model)
    return select(getattr(other, sort)).where(other.id == cursor).scalar_subquery()


def _beyond(model: Any, sort: str | None, cursor: int, *, older: bool) -> ColumnElement[bool]:
    ident = model.id
    if sort is None:
        return ident < cursor if older else ident > cursor  # type: ignore[no-any-return]
    column, pivot = getattr(model, sort), _pivot(model, sort, cursor)
    # a cursor naming no row (min_id=0 for the last page, a row since removed) pages by id
    if older:
        return or_(column < pivot, and_(or_(column == pivot, pivot.is_(None)), ident < cursor))
    return or_(column > pivot, and_(or_(column == pivot, pivot.is_(None)), ident > cursor))


def _order(model: Any, sort: str | None, *, newest_first: bool) -> list[Any]:
    columns = [model.id] if sort is None else [getattr(model, sort), model.id]
    return [c.desc() if newest_first else c.asc() for c in columns]


async def read_page(
    db: Database, listing: Listing[T], cursor: Cursor = Cursor(), limit: int = PAGE_SIZE
) -> Page[T]:
    """One page of ``listing``, newest first, with the cursors of its neighbours."""
    model, sort = listing.model, listing.sort
    query = listing.query(model.id, *listing.values)
    upward = cursor.min_id is not None
    if cursor.max_id is not None:
        query = query.where(_beyond(model, sort, cursor.max_id, older=True))
    newer_than = cursor.min_id if upward else cursor.since_id
    if newer_than is not None:
        query = query.where(_beyond(model, sort, newer_than, older=False))
    query = query.order_by(*_order(model, sort, newest_first=not upward))
    async with db.session() as session:
        rows = list((await session.execute(query.limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    bounded = cursor.max_id is not None and bool(rows)  # what is beyond max_id is newer
    if upward:
        rows.reverse()
        newer, older = more or bounded, bool(rows)  # the row at min_id is older than this page
    else:
        newer, older = bounded, more
    return Page(
        items=[listing.item(row) for row in rows],
        next_max_id=rows[-1][0] if older else None,
        prev_min_id=rows[0][0] if newer else None,
    )


async def count(db: Database, listing: Listing[Any]) -> int:
    """``totalItems`` of ``listing``."""
    async with db.session() as session:
        return await session.scalar(listing.query(func.count())) or 0


# -- listings -------------------------------------------------------------------------------


def bare(doc: dict[str, Any]) -> dict[str, Any]:
    """A document to embed: without its own ``@context``."""
    return {k: v for k, v in doc.items() if k != "@context"}


def activity_document(activity: Object, target: Object | None) -> dict[str, Any]:
    """An activity as stored; a Create embeds its post as it is now (edits included)."""
    doc = dict(activity.data)
    if activity.type == "Create" and target is not None and isinstance(doc.get("object"), dict):
        doc["object"] = bare(target.data)
    return doc


def _outbox_item(row: Sequence[Any]) -> dict[str, Any]:
    return bare(activity_document(row[1], row[2]))


def outbox(actor_uri: str, viewer: str | None = None) -> Listing[dict[str, Any]]:
    """The Create and Announce activities of a local actor that ``viewer`` may read (embedded).

    ``viewer`` None is anyone: public and unlisted ones. Creates of deleted
    posts and withdrawn boosts are left out.
    """
    target = aliased(Object)

    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(Object)
            .outerjoin(target, target.uri == Object.object_uri)
            .where(
                Object.actor_uri == actor_uri,
                Object.local.is_(True),
                Object.type.in_(("Create", "Announce")),
                readable_by(viewer),
                Object.deleted_at.is_(None),
                target.deleted_at.is_(None),
            )
        )

    return Listing(Object, "published", query, (Object, target), _outbox_item)


def _ids(row: Sequence[Any]) -> str:
    return str(row[1])


def _follows(column: Any, other: Any, uri: str) -> Listing[str]:
    def query(*columns: Any) -> Select[Any]:
        return select(*columns).select_from(Follow).where(column == uri, Follow.state == "accepted")

    return Listing(Follow, None, query, (other,), _ids)


def followers(actor_uri: str) -> Listing[str]:
    """Actor ids of the accepted followers of ``actor_uri`` (local and remote)."""
    return _follows(Follow.followee_uri, Follow.follower_uri, actor_uri)


def following(actor_uri: str) -> Listing[str]:
    """Actor ids ``actor_uri`` follows (accepted follows only)."""
    return _follows(Follow.follower_uri, Follow.followee_uri, actor_uri)


def _follow_activity(row: Sequence[Any]) -> dict[str, Any]:
    _, activity_uri, follower, followee, created_at = row
    return {"id": activity_uri, "type": "Follow", "actor": follower, "object": followee,
            "published": iso(created_at)}  # fmt: skip


def _pending(column: Any, uri: str) -> Listing[dict[str, Any]]:
    def query(*columns: Any) -> Select[Any]:
        return select(*columns).select_from(Follow).where(column == uri, Follow.state == "pending")

    shown = (Follow.activity_uri, Follow.follower_uri, Follow.followee_uri, Follow.created_at)
    return Listing(Follow, None, query, shown, _follow_activity)


def pending_followers(actor_uri: str) -> Listing[dict[str, Any]]:
    """The Follow activities to ``actor_uri`` not yet accepted or rejected (FEP-4ccd)."""
    return _pending(Follow.followee_uri, actor_uri)


def pending_following(actor_uri: str) -> Listing[dict[str, Any]]:
    """The Follow activities of ``actor_uri`` not yet accepted or rejected (FEP-4ccd)."""
    return _pending(Follow.follower_uri, actor_uri)


def replies(object_uri: str, viewer: str | None = None) -> Listing[str]:
    """Ids of the replies to ``object_uri`` that ``viewer`` may read (None: anyone)."""

    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(Object)
            .where(
                Object.in_reply_to == object_uri,
                readable_by(viewer),
                Object.deleted_at.is_(None),
            )
        )

    return Listing(Object, "published", query, (Object.uri,), _ids)


def _engagements(kind: str, object_uri: str, value: Any = Engagement.activity_uri) -> Listing[str]:
    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(Engagement)
            .where(Engagement.kind == kind, Engagement.object_uri == object_uri)
        )

    return Listing(Engagement, None, query, (value,), _ids)


def liked(actor_uri: str) -> Listing[str]:
    """Ids of the objects ``actor_uri`` liked, the latest like first (its ``liked``)."""

    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(Engagement)
            .where(Engagement.kind == "like", Engagement.actor_uri == actor_uri)
        )

    return Listing(Engagement, None, query, (Engagement.object_uri,), _ids)


def likes(object_uri: str) -> Listing[str]:
    """Ids of the Like activities of ``object_uri``."""
    return _engagements("like", object_uri)


def shares(object_uri: str) -> Listing[str]:
    """Ids of the Announce activities (boosts) of ``object_uri``."""
    return _engagements("announce", object_uri)


def engagers(kind: str, object_uri: str) -> Listing[str]:
    """Actor ids of those who liked (``like``) or boosted (``announce``) ``object_uri``,
    the latest first (Mastodon's ``favourited_by`` and ``reblogged_by``)."""
    return _engagements(kind, object_uri, Engagement.actor_uri)


def _object(row: Sequence[Any]) -> Object:
    obj: Object = row[1]
    return obj


def profile_posts(
    actor_uri: str,
    viewer: str | None = None,
    *,
    local: bool = True,
    boosts: bool = False,
    replies: bool = True,
    media_only: bool = False,
    tagged: str | None = None,
) -> Listing[Object]:
    """The posts of an actor that ``viewer`` may read (None: anyone), for its profile.

    ``local``: a local actor's (our pages); False lists what we stored of anyone's. The
    Mastodon API's filters (``/api/v1/accounts/:id/statuses``, as its
    ``AccountStatusesFilter``): ``boosts`` adds the actor's Announce rows whose post we
    have and ``viewer`` may read (and whose author it does not block); ``replies=False``
    keeps only replies to the actor's own posts (threads); ``media_only`` posts with
    attachments; ``tagged`` posts with that hashtag.
    """
    boosted = aliased(Object, name="boosted")
    parent = aliased(Object, name="parent")
    kinds = Object.type.in_(POST_TYPES)

    def query(*columns: Any) -> Select[Any]:
        conditions = [Object.actor_uri == actor_uri, readable_by(viewer),
                      Object.deleted_at.is_(None)]  # fmt: skip
        if local:
            conditions.append(Object.local.is_(True))
        chosen = select(*columns).select_from(Object)
        if boosts:
            chosen = chosen.outerjoin(
                boosted, (Object.type == "Announce") & (boosted.uri == Object.object_uri)
            )
            # a boost shows what the reader may read, and not posts of authors it blocks
            rule = readable_by(None, boosted) if viewer is None else in_feed_of(viewer, boosted)
            shown = and_(boosted.type.in_(POST_TYPES), boosted.deleted_at.is_(None), rule)
            conditions.append(or_(kinds, shown))
        else:
            conditions.append(kinds)
        if not replies:
            to_self = select(parent.id).where(
                parent.uri == Object.in_reply_to, parent.actor_uri == Object.actor_uri
            )
            conditions.append(or_(Object.in_reply_to.is_(None), to_self.exists()))
        if media_only:
            conditions.append(_HasAttachment(Object.data))
        if tagged is not None:
            name = tagged.lstrip("#").lower()
            conditions.append(_TaggedWith(Object.data, literal(f"#{name}"), literal(name)))
        return chosen.where(*conditions)

    return Listing(Object, "published", query, (Object,), _object)


class _HasAttachment(FunctionElement[bool]):
    """Whether the JSON document ``data`` has an ``attachment`` (SQL, per dialect)."""

    type = Boolean()
    inherit_cache = True
    name = "has_attachment"


@compiles(_HasAttachment, "sqlite")
def _has_attachment_sqlite(element: _HasAttachment, compiler: SQLCompiler, **kw: Any) -> str:
    (data,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXISTS (SELECT 1 FROM json_each({data}, '$.attachment'))"


@compiles(_HasAttachment, "postgresql")
def _has_attachment_postgresql(element: _HasAttachment, compiler: SQLCompiler, **kw: Any) -> str:
    (data,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"jsonb_path_exists({data}, 'lax $.attachment[*]')"


class _TaggedWith(FunctionElement[bool]):
    """Whether ``data`` has a Hashtag named ``#name`` or ``name`` (lower case; per dialect)."""

    type = Boolean()
    inherit_cache = True
    name = "tagged_with"


@compiles(_TaggedWith, "sqlite")
def _tagged_sqlite(element: _TaggedWith, compiler: SQLCompiler, **kw: Any) -> str:
    data, hashed, bare_name = (compiler.process(c, **kw) for c in element.clauses)
    return (f"EXISTS (SELECT 1 FROM json_each({data}, '$.tag') WHERE "
            f"json_extract(value, '$.type') = 'Hashtag' AND "
            f"lower(json_extract(value, '$.name')) IN ({hashed}, {bare_name}))")  # fmt: skip


@compiles(_TaggedWith, "postgresql")
def _tagged_postgresql(element: _TaggedWith, compiler: SQLCompiler, **kw: Any) -> str:
    data, hashed, bare_name = (compiler.process(c, **kw) for c in element.clauses)
    return (f"EXISTS (SELECT 1 FROM jsonb_path_query({data}, "
            f"'lax $.tag[*] ? (@.type == \"Hashtag\")') AS tag(value) "
            f"WHERE lower(tag.value ->> 'name') IN ({hashed}, {bare_name}))")  # fmt: skip


async def featured(db: Database, actor_uri: str, viewer: str | None = None) -> list[Object]:
    """The pinned posts of a local actor that ``viewer`` may read, last pinned first."""
    query = (
        select(Object)
        .where(
            Object.actor_uri == actor_uri,
            Object.local.is_(True),
            Object.pinned_at.is_not(None),
            readable_by(viewer),
            Object.deleted_at.is_(None),
        )
        .order_by(Object.pinned_at.desc(), Object.id.desc())
        .limit(_MAX_FEATURED)
    )
    async with db.session() as session:
        return list(await session.scalars(query))


async def counts(db: Database, uris: Iterable[str], viewer: str | None = None) -> dict[str, Counts]:
    """Replies (those ``viewer`` may read), likes and boosts of each post.

    Two grouped queries for any number of posts.
    """
    wanted = list(dict.fromkeys(uris))
    if not wanted:
        return {}
    replied = (
        select(Object.in_reply_to, func.count())
        .where(
            Object.in_reply_to.in_(wanted),
            readable_by(viewer),
            Object.deleted_at.is_(None),
        )
        .group_by(Object.in_reply_to)
    )
    engaged = (
        select(Engagement.object_uri, Engagement.kind, func.count())
        .where(Engagement.object_uri.in_(wanted), Engagement.kind.in_(("like", "announce")))
        .group_by(Engagement.object_uri, Engagement.kind)
    )
    tally: dict[str, dict[str, int]] = {uri: {} for uri in wanted}
    async with db.session() as session:
        for uri, number in await session.execute(replied):
            tally[str(uri)]["replies"] = number
        for uri, kind, number in await session.execute(engaged):
            tally[uri][kind] = number
    return {
        uri: Counts(t.get("replies", 0), t.get("like", 0), t.get("announce", 0))
        for uri, t in tally.items()
    }


# -- single objects -------------------------------------------------------------------------


async def find_object(db: Database, uri: str) -> tuple[Object, Actor | None] | None:
    """A stored object by id, with its author's actor row when we have it."""
    query = (
        select(Object, Actor)
        .outerjoin(Actor, Actor.uri == Object.actor_uri)
        .where(Object.uri == uri)
    )
    async with db.session() as session:
        row = (await session.execute(query)).first()
    return (row[0], row[1]) if row is not None else None


async def find_activity(db: Database, uri: str) -> tuple[Object, Object | None] | None:
    """A stored activity by id, with its object's row when we have it."""
    target = aliased(Object)
    query = (
        select(Object, target)
        .outerjoin(target, target.uri == Object.object_uri)
        .where(Object.uri == uri)
    )
    async with db.session() as session:
        row = (await session.execute(query)).first()
    return (row[0], row[1]) if row is not None else None
