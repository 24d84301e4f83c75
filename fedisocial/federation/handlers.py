"""What each received activity does: one small async function per (activity, object) type.

``HANDLERS`` maps ``(activity type, object type)`` to a :class:`Handler`;
``(type, None)`` is the fallback for any object (or a bare id). A handler is
one function, ``apply``, that reads a normalized :class:`Received` activity and
writes through the :class:`Tx` it is given: the inbox runs the handlers of a
whole batch of activities in one transaction (each in a savepoint of its own,
see :mod:`fedisocial.federation.inbox`), so ``apply`` never opens a
transaction nor waits on the network. What needs the network comes first, in
the handler's ``prepare`` (outside any transaction): handlers trust an
embedded object only when its id is on the actor's host; anything else is
fetched from its own host (``remote.fetch_object``) there. A handler that
finds nothing to do logs why and returns; one that must refuse raises a
FedisocialError with the reason, which the inbox turns into a permanent job
failure (remote errors that may pass are retried).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap.client import FederationClient
from fedisocial.ap.vocab import (
    ACTOR_TYPES,
    ADDRESSING,
    POST_TYPES,
    as_list,
    get_id,
    normalize,
    same_origin,
)
from fedisocial.errors import Forbidden, InvalidDocument
from fedisocial.federation.remote import fetch_actor, fetch_object, save_actor
from fedisocial.social import notifications
from fedisocial.social.access import Reach, addressees, is_public, may_announce
from fedisocial.social.content import clean_remote_post
from fedisocial.social.notifications import Notice
from fedisocial.social.outbox import Outbox, iso
from fedisocial.social.versions import record as record_version
from fedisocial.store.db import Database
from fedisocial.store.models import (
    Actor,
    Block,
    Engagement,
    Follow,
    Object,
    TimelineEntry,
    utcnow,
)
from fedisocial.store.rows import check_uri_lengths, object_columns, upsert
from fedisocial.urls import Urls

__all__ = ["HANDLERS", "Handler", "Received", "Services", "Tx", "handler_for"]

log = logging.getLogger(__name__)

#: FEP-1b12: a group shares its members' activities by announcing them
_SHARED_ACTIVITIES = frozenset({"Create", "Update"})


@dataclass(frozen=True)
class Services:
    """What handlers use, built once by the Inbox."""

    db: Database
    client: FederationClient
    outbox: Outbox
    urls: Urls
    actor_max_age: timedelta
    #: stored objects a batch names, by id, read once before its prepare steps (so that
    #: a hundred boosts of stored posts do not each open a session to find theirs)
    known: Mapping[str, Object] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """A stored activity, normalized, with the few fields every handler reads."""

    row_id: int
    id: str
    type: str
    actor: str
    doc: dict[str, Any]
    object: Any
    object_id: str | None
    embedded: dict[str, Any] | None
    recipient: str | None = None
    #: the post it is about, as received, when ``prepare`` found it (fetched or trusted)
    resolved: dict[str, Any] | None = None
    #: a created post as it is stored (normalized, addressed, cleaned), made by ``prepare``
    #: outside the batch's transaction: cleaning HTML is the most CPU a post costs, and on
    #: SQLite the transaction holds the file's one write lock
    cleaned: dict[str, Any] | None = None

    @property
    def object_type(self) -> str | None:
        kind = self.embedded.get("type") if self.embedded else None
        return kind if isinstance(kind, str) else None

    @classmethod
    def of(
        cls, row_id: int, uri: str, data: dict[str, Any], recipient: str | None = None
    ) -> Received:
        """A stored activity, normalized; its id is the row's (derived when it had none)."""
        doc = {**normalize(data), "id": uri}
        return cls._build(row_id, doc, doc.get("object"), recipient)

    @classmethod
    def _build(cls, row_id: int, doc: dict[str, Any], obj: Any, recipient: str | None) -> Received:
        if isinstance(obj, list) and len(obj) == 1:  # an array of one object is that object
            obj = obj[0]
        embedded = normalize(obj) if isinstance(obj, dict) else None
        return cls(row_id, str(doc["id"]), str(doc.get("type")), get_id(doc.get("actor")) or "",
                   doc, obj, get_id(obj), embedded, recipient)  # fmt: skip

    def with_object(self, obj: dict[str, Any]) -> Received:
        """The same activity with its object replaced (by the stored copy of a bare id)."""
        return self._build(self.row_id, self.doc, obj, self.recipient)

    def with_resolved(
        self, post: dict[str, Any], cleaned: dict[str, Any] | None = None
    ) -> Received:
        return replace(self, resolved=post, cleaned=cleaned)

    def mentions(self) -> set[str]:
        """The ids of stored objects its handler may read: its object and what that replies
        to (and an Announce itself, which its handler adds to feeds)."""
        ids = {self.object_id, self.id if self.type == "Announce" else None}
        for obj in (self.embedded, self.resolved):
            if obj is not None:
                ids |= {get_id(obj.get("id")), get_id(obj.get("inReplyTo"))}
        return {i for i in ids if i}

    def stores(self) -> set[str]:
        """The ids of what applying it may store that an activity after it may name: itself
        and the post its prepare step resolved (a Like stores neither post nor author)."""
        post = get_id(self.resolved.get("id")) if self.resolved is not None else None
        return {self.id, post} if post else {self.id}


