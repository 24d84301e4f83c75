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
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fedisocial.ap.vocab import POST_TYPES, as_list
from fedisocial.social.access import Reach, in_feed_of, local_audiences, readable_by
from fedisocial.social.collections import (
    PAGE_SIZE,
    Cursor,
    Listing,
    Page,
    liked,
    read_page,
)
from fedisocial.social.mutes import hides_posts
from fedisocial.store.db import Database
from fedisocial.store.models import (
    Actor,
    Bookmark,
    Engagement,
    Object,
    PostTag,
    TimelineEntry,
)
from fedisocial.store.rows import upsert

__all__ = [
    "TAGS_PER_MODE",
    "FeedItem",
    "add_all_to_feeds",
    "add_to_feeds",
    "bookmarks",
    "favourites",
    "hashtags",
    "home",
    "home_feed",
    "home_page",
    "index_tags",
    "public",
    "shown_to",
    "tag_name",
    "tagged",
]


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
    shown = await _already_shown(session, reaches)
    entries = [{"owner_id": owner, "object_id": row_id, "published": published[row_id]}
               for row_id, owner in await local_audiences(session, reaches)
               if (owner, row_id) not in shown]  # fmt: skip
    if entries:
        await session.execute(upsert(session, TimelineEntry).on_conflict_do_nothing(), entries)
    await index_tags(session, [reach.boosted or reach.row for reach in reaches])


#: a boost of a post among this many newest entries of a home feed is left out of it
#: (Mastodon's FeedManager::REBLOG_FALLOFF)
REBLOG_FALLOFF = 40


async def _already_shown(session: AsyncSession, reaches: Sequence[Reach]) -> set[tuple[int, int]]:
    """(owner, boost) pairs to leave out: a boost of a post that the owner's feed shows among
    its :data:`REBLOG_FALLOFF` newest entries, itself or boosted by someone else (as
    Mastodon's home feed skips such a reblog). For boosts only: one query for the feeds that
    show the post (index lookups: the post's rows, then their entries), and one per such
    feed for its fall-off entry (the last of the newest ones)."""
    boosts = {reach.row.id: reach.boosted.uri for reach in reaches if reach.boosted is not None}
    if not boosts:
        return set()
    targets = list(set(boosts.values()))
    showing = union_all(
        select(Object.id, Object.uri.label("target")).where(Object.uri.in_(targets)),
        select(Object.id, Object.object_uri.label("target")).where(
            Object.type == "Announce", Object.object_uri.in_(targets),
            Object.id.not_in(list(boosts)),
        ),
    ).subquery()  # fmt: skip
    # feeds order by (published, id): so do these, equal timestamps included
    shown_at = await session.execute(
        select(TimelineEntry.owner_id, showing.c.target, TimelineEntry.published,
               TimelineEntry.id)
        .join(showing, showing.c.id == TimelineEntry.object_id)
    )  # fmt: skip
    newest: dict[tuple[int, str], tuple[datetime, int]] = {}
    for owner, target, published, entry in shown_at:
        key = (owner, str(target))
        newest[key] = max(newest.get(key, (published, entry)), (published, entry))
    falloff: dict[int, tuple[datetime, int] | None] = {}  # None: shorter than the fall-off
    for owner in {owner for owner, _ in newest}:
        row = (await session.execute(
            select(TimelineEntry.published, TimelineEntry.id)
            .where(TimelineEntry.owner_id == owner)
            .order_by(TimelineEntry.published.desc(), TimelineEntry.id.desc())
            .offset(REBLOG_FALLOFF - 1).limit(1)
        )).first()  # fmt: skip
        falloff[owner] = None if row is None else (row[0], row[1])
    recent = {key for key, shown in newest.items()
              if (cut := falloff[key[0]]) is None or shown >= cut}  # fmt: skip
    return {(owner, boost) for boost, target in boosts.items()
            for owner, shown in recent if shown == target}  # fmt: skip


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
    posts and boosts of accounts it mutes, boosts of their posts, replies to them and
    posts that mention them (:func:`.mutes.hides_posts`).
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
            .where(~hides_posts(owner_id, owner.uri, Object, boosted))
        )

    # a boost's row comes with the post it boosts (joined above): one query a page
    return Listing(TimelineEntry, "published", query, (Object, boosted), _feed_item)


async def home_feed(
    db: Database, owner_id: int, cursor: Cursor = Cursor(), limit: int = PAGE_SIZE
) -> Page[FeedItem]:
    """A page of the home feed, each boost with the post it boosts."""
    return await read_page(db, home(owner_id), cursor, limit)


# -- what the Mastodon client API lists besides the home feed --------------------------------
#
# Mastodon's ids are time-ordered and its apps page with the id of a status they hold
# (``max_id``, ``min_id``, ``since_id``), compare ids and sort by them: these listings
# page by the post's id (``objects.id``, a boost's Announce row), newest first.


