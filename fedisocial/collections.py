"""Reads behind our collections and pages: paging, counts, and who may read what.

Every collection pages the way Mastodon's do: newest first, :data:`PAGE_SIZE`
items a page, ``max_id`` to go back in time and ``min_id`` to come forward.
Cursors are row ids of the table a collection reads (opaque to clients); the
order is a keyset on (time column, row id), so any page is one index range
scan, however deep. A :class:`Listing` says what one collection selects; the
web layer turns its pages into AS2 documents.

Who may read an object (:func:`ensure_readable`), following Mastodon:

- public and unlisted: anyone;
- followers-only: the author, its addressees, an accepted follower of the
  author, or any actor of a server where the author has an accepted follower
  (that server's instance actor fetches on behalf of its users, as Mastodon's
  does). Anonymous readers get 401 (sign the request), others 403;
- direct: the author and its addressees only; anyone else gets 404.

An actor the author blocks reads nothing of theirs (404) whenever we know who
asks: in secure mode (``authorized_fetch``) for everything, otherwise for
posts that are not public (public ones are served without asking).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fedisocial.ap.vocab import POST_TYPES, as_list, get_id
from fedisocial.errors import Forbidden, NotFound, Unauthorized
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Block, Engagement, Follow, Object, TimelineEntry

__all__ = [
    "PAGE_SIZE",
    "READABLE",
    "Counts",
    "Cursor",
    "FeedItem",
    "Listing",
    "Page",
    "activity_document",
    "addressees",
    "bare",
    "count",
    "counts",
    "ensure_readable",
    "featured",
    "find_activity",
    "find_object",
    "followers",
    "following",
    "home",
    "home_feed",
    "is_blocked",
    "likes",
    "outbox",
    "profile_posts",
    "read_page",
    "replies",
    "shares",
]

#: items per collection page (Mastodon's figure)
PAGE_SIZE = 20
#: visibilities anyone may read
READABLE = ("public", "unlisted")
#: at most this many pinned posts are listed (Mastodon allows 5 pins)
_MAX_FEATURED = 50

T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: before ``max_id`` (older), or after ``min_id`` (newer)."""

    max_id: int | None = None
    min_id: int | None = None


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