@dataclass
class Tx:
    """A batch's transaction as its handlers see it: the session, the services, and the
    objects and authors the batch read up front (so that a handler asks the database
    only for what the batch could not know).

    Feed additions wait for the end of the batch (:attr:`reaches`, one query for
    all); the inbox keeps or drops those of each activity with its savepoint.
    """

    session: AsyncSession
    svc: Services
    #: stored objects by id, as read up front or written since (None: not stored)
    objects: dict[str, Object | None] = field(default_factory=dict)
    #: followers collection of remote actors, by actor id
    followers: dict[str, str | None] = field(default_factory=dict)
    #: what the activities handled so far add to home feeds
    reaches: list[Reach] = field(default_factory=list)
    #: the notifications they cause (written with the feeds, at the end of the batch)
    notices: list[Notice] = field(default_factory=list)
    #: the likes, reactions and boosts they record (one insert at the end of the batch)
    engagements: list[dict[str, str]] = field(default_factory=list)

    async def stored(self, uri: str | None) -> Object | None:
        """The stored object ``uri`` (read once per batch)."""
        if uri is None:
            return None
        if uri not in self.objects:
            self.objects[uri] = await self.session.scalar(select(Object).where(Object.uri == uri))
        return self.objects[uri]

    async def followers_of(self, author: str) -> str | None:
        if author not in self.followers:
            self.followers[author] = await self.session.scalar(
                select(Actor.followers_url).where(Actor.uri == author)
            )
        return self.followers[author]

    def add_to_feeds(
        self, row: Object, boosted: Object | None = None, reached: Iterable[str] = ()
    ) -> None:
        self.reaches.append(Reach(row, boosted, tuple(reached)))

    def notify(self, *notices: Notice) -> None:
        self.notices.extend(notices)

    def engage(self, act: Received, kind: str, target: str, emoji: str = "") -> None:
        """Record a like, reaction or boost of ``target`` (written with the feeds)."""
        self.engagements.append({"kind": kind, "actor_uri": act.actor, "object_uri": target,
                                 "activity_uri": act.id, "content": emoji})  # fmt: skip

    def drop_engagements(self, actor: str, activity: str | None = None) -> int:
        """Take back engagements of this batch not yet written: ``actor``'s (that one
        ``activity`` of it, if given); how many."""
        kept = [e for e in self.engagements if e["actor_uri"] != actor
                or (activity is not None and e["activity_uri"] != activity)]  # fmt: skip
        dropped, self.engagements[:] = len(self.engagements) - len(kept), kept
        return dropped

    async def withdraw(self, **undone: Any) -> None:
        """Take back notifications (:func:`~fedisocial.social.notifications.withdraw`), those
        of this batch not yet written too."""
        notifications.withdrawn(self.notices, **undone)
        await notifications.withdraw(self.session, **undone)

    async def preload(self, activities: Iterable[Received]) -> None:
        """Read the objects and authors a batch mentions: two queries."""
        acts = list(activities)
        uris = set().union(*(act.mentions() for act in acts)) - set(self.objects)
        if uris:
            self.objects.update(dict.fromkeys(uris))
            found = await self.session.scalars(select(Object).where(Object.uri.in_(uris)))
            self.objects.update({row.uri: row for row in found})
        authors = {act.actor for act in acts} - set(self.followers)
        if authors:
            self.followers.update(dict.fromkeys(authors))
            rows = await self.session.execute(
                select(Actor.uri, Actor.followers_url).where(Actor.uri.in_(authors))
            )
            self.followers.update({uri: followers for uri, followers in rows})

    def forget(self) -> None:
        """Drop what was read: after a rolled-back savepoint it may be stale."""
        self.objects.clear()
        self.followers.clear()