@dataclass(frozen=True)
class _Keyed:
    """What :func:`~fedisocial.social.collections.read_page` pages by when it is not a
    table's own ``id``: ``id`` is the column (the post's id in another table)."""

    id: Any


def tag_name(name: str) -> str:
    """A hashtag as we index and look it up: without ``#``, NFKC, lower case (Mastodon
    matches tags case-insensitively)."""
    return unicodedata.normalize("NFKC", name.strip().lstrip("#")).lower()[:255]


def hashtags(doc: Mapping[str, Any]) -> set[str]:
    """The hashtags of a post document (its ``tag`` array's ``Hashtag`` names), as
    :func:`tag_name` has them."""
    names = {tag_name(str(tag.get("name") or "")) for tag in as_list(doc.get("tag"))
             if isinstance(tag, dict) and tag.get("type") == "Hashtag"}  # fmt: skip
    return {name for name in names if name}


async def index_tags(session: AsyncSession, posts: Sequence[Object]) -> None:
    """Write the hashtags of ``posts`` (stored or edited: their earlier tags go), two statements.

    Called with every post that reaches feeds (:func:`add_all_to_feeds`): local posts
    when published or edited, remote ones when a Create, Update or Announce brings them.
    """
    posts = [post for post in posts if post.type in POST_TYPES and post.id is not None]
    if not posts:
        return
    await session.execute(delete(PostTag).where(PostTag.object_id.in_({p.id for p in posts})))
    rows = [{"name": name, "object_id": post.id} for post in {p.id: p for p in posts}.values()
            if post.deleted_at is None for name in sorted(hashtags(post.data))]  # fmt: skip
    if rows:
        await session.execute(upsert(session, PostTag).on_conflict_do_nothing(), rows)


async def _entry_near(
    session: AsyncSession, owner_id: int, status_id: int, *, newer: bool
) -> TimelineEntry | None:
    """The entry of ``status_id`` in the feed of ``owner_id``; else the nearest one newer
    (or older) by post id. Lookups of the ``(owner_id, object_id)`` unique index."""
    mine = TimelineEntry.owner_id == owner_id
    exact = await session.scalar(select(TimelineEntry).where(
        mine, TimelineEntry.object_id == status_id))  # fmt: skip
    if exact is not None:
        return exact
    side = TimelineEntry.object_id > status_id if newer else TimelineEntry.object_id < status_id
    order = TimelineEntry.object_id.asc() if newer else TimelineEntry.object_id.desc()
    return await session.scalar(select(TimelineEntry).where(mine, side).order_by(order).limit(1))


async def home_page(
    db: Database, owner_id: int, cursor: Cursor = Cursor(), limit: int = PAGE_SIZE
) -> Page[FeedItem]:
    """A page of :func:`home` whose cursors are post ids (a boost's: its Announce's), as
    Mastodon apps send and expect them (:class:`~.collections.Cursor`).

    The feed keeps its own order and index (entry time): each id given is turned into its
    entry (or, for a post not in the feed, the nearest by post id), one index lookup.
    """
    max_id = min_id = since_id = None
    async with db.session() as session:
        if cursor.max_id is not None:  # none newer: everything is older
            found = await _entry_near(session, owner_id, cursor.max_id, newer=True)
            max_id = found.id if found is not None else None
        if cursor.min_id is not None:  # none older: everything is newer
            found = await _entry_near(session, owner_id, cursor.min_id, newer=False)
            min_id = found.id if found is not None else 0
        elif cursor.since_id is not None:
            found = await _entry_near(session, owner_id, cursor.since_id, newer=False)
            since_id = found.id if found is not None else None
    page = await read_page(db, home(owner_id), Cursor(max_id, min_id, since_id), limit)
    items = page.items
    if not items:
        return Page(items)
    older = items[-1].object.id if page.next_max_id is not None else None
    return Page(items, older, items[0].object.id)


def _post(row: Sequence[Any]) -> Object:
    post: Object = row[1]
    return post


def shown_to(viewer: Actor | None) -> ColumnElement[bool]:
    """Neither blocked (either way) nor muted by ``viewer`` (by, replying to or mentioning
    someone it mutes: :func:`.mutes.hides_posts`; None: anyone is shown all)."""
    if viewer is None:
        return true()
    return and_(in_feed_of(viewer.uri, Object), ~hides_posts(viewer.id, viewer.uri, Object))


def _public_posts(viewer: Actor | None, *, local: bool, remote: bool,
                  only_media: bool) -> list[ColumnElement[bool]]:  # fmt: skip
    """Mastodon's public scope: public posts (not unlisted), not deleted, as asked."""
    conditions = [
        Object.type.in_(POST_TYPES),
        Object.visibility == "public",
        Object.deleted_at.is_(None),
        shown_to(viewer),
    ]
    if local:
        conditions.append(Object.local.is_(True))
    elif remote:
        conditions.append(Object.local.is_(False))
    if only_media:
        conditions.append(Object.data[("attachment", 0)].as_string().is_not(None))
    return conditions


