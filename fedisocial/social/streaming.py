"""Live streams for apps (Mastodon's streaming API): what each stream shows, as it happens.

The tables are the event log. A post reaching someone's home feed is a new
``timeline_entries`` row, a notification a ``notifications`` row, a new public
post an ``objects`` row, an edit or a deletion a ``stream_events`` row (written
by triggers, migration 0009). One :class:`StreamHub` per web process reads
what is new since its last look, for all its subscribers at once, and hands
each subscription the rows it may show; the web layer renders them for that
viewer. Because the rows are the source, a change made by any process (a web
process, the worker, another host) reaches every stream.

It looks when PostgreSQL says something changed (``LISTEN fedisocial_changes``,
sent by the triggers at commit) and at least every :data:`POLL_SECONDS`; on
SQLite it polls. PostgreSQL commits ids out of order under concurrency, so each
look re-reads a margin of ids below its high-water mark and skips ids it has
already seen.

Streams (Mastodon's names): ``user`` (home feed and notifications),
``user:notification``, ``public``, ``public:local``, ``public:remote``,
``hashtag`` and ``hashtag:local`` (with a tag), each public one also with
``:media`` (posts with attachments only). Public streams carry public,
top-level posts (and replies to oneself), as Mastodon's do; every row passes
the read rule for its viewer (:mod:`fedisocial.social.access`), and public
streams leave out what the viewer blocked or muted, as the public feeds do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from fedisocial.ap.vocab import STATUS_TYPES
from fedisocial.errors import BadRequest
from fedisocial.social.access import readable_by
from fedisocial.social.timeline import hashtags, home, shown_to, tag_name
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Notification, Object, StreamEvent, TimelineEntry

__all__ = [
    "POLL_SECONDS",
    "STREAMS",
    "USER_STREAMS",
    "Delivery",
    "Inbox",
    "StreamHub",
    "Subscription",
    "new_inbox",
]

log = logging.getLogger(__name__)

#: the longest a change waits before streams see it (without PostgreSQL's notice)
POLL_SECONDS = 0.5
#: ids re-read below each high-water mark (PostgreSQL commits ids out of order)
_MARGIN = 500
#: events a subscriber may fall behind by before it is dropped (it reconnects)
_QUEUE = 1000
STREAMS = frozenset({
    "user", "user:notification",
    "public", "public:local", "public:remote",
    "public:media", "public:local:media", "public:remote:media",
    "hashtag", "hashtag:local",
})  # fmt: skip
#: the streams of a signed-in user's own (home feed, notifications)
USER_STREAMS = frozenset({"user", "user:notification"})
CHANNEL = "fedisocial_changes"


@dataclass(frozen=True)
class Delivery:
    """One event for one subscription: ``update`` and ``status.update`` carry a post (or a
    boost with the post it boosts), ``notification`` a notification, ``delete`` an id."""

    event: str
    post: Object | None = None
    boosted: Object | None = None
    notification: Notification | None = None
    deleted_id: int | None = None


#: what a client reads: (subscription, delivery), or None when it fell too far behind
Inbox = asyncio.Queue[tuple["Subscription", Delivery] | None]


def new_inbox() -> Inbox:
    """A client's queue; the subscriptions of one connection may share it."""
    return asyncio.Queue(maxsize=_QUEUE)


@dataclass(eq=False)
class Subscription:
    """One stream one client listens to; its deliveries queue up in ``queue``.

    ``viewer`` None is an anonymous client (public streams only).
    """

    stream: str
    viewer: Actor | None = None
    tag: str | None = None
    queue: Inbox = field(default_factory=new_inbox)
    #: set when it fell too far behind and was dropped
    overflowed: bool = False

    def __post_init__(self) -> None:
        if self.stream not in STREAMS:
            raise BadRequest(f"unknown stream {self.stream!r}: one of {', '.join(sorted(STREAMS))}")
        if self.stream.startswith("hashtag"):
            if not self.tag or not self.tag.strip().lstrip("#"):
                raise BadRequest("a hashtag stream needs a tag")
            self.tag = tag_name(self.tag)
        elif self.tag is not None:
            self.tag = None
        if self.stream in USER_STREAMS and self.viewer is None:
            raise BadRequest(f"the {self.stream} stream is a signed-in user's")

    def offer(self, delivery: Delivery) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait((self, delivery))
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # tells the reader to end the stream

    # -- what it shows ----------------------------------------------------------------
    @property
    def key(self) -> list[str]:
        """How a message names this stream (Mastodon: ``["hashtag", "cats"]``)."""
        return [self.stream, self.tag] if self.tag is not None else [self.stream]

    @property
    def is_public(self) -> bool:
        return self.stream.startswith(("public", "hashtag"))

    def wants_post(self, post: Object, *, self_reply: bool = False) -> bool:
        """Whether a public stream shows ``post`` (the read rule is checked in the query);
        ``self_reply``: it answers its own author (a thread, which public streams show)."""
        if post.type not in STATUS_TYPES or post.visibility != "public":
            return False
        if post.in_reply_to is not None and not self_reply:
            return False
        if ":local" in self.stream and not post.local:
            return False
        if ":remote" in self.stream and post.local:
            return False
        if self.stream.endswith(":media") and not _has_media(post.data):
            return False
        if self.tag is not None:
            return self.tag in hashtags(post.data)
        return True