Apply = Callable[[Tx, Received], Awaitable[None]]
Prepare = Callable[[Services, Received], Awaitable[Received]]


@dataclass(frozen=True)
class Handler:
    """What an activity type does: ``apply`` in the batch's transaction, after ``prepare``
    (network, outside any transaction) has found what it needs."""

    apply: Apply
    prepare: Prepare | None = None


def handles(prepare: Prepare | None = None) -> Callable[[Apply], Handler]:
    def wrap(apply: Apply) -> Handler:
        return Handler(apply, prepare)

    return wrap


def _skip(act: Received, reason: str) -> None:
    log.info("%s %s from %s: ignored, %s", act.type, act.id, act.actor, reason)


async def _local_object_actor(tx: Tx, act: Received) -> Actor | None:
    """The local actor an activity is about (its object); None, logged, if it is not one."""
    found = None
    if act.object_id is not None:
        found = await tx.session.scalar(
            select(Actor).where(Actor.uri == act.object_id, Actor.local.is_(True))
        )
    if found is None:
        _skip(act, f"{act.object_id} is not an actor of this instance")
    return found


async def _blockers(session: AsyncSession, blocked: str) -> set[int]:
    """Ids of the local actors who block ``blocked``."""
    query = (
        select(Actor.id)
        .join(Block, Block.blocker_uri == Actor.uri)
        .where(Block.blocked_uri == blocked, Actor.local.is_(True))
    )
    return set(await session.scalars(query))


# -- posts: trust, clean, store ---------------------------------------------------------


async def _received_post(svc: Services, act: Received, obj: Any) -> dict[str, Any]:
    """The post ``obj`` names, as received: as sent when the actor's host vouches, else fetched.

    An object whose id is on another host than the actor is not trusted as
    sent: its own host is asked for it (or the copy we fetched before is used).
    """
    post_id = get_id(obj)
    if post_id is None:
        raise InvalidDocument("its object has no id")
    if isinstance(obj, dict) and same_origin(post_id, act.actor):
        return obj
    row = svc.known.get(post_id)
    if row is None:
        log.info("%s %s: fetching %s from its own host", act.type, act.id, post_id)
        row = await fetch_object(svc.db, svc.client, post_id)
    if row.deleted_at is not None:
        raise InvalidDocument(f"{post_id} was deleted")
    return row.original or row.data


def _resolved(act: Received) -> dict[str, Any]:
    assert act.resolved is not None, "the handler's prepare step resolves the post"
    return act.resolved


def _author_of(post: dict[str, Any], fallback: str | None) -> str:
    author = get_id(post.get("attributedTo")) or fallback
    if not author:
        raise InvalidDocument(f"{post.get('id')} has no author (attributedTo)")
    if not same_origin(str(post.get("id")), author):
        raise InvalidDocument(f"{post.get('id')} is on another host than its author {author}")
    return author


