"""Who may read a post, and which local actors' home feeds a post reaches.

The read rule is Mastodon's ``StatusPolicy#show?``, for every stored object
(posts, activities) and so for every reader: single objects and their pages,
collections (outbox, featured, replies, likes, shares), profiles, home feeds,
the CLI. It is one SQL condition, :func:`readable_by`, so that lists filter in
the query and single objects (:func:`ensure_readable`) ask the same question:

- public and unlisted: anyone;
- followers-only: the author, an accepted follower of the author, or an actor
  the post is addressed to (``to``/``cc``/``bto``/``bcc``/``audience``, where
  mentions go). The reader is the signer itself: another actor of the
  follower's server, its instance actor included, is not a follower;
- direct: the author and the actors it is addressed to;
- an actor the author blocks reads nothing of theirs, whatever the visibility.

:func:`ensure_readable` answers a reader who may not read with 401 for an
anonymous read of a followers-only post (sign the request), 403 for a signed
one, 404 for direct posts and for readers the author blocks.

A post reaches the home feed of a local actor (:func:`local_audiences`) when it
is theirs, they follow its author (unless it is direct) or it is addressed to
them; a boost reaches its booster and the booster's followers. Either way only
readers who may read it (and, for a boost, the post boosted), and who do not
block its author (or the boosted post's), as Mastodon's feed filters do.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    SQLColumnExpression,
    and_,
    bindparam,
    exists,
    literal,
    or_,
    select,
    tuple_,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from fedisocial.ap.vocab import ADDRESSING, as_list, get_id
from fedisocial.errors import Forbidden, NotFound, Unauthorized
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Block, Follow, Object

__all__ = [
    "READABLE",
    "Reach",
    "Viewer",
    "addressed_to",
    "addressees",
    "ensure_readable",
    "in_feed_of",
    "is_blocked",
    "is_public",
    "local_audiences",
    "may_announce",
    "readable_by",
]

#: visibilities anyone may read
READABLE = ("public", "unlisted")

#: who reads: an actor id, a column of actor ids (in a join), or None for anyone
Viewer = str | SQLColumnExpression[str] | None


class _AddressedTo(FunctionElement[bool]):
    """Whether the JSON document ``data`` is addressed to ``actor`` (SQL, per dialect)."""

    type = Boolean()
    inherit_cache = True
    name = "addressed_to"


@compiles(_AddressedTo, "sqlite")
def _addressed_sqlite(element: _AddressedTo, compiler: SQLCompiler, **kw: Any) -> str:
    data, actor = (compiler.process(c, **kw) for c in element.clauses)
    # json_each of a string yields the string: a lone ``"to": "…"`` counts too
    fields = " UNION ALL ".join(f"SELECT value FROM json_each({data}, '$.{f}')" for f in ADDRESSING)
    return f"({actor} IN ({fields}))"


@compiles(_AddressedTo, "postgresql")
def _addressed_postgresql(element: _AddressedTo, compiler: SQLCompiler, **kw: Any) -> str:
    data, actor = (compiler.process(c, **kw) for c in element.clauses)
    keys = " || ".join(f'@.key == "{f}"' for f in ADDRESSING)
    # lax mode: ``[*]`` of a lone string is that string
    path = f"$.keyvalue() ? ({keys}).value[*] ? (@ == $actor)"
    return (f"jsonb_path_exists({data}, '{path}', "
            f"jsonb_build_object('actor', CAST({actor} AS TEXT)))")  # fmt: skip


def addressees(doc: dict[str, Any]) -> set[str]:
    """Every actor or collection id a document is addressed to."""
    return {i for f in ADDRESSING for i in map(get_id, as_list(doc.get(f))) if i}


def addressed_to(viewer: str, post: Any = Object) -> ColumnElement[bool]:
    """Whether ``post`` (``Object`` or an alias) is addressed to the actor ``viewer`` (SQL)."""
    return _AddressedTo(post.data, literal(viewer))


def _blocks(blocker: Any, blocked: Any) -> ColumnElement[bool]:
    return exists().where(Block.blocker_uri == blocker, Block.blocked_uri == blocked)


def _follows(follower: Any, followee: Any) -> ColumnElement[bool]:
    return exists().where(
        Follow.follower_uri == follower, Follow.followee_uri == followee,
        Follow.state == "accepted",
    )  # fmt: skip


def readable_by(viewer: Viewer, post: Any = Object) -> ColumnElement[bool]:
    """The read rule (module docstring) as a condition on ``post`` (``Object`` or an alias).

    ``viewer`` None is an anonymous reader.
    """
    anyone: ColumnElement[bool] = post.visibility.in_(READABLE)
    if viewer is None:
        return anyone
    if isinstance(viewer, str):
        viewer = literal(viewer)
    allowed = or_(
        anyone,
        post.actor_uri == viewer,
        _AddressedTo(post.data, viewer),
        and_(post.visibility == "followers", _follows(viewer, post.actor_uri)),
    )
    return and_(allowed, ~_blocks(post.actor_uri, viewer))


def in_feed_of(owner: Viewer, post: Any = Object) -> ColumnElement[bool]:
    """Whether ``post`` may show in the home feed of ``owner``: readable, author not blocked."""
    return and_(readable_by(owner, post), ~_blocks(owner, post.actor_uri))


def is_public(obj: Object) -> bool:
    """Whether anyone may read ``obj`` without saying who they are (and caches may keep it)."""
    return obj.visibility in READABLE


def may_announce(post: Object, actor_uri: str) -> bool:
    """Whether ``actor_uri`` may boost ``post``: public and unlisted ones, or its own.

    Mastodon's ``announceable?`` for received boosts.
    """
    return is_public(post) or post.actor_uri == actor_uri


async def is_blocked(db: Database, blocker_uri: str, blocked_uri: str) -> bool:
    """Whether ``blocker_uri`` blocks ``blocked_uri``."""
    async with db.session() as session:
        return bool(await session.scalar(select(_blocks(blocker_uri, blocked_uri))))


async def ensure_readable(db: Database, obj: Object, viewer: Actor | None) -> None:
    """Raise Unauthorized, Forbidden or NotFound unless ``viewer`` may read ``obj``.

    ``viewer`` is None for anonymous readers. See the module docstring for the rules.
    """
    if viewer is None and is_public(obj):  # the busiest read: a public post, anyone asking
        return
    who = viewer.uri if viewer is not None else None
    readable = select(readable_by(who), _blocks(obj.actor_uri, who) if who else literal(False))
    async with db.session() as session:
        row = (await session.execute(readable.where(Object.id == obj.id))).first()
    allowed, blocked = row if row is not None else (False, False)
    if allowed:
        return
    if obj.visibility != "followers" or blocked:
        raise NotFound(f"no object {obj.uri}")
    if viewer is None:
        raise Unauthorized(f"{obj.uri} is for followers only: sign the request as a follower")
    raise Forbidden(f"{obj.uri} is for the followers of {obj.actor_uri} only")


@dataclass(frozen=True)
class Reach:
    """A post (or a boost of ``boosted``) to add to home feeds, and whom it reached.

    ``reached``: local actors a received post reached besides those it names (e.g.
    the owner of the inbox it was delivered to).
    """

    row: Object
    boosted: Object | None = None
    reached: Iterable[str] = ()

    def named(self) -> set[str]:
        """Who might see it by name: the booster, or the author, addressees and ``reached``."""
        if self.boosted is not None:
            return {self.row.actor_uri} if self.row.actor_uri else set()
        return {n for n in (self.row.actor_uri, *addressees(self.row.data), *self.reached) if n}

    @property
    def reaches_followers(self) -> bool:
        return self.boosted is not None or self.row.visibility != "direct"


async def local_audiences(session: AsyncSession, reaches: Sequence[Reach]) -> list[tuple[int, int]]:
    """``(row id, local actor id)`` for each home feed each of ``reaches`` shows in, in one query.

    A post: its author, the followers of its author (unless it is direct), its
    addressees and whom it reached; a boost: its booster and the booster's
    followers. Only those who may read it (and, for a boost, the post boosted)
    and do not block its author (module docstring); deleted rows reach no one.
    """
    if not reaches:
        return []
    followed = [r.row.id for r in reaches if r.reaches_followers]
    named = [(r.row.id, uri) for r in reaches for uri in sorted(r.named())]
    if named:
        # Only local actors have feeds. Most of the names are remote (authors, followers
        # collections), and the query below pairs every named row with every named actor
        # before it keeps the named pairs: on PostgreSQL, which tests a list of pairs one
        # pair after another, that cost 25 ms for a batch of 50 posts.
        local = set(
            await session.scalars(_LOCAL_ACTORS, {"uris": sorted({uri for _, uri in named})})
        )
        named = [(row_id, uri) for row_id, uri in named if uri in local]
    boosts = [r.row.id for r in reaches if r.boosted is not None]
    query = _audience_query(bool(followed), bool(named))
    parameters = {"followed": followed, "named": named, "boosts": boosts or [0],
                  "named_rows": sorted({row_id for row_id, _ in named}),
                  "named_uris": sorted({uri for _, uri in named})}  # fmt: skip
    return [(row_id, owner) for row_id, owner in await session.execute(query, parameters)]


_LOCAL_ACTORS = select(Actor.uri).where(
    Actor.uri.in_(bindparam("uris", expanding=True)), Actor.local.is_(True)
)


@functools.cache
def _audience_query(followed: bool, named: bool) -> Select[int, int]:
    """The statement of :func:`local_audiences`, built once per shape (building it costs
    more than running it); the lists are expanding parameters."""
    post, original = aliased(Object), aliased(Object)
    # who might see it, found by index: the local followers of its actor, actors by uri
    candidates: list[Select[int, str]] = []
    if followed:
        # The posts first, by key, then their authors' followers by index. Left to join
        # them itself, PostgreSQL read every followed author's posts (``ix_objects_actor_
        # published``) to find the batch's among them: 64 ms a batch of 100 at a dozen posts
        # each, and more with every post. A materialized CTE is computed apart, as written.
        batch = (
            select(Object.id, Object.actor_uri)
            .where(Object.id.in_(bindparam("followed", expanding=True)))
            .cte("batch").prefix_with("MATERIALIZED")
        )  # fmt: skip
        candidates.append(
            select(batch.c.id.label("row_id"), Follow.follower_uri.label("uri")).join(
                Follow, (Follow.followee_uri == batch.c.actor_uri) & (Follow.state == "accepted")
            )
        )
    if named:
        candidates.append(
            select(post.id.label("row_id"), Actor.uri.label("uri"))
            .select_from(post)
            .join(Actor, Actor.uri.in_(bindparam("named_uris", expanding=True)))
            .where(
                post.id.in_(bindparam("named_rows", expanding=True)),
                tuple_(post.id, Actor.uri).in_(bindparam("named", expanding=True)),
            )
        )
    found = union(*candidates).subquery() if len(candidates) > 1 else candidates[0].subquery()
    # ... then the read rule decides for each
    boosted_shown = original.deleted_at.is_(None) & in_feed_of(Actor.uri, original)
    is_boost = post.id.in_(bindparam("boosts", expanding=True))
    return (
        select(found.c.row_id, Actor.id)
        .join(Actor, (Actor.uri == found.c.uri) & Actor.local.is_(True))
        .join(post, post.id == found.c.row_id)
        .outerjoin(original, is_boost & (original.uri == post.object_uri))
        .where(
            post.deleted_at.is_(None),
            in_feed_of(Actor.uri, post),
            or_(original.id.is_(None), boosted_shown),
        )
        .order_by(found.c.row_id, Actor.id)
    )
