"""How a local account stands with others: follows, blocks, mutes, asked the way apps ask.

The actions answer as Mastodon's do (``FollowService``, ``BlockService`` …):
asking twice is not an error, and the answer is always the relationship as it is
now. They go through :class:`~fedisocial.social.outbox.Outbox`, so a follow of a
remote account federates and stays ``requested`` until its server accepts.
:func:`relationships` reads every side of many relationships in four queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import aliased

from fedisocial.errors import Forbidden, NotFound
from fedisocial.social import mutes
from fedisocial.social.collections import Listing
from fedisocial.social.outbox import Outbox
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Block, Follow
from fedisocial.urls import Urls

__all__ = [
    "Relationship",
    "actor_by_id",
    "actors_by_id",
    "actors_by_uri",
    "answer_follow_request",
    "block",
    "blocked",
    "familiar_followers",
    "follow",
    "follow_request",
    "lookup",
    "relationships",
    "remove_from_followers",
    "unblock",
    "unfollow",
]


@dataclass(frozen=True)
class Relationship:
    """``viewer``'s side and ``other``'s side of their relationship (Mastodon's entity)."""

    actor_id: int
    following: bool = False
    requested: bool = False
    followed_by: bool = False
    requested_by: bool = False
    blocking: bool = False
    blocked_by: bool = False
    muting: bool = False
    muting_notifications: bool = False


# -- finding accounts -------------------------------------------------------------------------


async def actor_by_id(db: Database, actor_id: int) -> Actor:
    """An actor we know (local or remote) by row id, or NotFound."""
    async with db.session() as session:
        actor = await session.get(Actor, actor_id)
    if actor is None:
        raise NotFound("Record not found")
    return actor


async def actors_by_id(db: Database, actor_ids: Sequence[int]) -> list[Actor]:
    """The actors of ``actor_ids`` we know, in the order given, each once (one query)."""
    wanted = list(dict.fromkeys(actor_ids))
    if not wanted:
        return []
    async with db.session() as session:
        found = {a.id: a for a in await session.scalars(select(Actor).where(Actor.id.in_(wanted)))}
    return [found[i] for i in wanted if i in found]


async def actors_by_uri(db: Database, uris: Sequence[str]) -> list[Actor]:
    """The actors of ``uris`` we know, in the order given (one query)."""
    if not uris:
        return []
    async with db.session() as session:
        found = {a.uri: a for a in await session.scalars(select(Actor).where(Actor.uri.in_(uris)))}
    return [found[uri] for uri in uris if uri in found]


async def lookup(db: Database, urls: Urls, acct: str) -> Actor:
    """An account by handle without asking the network: a local ``name`` or ``name@ourhost``,
    or a remote ``name@host`` already stored; NotFound otherwise (Mastodon's ``lookup``)."""
    name, _, host = acct.strip().lstrip("@").partition("@")
    host = host.lower() or urls.netloc
    if not name:
        raise NotFound("Record not found")
    query = select(Actor).where(
        Actor.domain == host, func.lower(Actor.username) == name.lower(),
        Actor.local.is_(host == urls.netloc),
    )  # fmt: skip
    async with db.session() as session:
        actor = await session.scalar(query.order_by(Actor.id).limit(1))
    if actor is None:
        raise NotFound("Record not found")
    return actor


# -- reading relationships ------------------------------------------------------------------


async def relationships(db: Database, viewer: Actor, others: Sequence[Actor]) -> list[Relationship]:
    """The relationship of ``viewer`` with each of ``others``, in order."""
    uris = [other.uri for other in others]
    if not uris:
        return []
    mine = select(Follow.followee_uri, Follow.state).where(
        Follow.follower_uri == viewer.uri, Follow.followee_uri.in_(uris)
    )
    theirs = select(Follow.follower_uri, Follow.state).where(
        Follow.followee_uri == viewer.uri, Follow.follower_uri.in_(uris)
    )
    blocks = select(Block.blocker_uri, Block.blocked_uri).where(
        ((Block.blocker_uri == viewer.uri) & Block.blocked_uri.in_(uris))
        | ((Block.blocked_uri == viewer.uri) & Block.blocker_uri.in_(uris))
    )
    async with db.session() as session:
        following = {uri: state for uri, state in await session.execute(mine)}
        followed = {uri: state for uri, state in await session.execute(theirs)}
        blocking = {(a, b) for a, b in await session.execute(blocks)}
    muted = await mutes.mutes_of(db, viewer.id, uris)
    out = []
    for other in others:
        mute = muted.get(other.uri)
        out.append(Relationship(
            actor_id=other.id,
            following=following.get(other.uri) == "accepted",
            requested=following.get(other.uri) == "pending",
            followed_by=followed.get(other.uri) == "accepted",
            requested_by=followed.get(other.uri) == "pending",
            blocking=(viewer.uri, other.uri) in blocking,
            blocked_by=(other.uri, viewer.uri) in blocking,
            muting=mute is not None,
            muting_notifications=mute is not None and mute.notifications,
        ))  # fmt: skip
    return out


async def familiar_followers(
    db: Database, viewer: Actor, others: Sequence[Actor], *, limit: int = 5
) -> dict[int, list[Actor]]:
    """For each of ``others``, up to ``limit`` of its followers whom ``viewer`` follows."""
    mine, theirs = aliased(Follow), aliased(Follow)
    out: dict[int, list[Actor]] = {other.id: [] for other in others}
    async with db.session() as session:
        for other in others:
            query = (
                select(Actor)
                .join(theirs, (theirs.follower_uri == Actor.uri) & (theirs.state == "accepted"))
                .join(mine, (mine.followee_uri == Actor.uri) & (mine.state == "accepted"))
                .where(theirs.followee_uri == other.uri, mine.follower_uri == viewer.uri)
                .order_by(theirs.id.desc())
                .limit(limit)
            )
            out[other.id] = list(await session.scalars(query))
    return out


def _uri(row: Sequence[Any]) -> str:
    return str(row[1])


def blocked(actor_uri: str) -> Listing[str]:
    """The actor ids ``actor_uri`` blocks, the latest block first (paged by block row)."""

    def query(*columns: Any) -> Select[Any]:
        return select(*columns).select_from(Block).where(Block.blocker_uri == actor_uri)

    return Listing(Block, None, query, (Block.blocked_uri,), _uri)


async def _follow_row(db: Database, follower: str, followee: str) -> Follow | None:
    query = select(Follow).where(Follow.follower_uri == follower, Follow.followee_uri == followee)
    async with db.session() as session:
        found: Follow | None = await session.scalar(query)
    return found


async def follow_request(db: Database, actor: Actor, requester: Actor) -> Follow:
    """The pending request of ``requester`` to follow ``actor``, or NotFound."""
    found = await _follow_row(db, requester.uri, actor.uri)
    if found is None or found.state != "pending":
        raise NotFound("Record not found")
    return found


async def answer_follow_request(outbox: Outbox, actor: Actor, requester: Actor, *,
                                accept: bool) -> None:  # fmt: skip
    """Approve (``accept``) or reject the pending request of ``requester`` to follow
    ``actor``: the requester is sent an Accept or a Reject; NotFound without a request."""
    asked = await follow_request(outbox.db, actor, requester)
    await outbox.answer_follow(actor, asked.activity_uri, accept=accept)


async def _blocked_either_way(db: Database, one: str, other: str) -> bool:
    query = (
        select(func.count())
        .select_from(Block)
        .where(
            ((Block.blocker_uri == one) & (Block.blocked_uri == other))
            | ((Block.blocker_uri == other) & (Block.blocked_uri == one))
        )
    )
    async with db.session() as session:
        return bool(await session.scalar(query))


# -- acting -----------------------------------------------------------------------------------


async def follow(outbox: Outbox, actor: Actor, target: Actor) -> None:
    """Follow ``target`` (already following or asked: nothing more happens).

    Forbidden when either blocks the other; NotFound for oneself (Mastodon's answers).
    """
    if target.id == actor.id:
        raise NotFound("Record not found")
    if await _follow_row(outbox.db, actor.uri, target.uri) is not None:
        return
    if await _blocked_either_way(outbox.db, actor.uri, target.uri):
        raise Forbidden("This action is not allowed")
    await outbox.follow(actor, target.uri)


async def unfollow(outbox: Outbox, actor: Actor, target: Actor) -> None:
    """Stop following ``target``, or take back the request (nothing to take back: no-op)."""
    if await _follow_row(outbox.db, actor.uri, target.uri) is not None:
        await outbox.unfollow(actor, target.uri)


async def remove_from_followers(outbox: Outbox, actor: Actor, target: Actor) -> None:
    """Make ``target`` stop following ``actor``: their follow is rejected (they are told)."""
    found = await _follow_row(outbox.db, target.uri, actor.uri)
    if found is not None:
        await outbox.reject_follow(actor, found.activity_uri)


async def block(outbox: Outbox, actor: Actor, target: Actor) -> None:
    """Block ``target`` (again: nothing more happens)."""
    if target.id == actor.id:
        raise NotFound("Record not found")
    query = (
        select(func.count())
        .select_from(Block)
        .where(Block.blocker_uri == actor.uri, Block.blocked_uri == target.uri)
    )
    async with outbox.db.session() as session:
        if await session.scalar(query):
            return
    await outbox.block(actor, target.uri)


async def unblock(outbox: Outbox, actor: Actor, target: Actor) -> None:
    """Take back a block of ``target`` (none: nothing happens)."""
    try:
        await outbox.unblock(actor, target.uri)
    except NotFound:
        return