async def _save_post(
    tx: Tx, post: dict[str, Any], author: str, original: dict[str, Any] | None = None,
    clean: dict[str, Any] | None = None,
) -> Object:  # fmt: skip
    """Insert or refresh the row of a remote post (local posts are never overwritten).

    ``post`` is normalized; ``original`` the document as received, kept beside the
    sanitized copy (None keeps the one stored); ``clean``: that copy, when made before.
    """
    row = await tx.stored(post["id"])
    if row is not None and row.local:
        return row
    if row is not None and row.deleted_at is not None:
        raise InvalidDocument(f"{post['id']} was deleted")
    clean = clean or clean_remote_post(post, author)
    columns = object_columns(clean, await tx.followers_of(author))
    check_uri_lengths("post", {"id": post["id"], "inReplyTo": columns["in_reply_to"]})
    if row is None:  # inserted with the next flush (the batch's, in one statement)
        row = Object(uri=post["id"], local=False, data=clean, original=original, **columns)
        tx.session.add(row)
        tx.objects[row.uri] = row
        return row
    if row.actor_uri != author:
        raise Forbidden(f"{post['id']} is stored as a post of {row.actor_uri}, not of {author}")
    row.data, row.original = clean, original or row.original
    for name, value in columns.items():
        setattr(row, name, value)
    return row


async def _also_reached(tx: Tx, act: Received, row: Object) -> list[str]:
    """Local actors a received post reaches besides its addressees and the author's followers.

    The owner of the personal inbox it was delivered to (senders strip ``bto``/``bcc``,
    so being delivered to is being addressed), and the local author of the post a
    public or unlisted reply answers (it counts among that post's replies too).
    """
    reached: list[str] = []
    if act.recipient:
        reached += await tx.session.scalars(select(Actor.uri).where(
            Actor.local.is_(True), Actor.domain == tx.svc.urls.netloc,
            func.lower(Actor.username) == act.recipient.lower(),
        ))  # fmt: skip
    if row.in_reply_to and is_public(row):
        parent = await tx.stored(row.in_reply_to)
        if parent is not None and parent.local and parent.actor_uri:
            reached.append(parent.actor_uri)
    return [uri for uri in reached if uri]


def _address(row: Object, delivered_to: Iterable[str]) -> None:
    """Senders strip ``bto``/``bcc``: whom a private post was delivered to, it addresses."""
    addressed = addressees(row.data)
    missing = [uri for uri in delivered_to if uri not in addressed]
    if missing:
        row.data = {**row.data, "bto": [*as_list(row.data.get("bto")), *missing]}


async def _store_post(
    tx: Tx, post: dict[str, Any], author: str, original: dict[str, Any],
    act: Received | None = None, clean: dict[str, Any] | None = None,
) -> Object:  # fmt: skip
    """Store a remote post and add it to the feeds of the local actors it reaches.

    ``original``: the post as received; ``act``: the Create that delivered it (an
    edit reaches no one new); ``clean``: the post cleaned already (:func:`_save_post`).
    """
    if post.get("type") not in POST_TYPES:
        raise InvalidDocument(f"{post.get('id')} is a {post.get('type')}, not a post")
    row = await _save_post(tx, post, author, original, clean)
    reached = await _also_reached(tx, act, row) if act is not None else []
    if not is_public(row):
        _address(row, reached)
    tx.add_to_feeds(row, reached=reached)
    return row


def _addressed(post: dict[str, Any], create: dict[str, Any]) -> dict[str, Any]:
    """The post with the Create's addressing where it has none of its own, field by field.

    Mastodon reads ``object.to || activity.to`` (and so on for each field); some
    servers address only the activity.
    """
    given = {key: create[key] for key in ADDRESSING if not post.get(key) and create.get(key)}
    return {**post, **given}


def _created_post(original: dict[str, Any], act: Received) -> dict[str, Any]:
    """The post a Create delivers, normalized, with the Create's addressing where it has none."""
    return _addressed(normalize(original), act.doc)


async def resolve_object(svc: Services, act: Received) -> Received:
    """Prepare a Create: its post, as sent when trusted, else fetched from its host; and,
    when its author may create it, that post as it is stored (:attr:`Received.cleaned`)."""
    if act.embedded is not None and act.object_type not in POST_TYPES:
        return act  # not a post: kept as received (see on_create)
    original = await _received_post(svc, act, act.object)
    post = _created_post(original, act)
    try:
        author = _creator_of(post, act)
    except (Forbidden, InvalidDocument):
        return act.with_resolved(original)  # refused in the transaction, with the reason
    return act.with_resolved(original, clean_remote_post(post, author))