@dataclass(frozen=True)
class FeedItem:
    """A home-feed entry: a post, or a boost (``object`` is the Announce) with what it boosts."""

    object: Object
    boosted: Object | None = None


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
    if cursor.min_id is not None:
        query = query.where(_beyond(model, sort, cursor.min_id, older=False))
        query = query.order_by(*_order(model, sort, newest_first=False))
    else:
        if cursor.max_id is not None:
            query = query.where(_beyond(model, sort, cursor.max_id, older=True))
        query = query.order_by(*_order(model, sort, newest_first=True))
    async with db.session() as session:
        rows = list((await session.execute(query.limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    if cursor.min_id is not None:
        rows.reverse()
        newer, older = more, bool(rows)  # the row at min_id is older than this page
    else:
        newer, older = cursor.max_id is not None and bool(rows), more
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


def outbox(actor_uri: str) -> Listing[dict[str, Any]]:
    """The public Create and Announce activities of a local actor (embedded).

    Creates of deleted posts and withdrawn boosts are left out.
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
                Object.visibility.in_(READABLE),
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


def replies(object_uri: str) -> Listing[str]:
    """Ids of the public and unlisted replies to ``object_uri``."""

    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(Object)
            .where(
                Object.in_reply_to == object_uri,
                Object.visibility.in_(READABLE),
                Object.deleted_at.is_(None),
            )
        )

    return Listing(Object, "published", query, (Object.uri,), _ids)


def _engagements(kind: str, object_uri: str) -> Listing[str]:
    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(Engagement)
            .where(Engagement.kind == kind, Engagement.object_uri == object_uri)
        )

    return Listing(Engagement, None, query, (Engagement.activity_uri,), _ids)


def likes(object_uri: str) -> Listing[str]:
    """Ids of the Like activities of ``object_uri``."""
    return _engagements("like", object_uri)


def shares(object_uri: str) -> Listing[str]:
    """Ids of the Announce activities (boosts) of ``object_uri``."""
    return _engagements("announce", object_uri)


def _object(row: Sequence[Any]) -> Object:
    obj: Object = row[1]
    return obj


def profile_posts(actor_uri: str) -> Listing[Object]:
    """The public and unlisted posts of a local actor, for its profile page."""

    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(Object)
            .where(
                Object.actor_uri == actor_uri,
                Object.local.is_(True),
                Object.type.in_(POST_TYPES),
                Object.visibility.in_(READABLE),
                Object.deleted_at.is_(None),
            )
        )

    return Listing(Object, "published", query, (Object,), _object)


def home(owner_id: int) -> Listing[Object]:
    """The home feed of a local actor: its posts, those of whom it follows, boosts.

    Deleted posts, withdrawn boosts and boosts of deleted posts are left out.
    """
    boosted = aliased(Object)

    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(TimelineEntry)
            .join(Object, Object.id == TimelineEntry.object_id)
            .outerjoin(boosted, (Object.type == "Announce") & (boosted.uri == Object.object_uri))
            .where(
                TimelineEntry.owner_id == owner_id,
                Object.deleted_at.is_(None),
                boosted.deleted_at.is_(None),
            )
        )

    return Listing(TimelineEntry, "published", query, (Object,), _object)


async def home_feed(
    db: Database, owner_id: int, cursor: Cursor = Cursor(), limit: int = PAGE_SIZE
) -> Page[FeedItem]:
    """A page of the home feed, each boost with the post it boosts (one query for all)."""
    page = await read_page(db, home(owner_id), cursor, limit)
    wanted = {o.object_uri for o in page.items if o.type == "Announce" and o.object_uri}
    boosted: dict[str, Object] = {}
    if wanted:
        query = select(Object).where(Object.uri.in_(wanted), Object.deleted_at.is_(None))
        async with db.session() as session:
            boosted = {o.uri: o for o in await session.scalars(query)}
    items = [
        FeedItem(o, boosted.get(o.object_uri) if o.type == "Announce" and o.object_uri else None)
        for o in page.items
    ]
    return Page(items, page.next_max_id, page.prev_min_id)


async def featured(db: Database, actor_uri: str) -> list[Object]:
    """The pinned public and unlisted posts of a local actor, last pinned first."""
    query = (
        select(Object)
        .where(
            Object.actor_uri == actor_uri,
            Object.local.is_(True),
            Object.pinned_at.is_not(None),
            Object.visibility.in_(READABLE),
            Object.deleted_at.is_(None),
        )
        .order_by(Object.pinned_at.desc(), Object.id.desc())
        .limit(_MAX_FEATURED)
    )
    async with db.session() as session:
        return list(await session.scalars(query))


async def counts(db: Database, uris: Iterable[str]) -> dict[str, Counts]:
    """Replies, likes and boosts of each post: two grouped queries for any number of posts."""
    wanted = list(dict.fromkeys(uris))
    if not wanted:
        return {}
    replied = (
        select(Object.in_reply_to, func.count())
        .where(
            Object.in_reply_to.in_(wanted),
            Object.visibility.in_(READABLE),
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


# -- who may read what --------------------------------------------------------------------


def addressees(doc: dict[str, Any]) -> set[str]:
    """Every actor or collection id a document is addressed to."""
    fields = ("to", "cc", "bto", "bcc", "audience")
    return {i for f in fields for i in map(get_id, as_list(doc.get(f))) if i}


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def _blocked(session: AsyncSession, author_uri: str, viewer_uri: str) -> bool:
    query = select(Block.id).where(Block.blocker_uri == author_uri, Block.blocked_uri == viewer_uri)
    return await session.scalar(query.limit(1)) is not None


async def is_blocked(db: Database, blocker_uri: str, blocked_uri: str) -> bool:
    """Whether ``blocker_uri`` blocks ``blocked_uri``."""
    async with db.session() as session:
        return await _blocked(session, blocker_uri, blocked_uri)


async def _follows_author(session: AsyncSession, author_uri: str, viewer: Actor) -> bool:
    """Whether ``viewer`` (or, for a remote viewer, anyone on its server) follows the author."""
    query = select(Follow.id).where(Follow.followee_uri == author_uri, Follow.state == "accepted")
    if viewer.local:
        query = query.where(Follow.follower_uri == viewer.uri)
    else:
        query = query.where(Follow.follower_uri.startswith(_origin(viewer.uri) + "/",
                                                           autoescape=True))  # fmt: skip
    return await session.scalar(query.limit(1)) is not None


async def ensure_readable(db: Database, obj: Object, viewer: Actor | None) -> None:
    """Raise Unauthorized, Forbidden or NotFound unless ``viewer`` may read ``obj``.

    ``viewer`` is None for anonymous readers. See the module docstring for the rules.
    """
    author = obj.actor_uri
    if viewer is not None and author and viewer.uri != author:
        async with db.session() as session:
            if await _blocked(session, author, viewer.uri):
                raise NotFound(f"no object {obj.uri}")
    if obj.visibility in READABLE or (viewer is not None and viewer.uri == author):
        return
    if viewer is None:
        if obj.visibility == "followers":
            raise Unauthorized(f"{obj.uri} is for followers only: sign the request as a follower")
        raise NotFound(f"no object {obj.uri}")
    if viewer.uri in addressees(obj.data):
        return
    if obj.visibility == "followers" and author:
        async with db.session() as session:
            if await _follows_author(session, author, viewer):
                return
        raise Forbidden(f"{obj.uri} is for the followers of {author} only")
    raise NotFound(f"no object {obj.uri}")