def _has_media(doc: dict[str, Any]) -> bool:
    found = doc.get("attachment")
    items = found if isinstance(found, list) else [found] if found else []
    return any(isinstance(item, dict) and item.get("type") != "PropertyValue" for item in items)


class _Cursor:
    """The high-water mark of one table, with the ids seen just below it."""

    def __init__(self) -> None:
        self.mark = 0
        self._seen: deque[int] = deque(maxlen=4 * _MARGIN)
        self._seen_set: set[int] = set()

    @property
    def floor(self) -> int:
        return max(0, self.mark - _MARGIN)

    def fresh(self, ident: int) -> bool:
        """True the first time ``ident`` is seen (and remembers it)."""
        if ident in self._seen_set:
            return False
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(ident)
        self._seen_set.add(ident)
        self.mark = max(self.mark, ident)
        return True


class StreamHub:
    """The streams of one process: subscribe, and a loop that feeds the subscriptions."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._subscriptions: set[Subscription] = set()
        self._cursors = {name: _Cursor() for name in ("entries", "posts", "notes", "events")}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None
        self._started = asyncio.Event()
        self._closing = False

    async def subscribe(self, subscription: Subscription) -> Subscription:
        """Start feeding ``subscription`` with what happens from now on."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="stream hub")
        await self._started.wait()
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def wake(self) -> None:
        """Look now (PostgreSQL's notice; tests)."""
        self._wake.set()

    async def close(self) -> None:
        # the flag ends the loop even where a cancel is lost: Python 3.11's wait_for can
        # swallow one that lands as the wait ends (gh-86296), and close() then waited forever
        self._closing = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._stop_listening()

    # -- the loop ---------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._start_marks()
            await self._listen()
        finally:
            self._started.set()
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            if self._closing or not self._subscriptions:
                continue
            try:
                await self._look()
            except Exception:  # a failed look is retried at the next one; streams go on
                log.exception("streams: reading what changed failed")

    async def _start_marks(self) -> None:
        tables = {"entries": TimelineEntry.id, "posts": Object.id, "notes": Notification.id,
                  "events": StreamEvent.id}  # fmt: skip
        async with self.db.session() as session:
            for name, column in tables.items():
                self._cursors[name].mark = await session.scalar(select(func.max(column))) or 0

    async def _listen(self) -> None:
        """LISTEN on PostgreSQL (a connection of its own, for the life of the hub)."""
        if self.db.is_sqlite:
            return
        try:
            connection = await self.db.engine.raw_connection()
            driver = connection.driver_connection
            assert driver is not None
            await driver.add_listener(CHANNEL, self._on_notice)
            self._listener = connection
        except Exception:  # polling still works; say why it is slower
            log.warning("streams: LISTEN %s failed, polling every %s s", CHANNEL, POLL_SECONDS,
                        exc_info=True)  # fmt: skip

    async def _stop_listening(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.driver_connection.remove_listener(CHANNEL, self._on_notice)
            self._listener.close()
            self._listener = None

    def _on_notice(self, *_: Any) -> None:
        self._wake.set()

    async def _look(self) -> None:
        subscriptions = [s for s in self._subscriptions if not s.overflowed]
        owners = {s.viewer.id: s.viewer for s in subscriptions if s.stream in USER_STREAMS
                  and s.viewer is not None}  # fmt: skip
        await self._feed_entries(subscriptions, owners)
        await self._public_posts(subscriptions)
        await self._notifications(subscriptions, owners)
        await self._changes(subscriptions)

    async def _new_ids(self, session: Any, name: str, column: Any, *where: Any) -> list[int]:
        cursor = self._cursors[name]
        query = select(column).where(column > cursor.floor, *where).order_by(column)
        return [i for i in await session.scalars(query) if cursor.fresh(i)]

    async def _feed_entries(self, subs: Sequence[Subscription], owners: dict[int, Actor]) -> None:
        async with self.db.session() as session:
            fresh = await self._new_ids(session, "entries", TimelineEntry.id)
            if not fresh or not owners:
                return
            reached = select(TimelineEntry.owner_id).where(
                TimelineEntry.id.in_(fresh), TimelineEntry.owner_id.in_(owners)
            )
            for owner_id in set(await session.scalars(reached.distinct())):
                listing = home(owner_id)
                query = listing.query(*listing.values).where(TimelineEntry.id.in_(fresh))
                rows = (await session.execute(query.order_by(TimelineEntry.id))).all()
                for sub in subs:
                    if (
                        sub.stream == "user"
                        and sub.viewer is not None
                        and sub.viewer.id == owner_id
                    ):
                        for post, boosted in rows:
                            sub.offer(Delivery("update", post, boosted))

    async def _public_posts(self, subs: Sequence[Subscription]) -> None:
        public = [s for s in subs if s.is_public]
        async with self.db.session() as session:
            fresh = await self._new_ids(session, "posts", Object.id)
            if not fresh or not public:
                return
            for viewer, group in _by_viewer(public):
                readable = readable_by(viewer.uri if viewer else None)
                query = select(Object).where(  # blocks and mutes apply, as in the feeds
                    Object.id.in_(fresh), Object.deleted_at.is_(None), readable, shown_to(viewer)
                )
                posts = list(await session.scalars(query.order_by(Object.id)))
                threads = await _self_replies(session, posts)
                for sub in group:
                    for post in posts:
                        if sub.wants_post(post, self_reply=post.id in threads):
                            sub.offer(Delivery("update", post))

    async def _notifications(self, subs: Sequence[Subscription], owners: dict[int, Actor]) -> None:
        async with self.db.session() as session:
            fresh = await self._new_ids(session, "notes", Notification.id)
            if not fresh or not owners:
                return
            query = select(Notification).where(
                Notification.id.in_(fresh), Notification.owner_id.in_(owners),
                Notification.dismissed_at.is_(None),
            ).order_by(Notification.id)  # fmt: skip
            for note in await session.scalars(query):
                for sub in subs:
                    if sub.stream in USER_STREAMS and sub.viewer and sub.viewer.id == note.owner_id:
                        sub.offer(Delivery("notification", notification=note))

    async def _changes(self, subs: Sequence[Subscription]) -> None:
        async with self.db.session() as session:
            fresh = await self._new_ids(session, "events", StreamEvent.id)
            if not fresh:
                return
            query = select(StreamEvent).where(StreamEvent.id.in_(fresh)).order_by(StreamEvent.id)
            events = list(await session.scalars(query))
            edited = {e.object_id for e in events if e.kind == "status.update"}
            for event in events:
                if event.kind == "delete":
                    for sub in subs:
                        if sub.stream != "user:notification":
                            sub.offer(Delivery("delete", deleted_id=event.object_id))
            if edited:
                await self._edits(session, subs, edited)

    async def _edits(self, session: Any, subs: Sequence[Subscription], edited: set[int]) -> None:
        for viewer, group in _by_viewer(subs):
            readable = readable_by(viewer.uri if viewer else None)
            query = select(Object).where(
                Object.id.in_(edited), Object.deleted_at.is_(None), readable
            )
            posts = list(await session.scalars(query))
            if not posts:
                continue
            threads = await _self_replies(session, posts)
            in_feed: set[int] = set()
            if viewer is not None:
                entries = select(TimelineEntry.object_id).where(
                    TimelineEntry.owner_id == viewer.id,
                    TimelineEntry.object_id.in_([p.id for p in posts]),
                )
                in_feed = set(await session.scalars(entries))
            for sub in group:
                for post in posts:
                    shown = (
                        post.id in in_feed
                        if sub.stream == "user"
                        else sub.wants_post(post, self_reply=post.id in threads)
                    )
                    if shown and sub.stream != "user:notification":
                        sub.offer(Delivery("status.update", post))


async def _self_replies(session: Any, posts: Sequence[Object]) -> set[int]:
    """The ids of ``posts`` that answer a post by their own author."""
    parents = {post.in_reply_to for post in posts if post.in_reply_to}
    if not parents:
        return set()
    query = select(Object.uri, Object.actor_uri).where(Object.uri.in_(parents))
    authors = {uri: author for uri, author in await session.execute(query)}
    return {post.id for post in posts
            if post.in_reply_to and authors.get(post.in_reply_to) == post.actor_uri}  # fmt: skip


def _by_viewer(subs: Iterable[Subscription]) -> list[tuple[Actor | None, list[Subscription]]]:
    groups: dict[int | None, tuple[Actor | None, list[Subscription]]] = {}
    for sub in subs:
        key = sub.viewer.id if sub.viewer is not None else None
        groups.setdefault(key, (sub.viewer, []))[1].append(sub)
    return list(groups.values())