def _creator_of(post: dict[str, Any], act: Received) -> str:
    """The author of a created post, who must be the Create's actor."""
    author = _author_of(post, act.actor)
    if author != act.actor:
        raise Forbidden(f"{act.actor} cannot create a post attributed to {author}")
    return author


@handles(prepare=resolve_object)
async def on_create_post(tx: Tx, act: Received) -> None:
    original = _resolved(act)
    post = act.cleaned or _created_post(original, act)
    author = _creator_of(post, act)
    row = await _store_post(tx, post, author, original, act, act.cleaned)
    parent = await tx.stored(row.in_reply_to)
    tx.notify(*notifications.post_notices(row, parent.actor_uri if parent else None))


@handles(prepare=resolve_object)
async def on_create(tx: Tx, act: Received) -> None:
    """A Create of no post type we know: a bare id is fetched and processed as a post.

    An embedded object of another type is kept as received (arrays: :func:`on_several`).
    """
    if act.embedded is not None:
        _skip(act, f"a {act.object_type} is not a post")
        return
    await on_create_post.apply(tx, act)


@handles()
async def on_update_post(tx: Tx, act: Received) -> None:
    if act.embedded is None or not same_origin(str(act.object_id), act.actor):
        raise Forbidden(f"an Update must carry the post itself, from {act.actor}'s own host")
    row = await tx.stored(act.object_id)
    if row is None or row.deleted_at is not None:
        _skip(act, f"{act.object_id} is not a post we have")
        return
    author = _author_of(act.embedded, act.actor)
    if row.local or row.actor_uri != act.actor or author != act.actor:
        raise Forbidden(f"only the author of {act.object_id} can edit it, not {act.actor}")
    post = _addressed(act.embedded, act.doc)
    post.setdefault("updated", act.doc.get("published") or iso(utcnow()))
    if post["updated"] != row.data.get("updated"):  # not a redelivery: keep the old version
        record_version(tx.session, row)
    row = await _store_post(tx, post, author, act.object)
    tx.notify(*await notifications.edit_notices(tx.session, row, act.id))


async def refresh_actor(svc: Services, act: Received) -> Received:
    """Prepare an Update of an actor that names it by id only: fetch it again."""
    if act.object_id == act.actor and not isinstance(act.object, dict):
        await fetch_actor(svc.db, svc.client, act.actor, max_age=svc.actor_max_age, refresh=True)
    return act


@handles(prepare=refresh_actor)
async def on_update_actor(tx: Tx, act: Received) -> None:
    if act.object_id != act.actor:
        raise Forbidden(f"{act.actor} cannot update the profile of {act.object_id}")
    if isinstance(act.object, dict):  # (else fetched by refresh_actor)
        await save_actor(tx.session, act.object)
        tx.followers.pop(act.actor, None)


# -- deletes ----------------------------------------------------------------------------


def _tombstone(row: Object, now: Any) -> dict[str, Any]:
    return {"id": row.uri, "type": "Tombstone", "formerType": row.type, "deleted": iso(now)}


@handles()
async def on_delete(tx: Tx, act: Received) -> None:
    target = act.object_id
    if target is None:
        raise InvalidDocument("the Delete names no object")
    if target == act.actor:
        await _delete_actor(tx, act)
        return
    if act.object_type in ACTOR_TYPES:
        raise Forbidden(f"{act.actor} cannot delete the actor {target}")
    if not same_origin(target, act.actor):
        raise Forbidden(f"{act.actor} cannot delete {target}, which is on another host")
    row, now = await tx.stored(target), utcnow()
    if row is None:
        # Deliveries race: keep a tombstone so that a Create arriving late stays deleted.
        row = Object(uri=target, type="Tombstone", actor_uri=act.actor, local=False,
                     data={"id": target, "type": "Tombstone", "deleted": iso(now)},
                     deleted_at=now)  # fmt: skip
        tx.session.add(row)  # inserted with the batch's next flush
        tx.objects[target] = row
        return
    if row.deleted_at is not None:
        return
    if row.local or row.actor_uri != act.actor:
        raise Forbidden(f"only the author of {target} can delete it, not {act.actor}")
    row.data, row.original, row.deleted_at = _tombstone(row, now), None, now
    await tx.session.execute(delete(TimelineEntry).where(TimelineEntry.object_id == row.id))
    await notifications.forget_post(tx.session, row.id)


