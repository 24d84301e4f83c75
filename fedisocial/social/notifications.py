"""Notifications: who is told of what, written where it happens, read by the Mastodon API.

A local account is notified (Mastodon's types) when someone

- follows it (``follow``), or asks to when it approves followers (``follow_request``);
- mentions it in a post we store, or replies to one of its posts (``mention``);
- likes (``favourite``) or boosts (``reblog``) one of its posts;
- edits a post it boosted or was mentioned in (``update``);

and when an image it asked for is made: ``status`` with the post, when the image was
for a post that is published now (every app shows it), else our own type
:data:`GENERATION` with no status, listed only to clients that ask for it by name
(``types[]``), so that apps which know only Mastodon's types never meet it.

Received activities notify from their handlers (:mod:`fedisocial.federation.handlers`,
in bulk at the end of the inbox's batch, in its transaction); local actions from
:mod:`fedisocial.social.outbox` (local recipients never pass through the inbox).
Each notification has a ``key``, what caused it (the activity's id, or the post's), and
one row per (owner, type, key): a redelivered activity notifies once. Nobody is
notified of themselves, of an account they block, or of one they mute with its
notifications. An Undo of the like, boost or follow withdraws its notification; a
deleted post's go with it. Reading shows only what the owner may read now
(:func:`~fedisocial.social.access.readable_by`), never a deleted post.

Groups are Mastodon 4.3's (``Notification::Groups``): likes of one post, boosts of one
post, and follows, each within the same hour (UTC), share a :func:`group_key`; every other
notification is a group of its own, ``ungrouped-ID``. The key is computed, never stored:
:func:`group_key` in Python (the v1 entity, the streams) and :func:`_key_sql` in SQL
(:func:`grouped_page`, one query a page) are the one rule, and its tests hold them equal.
Mastodon also stretches a group over up to 12 hours through Redis; we do not.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    case,
    cast,
    delete,
    false,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from fedisocial.ap.vocab import mention_hrefs
from fedisocial.jobs import JobQueue
from fedisocial.social.access import readable_by
from fedisocial.social.collections import Cursor, Listing, Page
from fedisocial.store.db import Database
from fedisocial.store.models import (
    Actor,
    Block,
    Engagement,
    Marker,
    Mute,
    Notification,
    Object,
    ServiceState,
    utcnow,
)
from fedisocial.store.rows import upsert

__all__ = [
    "FOLLOWS",
    "GENERATION",
    "GROUPABLE",
    "MASTODON_TYPES",
    "SAMPLE_ACCOUNTS",
    "SERVICE_MENTIONED",
    "Group",
    "Notice",
    "Shown",
    "clear",
    "dismiss",
    "dismiss_group",
    "edit_notices",
    "find",
    "find_group",
    "follow_type",
    "forget_actor",
    "forget_post",
    "group_key",
    "grouped_page",
    "listing",
    "post_notices",
    "record",
    "unread_count",
    "withdraw",
    "withdrawn",
]

#: the job a mention of a local Service actor that answers mentions queues (its payload:
#: the post's id and the actor's); the app registers what answers it (the assistant)
SERVICE_MENTIONED = "service_mentioned"
#: our own type: an image the account asked for (with no post) is made
GENERATION = "fedisocial:generation"
#: the types of Mastodon 4.x we send, and the types listed when a client names none
MASTODON_TYPES = ("mention", "status", "reblog", "follow", "follow_request", "favourite",
                  "update")  # fmt: skip
#: the types of a follow's notification
FOLLOWS = ("follow", "follow_request")
#: the types that group (Mastodon's GROUPABLE_NOTIFICATION_TYPES), the default ``grouped_types``
GROUPABLE = ("favourite", "reblog", "follow")
#: the accounts a group shows (Mastodon's NotificationGroup::SAMPLE_ACCOUNTS_SIZE)
SAMPLE_ACCOUNTS = 8
_UNGROUPED = "ungrouped-"


@dataclass(frozen=True)
class Notice:
    """A notification to write: ``owner`` (an actor id; only local accounts are told) is told
    of ``type`` by ``actor``, about ``post`` if any; ``key`` names the cause."""

    owner: str
    type: str
    actor: str
    key: str
    post: Object | None = None
    #: the account's own doing that it is told of (a finished image)
    own: bool = False


@dataclass(frozen=True)
class Shown:
    """A notification as read: the row, who caused it, the post it is about."""

    notification: Notification
    actor: Actor
    post: Object | None


# -- writing --------------------------------------------------------------------------------


async def record(session: AsyncSession, notices: Iterable[Notice]) -> None:
    """Write ``notices`` in the caller's transaction: three reads and one insert for any number
    (a fourth read when some are mentions).

    Left out: notices to non-local actors, to oneself, from an actor the owner blocks
    or mutes with notifications; those already written (same owner, type and key). A
    new mention of a local Service actor that answers mentions queues a
    :data:`SERVICE_MENTIONED` job in the same transaction: every path that records a
    mention (the inbox, the outbox, C2S, the Mastodon API) asks it alike.
    """
    wanted = {(n.owner, n.type, n.key): n for n in notices if n.own or n.owner != n.actor}
    if not wanted:
        return
    owners = {n.owner for n in wanted.values()}
    actors = {n.actor for n in wanted.values()}
    local = dict((await session.execute(
        select(Actor.uri, Actor.id).where(Actor.uri.in_(owners), Actor.local.is_(True))
    )).all())  # fmt: skip
    if not local:
        return
    refused = set((await session.execute(
        select(Block.blocker_uri, Block.blocked_uri)
        .where(Block.blocker_uri.in_(local), Block.blocked_uri.in_(actors))
    )).all())  # fmt: skip
    refused |= set((await session.execute(
        select(Actor.uri, Mute.muted_uri).join(Actor, Actor.id == Mute.owner_id)
        .where(Mute.owner_id.in_(local.values()), Mute.muted_uri.in_(actors),
               Mute.notifications.is_(True),
               or_(Mute.expires_at.is_(None), Mute.expires_at > utcnow()))
    )).all())  # fmt: skip
    await session.flush()  # posts added in this transaction get their ids
    now = utcnow()
    rows = [{"owner_id": local[n.owner], "type": n.type, "actor_uri": n.actor, "key": n.key,
             "object_id": n.post.id if n.post is not None else None, "created_at": now}
            for n in wanted.values()
            if n.owner in local and (n.own or (n.owner, n.actor) not in refused)]  # fmt: skip
    services = await _answering(session, rows)
    asks = [row for row in rows if row["owner_id"] in services]
    rows = [row for row in rows if row["owner_id"] not in services]
    if rows:
        await session.execute(upsert(session, Notification).on_conflict_do_nothing(), rows)
    if asks:
        await _queue_asks(session, asks, services)


async def _answering(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[int, str]:
    """The local Service actors among those mentioned that answer mentions, id → uri (a
    reply to one of their posts is a mention too: the job tells them apart)."""
    mentioned = {row["owner_id"] for row in rows if row["type"] == "mention"}
    if not mentioned:
        return {}
    found = await session.execute(
        select(Actor.id, Actor.uri).join(ServiceState, ServiceState.actor_uri == Actor.uri)
        .where(Actor.id.in_(mentioned), Actor.type == "Service", ServiceState.enabled.is_(True))
    )  # fmt: skip
    return {int(id_): str(uri) for id_, uri in found}


async def _queue_asks(
    session: AsyncSession, rows: list[dict[str, Any]], services: dict[int, str]
) -> None:
    """Write the notifications of answering Service actors, and queue a job for each one
    newly written (RETURNING: a post delivered twice, or edited, asks once)."""
    written = await session.execute(
        upsert(session, Notification).on_conflict_do_nothing()
        .returning(Notification.owner_id, Notification.type, Notification.key), rows
    )  # fmt: skip
    asked = [({"post": key, "service": services[owner]}, key)
             for owner, kind, key in written if kind == "mention"]  # fmt: skip
    await JobQueue.add_many(session, SERVICE_MENTIONED, asked)


def post_notices(post: Object, replied_to: str | None) -> list[Notice]:
    """What a new post tells: a ``mention`` to each account it mentions and to the author
    of the post it replies to (``replied_to``)."""
    told = set(mention_hrefs(post.data)) | ({replied_to} if replied_to else set())
    author = post.actor_uri or ""
    return [Notice(uri, "mention", author, post.uri, post) for uri in sorted(told)]


async def edit_notices(session: AsyncSession, post: Object, key: str) -> list[Notice]:
    """What an edit tells (``update``): the accounts that boosted the post or that it
    mentions. ``key`` is the Update's id: each edit notifies once."""
    boosters = await session.scalars(select(Engagement.actor_uri).where(
        Engagement.kind == "announce", Engagement.object_uri == post.uri
    ))  # fmt: skip
    told = set(boosters) | set(mention_hrefs(post.data))
    author = post.actor_uri or ""
    return [Notice(uri, "update", author, key, post) for uri in sorted(told)]