def public(
    viewer: Actor | None, *, local: bool = False, remote: bool = False, only_media: bool = False
) -> Listing[Object]:
    """The public timeline (Mastodon's ``PublicFeed``): public posts we store, no boosts and
    no replies but an author's replies to itself (threads), newest first by id."""
    parent = aliased(Object, name="parent")
    shown = _public_posts(viewer, local=local, remote=remote, only_media=only_media)

    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(Object)
            .outerjoin(parent, parent.uri == Object.in_reply_to)
            .where(*shown, or_(Object.in_reply_to.is_(None), parent.actor_uri == Object.actor_uri))
        )

    return Listing(Object, None, query, (Object,), _post)


#: at most this many tags in each of ``any``, ``all`` and ``none`` (Mastodon's TagFeed)
TAGS_PER_MODE = 4


def _with_tag(names: Sequence[str]) -> ColumnElement[bool]:
    """The post has one of the tags ``names``: a lookup of the post_tags primary key."""
    other = aliased(PostTag, name="other_tag")
    return exists().where(other.name.in_(names), other.object_id == PostTag.object_id)


def _first_of(names: Sequence[str]) -> ColumnElement[bool]:
    """This post_tags row is the post's first of ``names`` (each post is listed once)."""
    other = aliased(PostTag, name="earlier_tag")
    return ~exists().where(other.object_id == PostTag.object_id, other.name.in_(names),
                           other.name < PostTag.name)  # fmt: skip


def _names(given: Sequence[str]) -> list[str]:
    return [name for name in dict.fromkeys(tag_name(n) for n in given[:TAGS_PER_MODE]) if name]


def tagged(
    name: str, viewer: Actor | None, *, local: bool = False, remote: bool = False,
    only_media: bool = False, any_of: Sequence[str] = (), all_of: Sequence[str] = (),
    none_of: Sequence[str] = (),
) -> Listing[Object]:  # fmt: skip
    """The public posts tagged ``name`` (Mastodon's ``TagFeed``): a range scan of post_tags.

    ``any_of``: or tagged with one of these instead; ``all_of``: also tagged with each of
    these; ``none_of``: and with none of these (at most :data:`TAGS_PER_MODE` each, as
    Mastodon). Without ``any_of`` the scan is one tag's rows, newest first; with it, the
    rows of those tags, each post once.
    """
    shown = _public_posts(viewer, local=local, remote=remote, only_media=only_media)
    wanted = list(dict.fromkeys([tag_name(name), *_names(any_of)]))
    conditions = [PostTag.name == wanted[0]] if len(wanted) == 1 else [
        PostTag.name.in_(wanted), _first_of(wanted)]  # fmt: skip
    conditions += [_with_tag([each]) for each in _names(all_of)]
    if excluded := _names(none_of):
        conditions.append(~_with_tag(excluded))

    def query(*columns: Any) -> Select[Any]:
        return (
            select(*columns)
            .select_from(PostTag)
            # "+ 0": a nested loop from the tag's rows (a merge join, which PostgreSQL
            # picks otherwise, walks the objects index down from the newest post, 36 ms
            # for a tag on 1 post in 50 of 200,000; this is 0.2 ms)
            .join(Object, Object.id == PostTag.object_id + 0)
            .where(*conditions, *shown)
        )

    return Listing(_Keyed(PostTag.object_id), None, query, (Object,), _post)


def _saved(model: Any, base: Callable[..., Select[Any]], join: ColumnElement[bool],
           viewer: Actor) -> Listing[Object]:  # fmt: skip
    def query(*columns: Any) -> Select[Any]:
        return (
            base(*columns)
            .join(Object, join)
            .where(Object.deleted_at.is_(None), readable_by(viewer.uri))
        )

    return Listing(model, None, query, (Object,), _post)


def favourites(viewer: Actor) -> Listing[Object]:
    """The posts ``viewer`` liked that it may still read, the latest like first (paged by
    the like's id, as Mastodon pages favourites)."""
    liked_ = liked(viewer.uri)
    return _saved(Engagement, liked_.query, Object.uri == Engagement.object_uri, viewer)


def bookmarks(viewer: Actor) -> Listing[Object]:
    """The posts ``viewer`` bookmarked that it may still read, the latest first (paged by
    the bookmark's id, as Mastodon pages bookmarks)."""

    def base(*columns: Any) -> Select[Any]:
        return select(*columns).select_from(Bookmark).where(Bookmark.owner_id == viewer.id)

    return _saved(Bookmark, base, Object.id == Bookmark.object_id, viewer)