async def _delete_actor(tx: Tx, act: Received) -> None:
    """An actor deleted itself: its follows, engagements and content go."""
    who, now, session = act.actor, utcnow(), tx.session
    await session.execute(
        delete(Follow).where(or_(Follow.follower_uri == who, Follow.followee_uri == who))
    )
    tx.drop_engagements(who)
    await session.execute(delete(Engagement).where(Engagement.actor_uri == who))
    await session.execute(delete(Block).where(Block.blocker_uri == who))
    theirs = select(Object.id).where(Object.actor_uri == who, Object.local.is_(False))
    await session.execute(delete(TimelineEntry).where(TimelineEntry.object_id.in_(theirs)))
    rows = await session.scalars(
        select(Object).where(Object.actor_uri == who, Object.local.is_(False))
        .where(Object.deleted_at.is_(None), Object.id != act.row_id)
    )  # fmt: skip
    for row in rows:
        row.data, row.original, row.deleted_at = _tombstone(row, now), None, now
    await session.execute(delete(Actor).where(Actor.uri == who, Actor.local.is_(False)))
    await notifications.forget_actor(session, who)
    tx.followers.pop(who, None)


# -- follows ----------------------------------------------------------------------------


@handles()
async def on_follow(tx: Tx, act: Received) -> None:
    session = tx.session
    followee = await _local_object_actor(tx, act)
    if followee is None:
        return
    follow = await session.scalar(select(Follow).where(
        Follow.follower_uri == act.actor, Follow.followee_uri == followee.uri
    ))  # fmt: skip
    new = follow is None
    if follow is None:
        session.add(Follow(follower_uri=act.actor, followee_uri=followee.uri,
                           activity_uri=act.id))  # fmt: skip
        accepted = False
    else:  # asked again: answer the newest request
        follow.activity_uri, accepted = act.id, follow.state == "accepted"
    if followee.id in await _blockers(session, act.actor):
        await tx.svc.outbox.answer_follow_in(session, followee, act.id, accept=False)
        return
    if followee.manually_approves_followers and not accepted:
        log.info("follow request %s waits for %s to approve it", act.id, followee.uri)
    else:
        await tx.svc.outbox.answer_follow_in(session, followee, act.id, accept=True)
    if new:  # a follow asked again tells nothing new
        kind = notifications.follow_type(followee, accepted)
        tx.notify(Notice(followee.uri, kind, act.actor, act.id))


async def _our_follow(tx: Tx, act: Received) -> Follow | None:
    """Our Follow that an Accept or Reject answers: by id, else by who follows whom."""
    session = tx.session
    follow = await session.scalar(select(Follow).where(Follow.activity_uri == act.object_id))
    if follow is None and act.object_type == "Follow" and act.embedded is not None:
        follower = get_id(act.embedded.get("actor"))
        follow = await session.scalar(select(Follow).where(
            Follow.follower_uri == follower, Follow.followee_uri == act.actor
        ))  # fmt: skip
    if follow is None or not tx.svc.urls.is_local(follow.follower_uri):
        return None
    if follow.followee_uri != act.actor:
        raise Forbidden(f"only {follow.followee_uri} can answer the follow {follow.activity_uri}")
    return follow


@handles()
async def on_accept(tx: Tx, act: Received) -> None:
    follow = await _our_follow(tx, act)
    if follow is None:
        _skip(act, f"{act.object_id} is not a follow request of ours")
        return
    follow.state, follow.accepted_at = "accepted", follow.accepted_at or utcnow()


@handles()
async def on_reject(tx: Tx, act: Received) -> None:
    follow = await _our_follow(tx, act)
    if follow is None:
        _skip(act, f"{act.object_id} is not a follow of ours")
        return
    await tx.session.delete(follow)


@handles()
async def on_block(tx: Tx, act: Received) -> None:
    session = tx.session
    blocked = await _local_object_actor(tx, act)
    if blocked is None:
        return
    await session.execute(delete(Follow).where(
        ((Follow.follower_uri == act.actor) & (Follow.followee_uri == blocked.uri))
        | ((Follow.follower_uri == blocked.uri) & (Follow.followee_uri == act.actor))
    ))  # fmt: skip
    await session.execute(upsert(session, Block).on_conflict_do_nothing().values(
        blocker_uri=act.actor, blocked_uri=blocked.uri, activity_uri=act.id
    ))  # fmt: skip