async def withdraw(
    session: AsyncSession, *, actor: str, key: str | None = None, owner: str | None = None,
    types: Sequence[str] = ("favourite", "reblog"),
) -> None:  # fmt: skip
    """Take back what ``actor`` caused: the notification of activity ``key``, or all of
    ``types`` to ``owner`` (an undone follow, whatever its id)."""
    query = delete(Notification).where(Notification.actor_uri == actor,
                                       Notification.type.in_(types))  # fmt: skip
    if key is not None:
        query = query.where(Notification.key == key)
    if owner is not None:
        query = query.where(Notification.owner_id.in_(
            select(Actor.id).where(Actor.uri == owner).scalar_subquery()
        ))  # fmt: skip
    await session.execute(query)


def withdrawn(
    notices: list[Notice], *, actor: str, key: str | None = None, owner: str | None = None,
    types: Sequence[str] = ("favourite", "reblog"),
) -> None:  # fmt: skip
    """:func:`withdraw` for notices not yet written (an activity and its Undo in one batch)."""
    notices[:] = [n for n in notices if not (
        n.actor == actor and n.type in types and (key is None or n.key == key)
        and (owner is None or n.owner == owner)
    )]  # fmt: skip


async def forget_post(session: AsyncSession, object_id: int) -> None:
    """A post was deleted (its row stays, a Tombstone): its notifications go."""
    await session.execute(delete(Notification).where(Notification.object_id == object_id))