# -- likes, reactions, boosts -----------------------------------------------------------


def _reaction(act: Received) -> str:
    """The emoji of a reaction: Pleroma's EmojiReact, Misskey's Like with a reaction."""
    emoji = act.doc.get("content")
    if act.type == "Like":
        emoji = act.doc.get("_misskey_reaction") or emoji
    return emoji.strip()[:255] if isinstance(emoji, str) else ""


async def write_engagements(session: AsyncSession, engagements: Sequence[dict[str, str]]) -> None:
    """Insert a batch's engagements: one statement (a redelivered one is there already)."""
    if engagements:
        await session.execute(upsert(session, Engagement).on_conflict_do_nothing(), engagements)


@handles()
async def on_like(tx: Tx, act: Received) -> None:
    emoji = _reaction(act)
    if act.type == "EmojiReact" and not emoji:
        raise InvalidDocument("the EmojiReact has no emoji (content)")
    target = await tx.stored(act.object_id)
    if target is None or target.deleted_at is not None:
        _skip(act, f"{act.object_id} is not a post we have")
        return
    tx.engage(act, "reaction" if emoji else "like", target.uri, emoji)
    if act.type == "Like" and target.actor_uri:  # (Misskey's reactions are Likes: favourites)
        tx.notify(Notice(target.actor_uri, "favourite", act.actor, act.id, target))


def _announced(act: Received) -> tuple[Any, dict[str, Any] | None] | None:
    """What an Announce shares: ``(post or its id, the activity around it or None)``.

    FEP-1b12: a group announces its members' Create and Update (the post inside);
    None for an object that is not a post.
    """
    if act.object_type in _SHARED_ACTIVITIES and act.embedded is not None:
        return act.embedded.get("object"), act.embedded
    if act.object_type is not None and act.object_type not in POST_TYPES:
        return None
    return act.object, None


async def resolve_announced(svc: Services, act: Received) -> Received:
    """Prepare an Announce: the post it shares, as sent when trusted, else fetched."""
    announced = _announced(act)
    if announced is None:
        return act
    return act.with_resolved(await _received_post(svc, act, announced[0]))


@handles(prepare=resolve_announced)
async def on_announce(tx: Tx, act: Received) -> None:
    announced = _announced(act)
    if announced is None:
        _skip(act, f"announcing a {act.object_type} means nothing to us")
        return
    original, shared = _resolved(act), announced[1]
    post = normalize(original) if shared is None else _addressed(normalize(original), shared)
    if post.get("type") not in POST_TYPES:
        raise InvalidDocument(f"{post.get('id')} is a {post.get('type')}, not a post")
    author = _author_of(post, None)
    target = await tx.stored(post["id"])
    if target is None or target.deleted_at is not None or target.actor_uri != author:
        target = await _save_post(tx, post, author, original)  # refuses those two
    # else: as stored; a boost does not edit the post (an Update does)
    if not may_announce(target, act.actor):
        raise Forbidden(f"{target.uri} is a {target.visibility} post: such posts cannot "
                        "be boosted, except by their author")  # fmt: skip
    tx.engage(act, "announce", target.uri)
    tx.notify(Notice(author, "reblog", act.actor, act.id, target))
    announce = await tx.stored(act.id)
    if announce is not None:
        tx.add_to_feeds(announce, target)


# -- undo -------------------------------------------------------------------------------


def _check_own(act: Received) -> None:
    owner = get_id(act.embedded.get("actor")) if act.embedded else None
    if owner is not None and owner != act.actor:
        raise Forbidden(f"{act.actor} cannot undo an activity of {owner}")


@handles()
async def undo_follow(tx: Tx, act: Received) -> None:
    _check_own(act)
    followee = get_id(act.embedded.get("object")) if act.embedded else None
    result = await tx.session.execute(delete(Follow).where(
        Follow.follower_uri == act.actor,
        or_(Follow.activity_uri == act.object_id, Follow.followee_uri == followee),
    ))  # fmt: skip
    if not getattr(result, "rowcount", 0):
        _skip(act, f"{act.actor} did not follow through {act.object_id}")
    if followee:
        await tx.withdraw(actor=act.actor, owner=followee, types=notifications.FOLLOWS)