async def forget_actor(session: AsyncSession, actor_uri: str) -> None:
    """An actor deleted itself: what it caused goes."""
    await session.execute(delete(Notification).where(Notification.actor_uri == actor_uri))


def follow_type(followee: Actor, accepted: bool) -> str:
    """``follow`` for a follow that took, ``follow_request`` for one waiting for approval."""
    return "follow_request" if followee.manually_approves_followers and not accepted else "follow"


# -- reading --------------------------------------------------------------------------------


def _filtered(query: Select[Any], owner: Actor, types: Sequence[str],
              exclude: Sequence[str], account_id: int | None) -> Select[Any]:  # fmt: skip
    post = Object
    query = (
        query.select_from(Notification)
        .join(Actor, Actor.uri == Notification.actor_uri)
        .outerjoin(post, post.id == Notification.object_id)
        .where(
            Notification.owner_id == owner.id,
            Notification.dismissed_at.is_(None),
            or_(Notification.object_id.is_(None),
                post.deleted_at.is_(None) & readable_by(owner.uri, post)),
            Notification.type.in_(list(types or MASTODON_TYPES)),
        )
    )  # fmt: skip
    if exclude:
        query = query.where(Notification.type.not_in(list(exclude)))
    if account_id is not None:
        query = query.where(Actor.id == account_id)
    return query


def _select(*columns: Any) -> Select[Any]:
    return select(*columns)