@handles()
async def undo_engagement(tx: Tx, act: Received) -> None:
    """Undo a Like, an EmojiReact or an Announce (the boost also leaves the feeds)."""
    _check_own(act)
    pending = tx.drop_engagements(act.actor, act.object_id or "")
    result = await tx.session.execute(delete(Engagement).where(
        Engagement.actor_uri == act.actor, Engagement.activity_uri == act.object_id
    ))  # fmt: skip
    if act.object_type == "Announce":
        await tx.session.execute(
            update(Object)
            .where(Object.uri == act.object_id, Object.actor_uri == act.actor)
            .values(deleted_at=utcnow())
        )
    if not pending and not getattr(result, "rowcount", 0):
        _skip(act, f"{act.object_id} is no like, reaction or boost we have")
    if act.object_id:
        await tx.withdraw(actor=act.actor, key=act.object_id)


@handles()
async def undo_block(tx: Tx, act: Received) -> None:
    _check_own(act)
    blocked = get_id(act.embedded.get("object")) if act.embedded else None
    await tx.session.execute(delete(Block).where(
        Block.blocker_uri == act.actor,
        or_(Block.activity_uri == act.object_id, Block.blocked_uri == blocked),
    ))  # fmt: skip


@handles()
async def undo_by_id(tx: Tx, act: Received) -> None:
    """An Undo naming the undone activity by id only: look at what we stored."""
    row = await tx.stored(act.object_id)
    if row is None:
        _skip(act, f"{act.object_id} is no activity we received")
        return
    if row.actor_uri != act.actor:
        raise Forbidden(f"{act.actor} cannot undo an activity of {row.actor_uri}")
    undone = act.with_object(row.data)
    handler = HANDLERS.get(("Undo", undone.object_type))
    if handler is None or handler is undo_by_id:
        _skip(act, f"undoing a {row.type} means nothing to us")
        return
    await handler.apply(tx, undone)


# -- the rest ---------------------------------------------------------------------------


@handles()
async def on_kept(tx: Tx, act: Received) -> None:
    """Reports (Flag) and moves (Move): kept as received for now, not acted on."""
    _skip(act, "kept as received; not acted on yet")


@handles()
async def on_several(tx: Tx, act: Received) -> None:
    """An activity whose object is an array: we act on one object per activity."""
    count = len(act.object) if isinstance(act.object, list) else 0
    raise InvalidDocument(f"its object is an array of {count} objects; we act on one at a time")


def handler_for(act: Received) -> Handler | None:
    """The handler of ``(type, object type)``, else of ``(type, None)``; None if we ignore it."""
    handler = HANDLERS.get((act.type, act.object_type)) or HANDLERS.get((act.type, None))
    if handler is not None and isinstance(act.object, list):
        return on_several
    return handler


HANDLERS: dict[tuple[str, str | None], Handler] = {
    ("Follow", None): on_follow,
    ("Accept", "Follow"): on_accept,
    ("Accept", None): on_accept,
    ("Reject", "Follow"): on_reject,
    ("Reject", None): on_reject,
    **{("Create", kind): on_create_post for kind in POST_TYPES},
    ("Create", None): on_create,
    **{("Update", kind): on_update_post for kind in POST_TYPES},
    **{("Update", kind): on_update_actor for kind in ACTOR_TYPES},
    ("Delete", None): on_delete,
    ("Like", None): on_like,
    ("EmojiReact", None): on_like,
    ("Announce", None): on_announce,
    ("Block", None): on_block,
    ("Undo", "Follow"): undo_follow,
    ("Undo", "Like"): undo_engagement,
    ("Undo", "EmojiReact"): undo_engagement,
    ("Undo", "Announce"): undo_engagement,
    ("Undo", "Block"): undo_block,
    ("Undo", None): undo_by_id,
    ("Flag", None): on_kept,
    ("Move", None): on_kept,
}