def _shown(row: Sequence[Any]) -> Shown:
    return Shown(row[1], row[2], row[3])


def listing(
    owner: Actor, *, types: Sequence[str] = (), exclude: Sequence[str] = (),
    account_id: int | None = None, group: str | None = None,
) -> Listing[Shown]:  # fmt: skip
    """The notifications of ``owner``, newest first (paged by id): of ``types`` (none
    given: Mastodon's), not of ``exclude``, caused by the account ``account_id``, of the
    group ``group`` (any type: its key names it)."""

    def query(*columns: Any) -> Select[Any]:
        if group is not None:
            every = (*MASTODON_TYPES, GENERATION)
            found = _filtered(_select(*columns), owner, every, (), None)
            return found.where(_in_group(group))
        return _filtered(_select(*columns), owner, types, exclude, account_id)

    return Listing(Notification, None, query, (Notification, Actor, Object), _shown)


async def find(db: Database, owner: Actor, notification_id: int) -> Shown | None:
    """One notification of ``owner`` (not dismissed, about what it may read), any type."""
    every = (*MASTODON_TYPES, GENERATION)
    query = _filtered(_select(Notification, Actor, Object), owner, every, (), None)
    async with db.session() as session:
        row = (await session.execute(query.where(Notification.id == notification_id))).first()
    return Shown(row[0], row[1], row[2]) if row is not None else None


async def dismiss(db: Database, owner: Actor, notification_id: int) -> bool:
    """Dismiss one notification of ``owner``; False if it has none of that id.

    Dismissed rows stay (hidden), so that a redelivered activity does not notify again.
    """
    async with db.transaction() as session:
        done = await session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.owner_id == owner.id,
                   Notification.dismissed_at.is_(None))
            .values(dismissed_at=utcnow())
        )  # fmt: skip
    return bool(getattr(done, "rowcount", 0))


async def clear(db: Database, owner: Actor) -> None:
    """Dismiss every notification of ``owner``."""
    async with db.transaction() as session:
        await session.execute(
            update(Notification)
            .where(Notification.owner_id == owner.id, Notification.dismissed_at.is_(None))
            .values(dismissed_at=utcnow())
        )


async def unread_count(
    db: Database, owner: Actor, *, limit: int, types: Sequence[str] = (),
    exclude: Sequence[str] = (), account_id: int | None = None,
    grouped: Collection[str] | None = None,
) -> int:  # fmt: skip
    """How many notifications are newer than the ``notifications`` marker (all without
    one), counting at most ``limit`` (Mastodon 4.3's ``unread_count``); with ``grouped``
    (the types that group), how many groups (``/api/v2/notifications/unread_count``)."""
    marker = aliased(Marker)
    last_read = (select(marker.last_read_id)
                 .where(marker.owner_id == owner.id, marker.timeline == "notifications")
                 .scalar_subquery())  # fmt: skip
    async with db.session() as session:
        read_up_to = await session.scalar(select(last_read))
        column = Notification.id if grouped is None else _key_sql(grouped).label("key")
        query = _filtered(_select(column), owner, types, exclude, account_id)
        if read_up_to is not None and str(read_up_to).isdigit():
            query = query.where(Notification.id > int(read_up_to))
        if grouped is not None:
            unread = query.subquery("unread")
            query = select(unread.c.key).group_by(unread.c.key)
        counted = query.limit(limit).subquery()
        return int(await session.scalar(select(func.count()).select_from(counted)) or 0)


# -- groups ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """A group as read: its ``key``, the newest notification of it in reach (``latest``: the
    type, post and time the group shows), how many it has, the accounts of the newest
    :data:`SAMPLE_ACCOUNTS`, newest first; ``page_min_id`` the oldest of it in the page."""

    key: str
    latest: Shown
    count: int
    accounts: list[Actor]
    page_min_id: int


def group_key(notification: Notification, grouped: Collection[str] = GROUPABLE) -> str:
    """Mastodon 4.3's ``group_key``: ``favourite-POST-HOUR``, ``reblog-POST-HOUR``,
    ``follow-HOUR`` (hours since the epoch, UTC) for the types of ``grouped`` that group,
    ``ungrouped-ID`` for the others."""
    kind, post = notification.type, notification.object_id
    if kind not in grouped or kind not in GROUPABLE or (kind != "follow" and post is None):
        return f"{_UNGROUPED}{notification.id}"
    hour = int(notification.created_at.timestamp()) // 3600
    return f"follow-{hour}" if kind == "follow" else f"{kind}-{post}-{hour}"


class _Hour(FunctionElement[int]):
    """Whole hours since the epoch of a UTC timestamp column."""

    type = BigInteger()
    inherit_cache = True


@compiles(_Hour)
def _hour_postgresql(element: _Hour, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column}) / 3600) AS BIGINT)"


@compiles(_Hour, "sqlite")
def _hour_sqlite(element: _Hour, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {column}) AS INTEGER) / 3600)"


def _key_sql(grouped: Collection[str]) -> ColumnElement[str]:
    """:func:`group_key` as an SQL expression (constants inline: the expression is grouped
    and compared in one statement, and PostgreSQL matches expressions by their text)."""
    ungrouped = literal_column(f"'{_UNGROUPED}'", String) + cast(Notification.id, String)
    hour = cast(_Hour(Notification.created_at), String)
    whens: list[tuple[ColumnElement[bool], ColumnElement[str]]] = []
    if "follow" in grouped:
        whens.append((Notification.type == literal_column("'follow'"),
                      literal_column("'follow-'", String) + hour))  # fmt: skip
    for kind in ("favourite", "reblog"):
        if kind in grouped:
            whens.append((
                (Notification.type == literal_column(f"'{kind}'"))
                & Notification.object_id.is_not(None),
                literal_column(f"'{kind}-'", String) + cast(Notification.object_id, String)
                + literal_column("'-'", String) + hour,
            ))  # fmt: skip
    return case(*whens, else_=ungrouped) if whens else ungrouped


def _grouped_by(key: str) -> tuple[str, ...]:
    """The ``grouped_types`` under which ``key`` names a group: none for ``ungrouped-ID``."""
    return () if key.startswith(_UNGROUPED) else GROUPABLE


def _in_group(key: str) -> ColumnElement[bool]:
    """The notifications of the group ``key`` (a key we never make matches none); the
    type, post or id read from the key let the database use its indexes."""
    kind, _, rest = key.partition("-")
    if key.startswith(_UNGROUPED):
        rest = key.removeprefix(_UNGROUPED)
        return Notification.id == int(rest) if rest.isdigit() and len(rest) < 19 else false()
    if kind not in GROUPABLE:
        return false()
    narrow = Notification.type == kind
    post = rest.partition("-")[0]
    if kind != "follow":
        if not post.isdigit() or len(post) >= 19:
            return false()
        narrow = narrow & (Notification.object_id == int(post))
    return narrow & (_key_sql(GROUPABLE) == key)


def _bounds(query: Select[Any], cursor: Cursor) -> Select[Any]:
    if cursor.max_id is not None:
        query = query.where(Notification.id < cursor.max_id)
    if cursor.min_id is not None:
        query = query.where(Notification.id > cursor.min_id)
    elif cursor.since_id is not None:
        query = query.where(Notification.id > cursor.since_id)
    return query


_NO_END = (1 << 63) - 1


async def grouped_page(
    db: Database, owner: Actor, cursor: Cursor, limit: int, *,
    types: Sequence[str] = (), exclude: Sequence[str] = (), account_id: int | None = None,
    grouped: Collection[str] = GROUPABLE, key: str | None = None,
) -> Page[Group]:  # fmt: skip
    """A page of ``owner``'s notification groups (Mastodon 4.3's ``/api/v2/notifications``),
    in one query: the ``limit`` groups whose newest notification (with ``min_id``: oldest)
    is in the cursor's window, newest first, each with its numbers up to the page's top.

    The filters are :func:`listing`'s; ``grouped`` the types that group (others are a
    group each); ``key`` keeps one group only. Groups span pages, as Mastodon's do: a group
    with notifications on both sides of a page's edge is on both pages, its ``page_min_id``
    telling which of its notifications this page holds. ``next_max_id`` and
    ``prev_min_id`` are set whenever the page has a group (Mastodon's ``Link``).
    """
    up = cursor.min_id is not None
    key_sql = _key_sql(grouped)

    def window(*columns: Any) -> Select[Any]:
        query = _filtered(_select(*columns), owner, types, exclude, account_id)
        return query.where(_in_group(key)) if key is not None else query

    # the page: one row per group, its newest (going up: oldest) notification in the window
    inside = _bounds(window(Notification.id.label("id"), key_sql.label("key")),
                     cursor).subquery("inside")  # fmt: skip
    edge = (func.min if up else func.max)(inside.c.id).label("edge")
    page = (select(inside.c.key, edge).group_by(inside.c.key)
            .order_by(edge.asc() if up else edge.desc()).limit(limit).cte("page"))  # fmt: skip
    # the page's range (Mastodon's pagination_range): a full page spans its groups' edges;
    # one that is not full reaches the end it was going to
    full = select(func.count()).select_from(page).scalar_subquery() >= limit
    top: ColumnElement[Any] = select(func.max(page.c.edge)).scalar_subquery()
    if up:
        top = case((full, top), else_=cursor.max_id - 1 if cursor.max_id else _NO_END)
    floor = (cursor.min_id if up else cursor.since_id) or 0
    bottom = case((full, select(func.min(page.c.edge)).scalar_subquery()), else_=floor + 1)
    # each group's notifications up to the page's top, newest first, with its numbers
    members = (
        window(Notification.id.label("id"), key_sql.label("key"),
               func.row_number().over(partition_by=key_sql, order_by=Notification.id.desc())
               .label("rank"),
               func.count().over(partition_by=key_sql).label("count"),
               func.min(case((Notification.id >= bottom, Notification.id)))
               .over(partition_by=key_sql).label("first"))
        .where(key_sql.in_(select(page.c.key)), Notification.id <= top)
        .subquery("members")
    )  # fmt: skip
    query = (
        select(members.c.key, page.c.edge, members.c.count, members.c.first, Notification,
               Actor, Object)
        .select_from(members)
        .join(page, page.c.key == members.c.key)
        .join(Notification, Notification.id == members.c.id)
        .join(Actor, Actor.uri == Notification.actor_uri)
        .outerjoin(Object, Object.id == Notification.object_id)
        .where(members.c.rank <= SAMPLE_ACCOUNTS)
        .order_by(page.c.edge.desc(), members.c.rank)
    )  # fmt: skip
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    groups: dict[str, Group] = {}
    edges: list[int] = []
    for name, at, count, first, notification, actor, post in rows:
        found = groups.get(name)
        if found is None:
            groups[name] = Group(name, Shown(notification, actor, post), int(count),
                                 [actor], int(first or notification.id))  # fmt: skip
            edges.append(int(at))
        else:
            found.accounts.append(actor)
    return Page(list(groups.values()), min(edges, default=None), max(edges, default=None))


async def find_group(db: Database, owner: Actor, key: str) -> Group | None:
    """The group ``key`` of ``owner``, whole (any type, its newest notifications)."""
    found = await grouped_page(db, owner, Cursor(), 1, types=(*MASTODON_TYPES, GENERATION),
                               grouped=_grouped_by(key), key=key)  # fmt: skip
    return found.items[0] if found.items else None


async def dismiss_group(db: Database, owner: Actor, key: str) -> None:
    """Dismiss every notification of ``owner``'s group ``key`` (none: nothing to do)."""
    async with db.transaction() as session:
        await session.execute(
            update(Notification)
            .where(Notification.owner_id == owner.id, Notification.dismissed_at.is_(None),
                   _in_group(key))
            .values(dismissed_at=utcnow())
        )  # fmt: skip
