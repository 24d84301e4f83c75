"""What a person can take away: their follows, blocks and mutes as Mastodon's CSV files, and
their posts as an ActivityStreams archive (``outbox.json``).

The CSV files are the ones Mastodon's "Export" page gives and its "Import" page reads
(``following_accounts.csv``, ``blocked_accounts.csv``, ``muted_accounts.csv``), so they
move to another server. ``outbox.json`` is an ``OrderedCollection`` of the ``Create``
activities of the person's own posts, as Mastodon's archive holds them. Everything is
read in batches of :data:`BATCH` rows and handed on as it is read, so an account with
many posts never sits in memory whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import aliased

from fedisocial.ap.jsonld import OBJECT_CONTEXT
from fedisocial.ap.vocab import POST_TYPES
from fedisocial.social.collections import activity_document, bare
from fedisocial.social.mutes import active
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Block, Follow, Mute, Object

__all__ = [
    "BATCH",
    "BLOCKS_HEADER",
    "FOLLOWS_HEADER",
    "MUTES_HEADER",
    "blocks_csv",
    "follows_csv",
    "mutes_csv",
    "outbox_json",
]

#: rows read at a time
BATCH = 200
FOLLOWS_HEADER = ("Account address", "Show boosts", "Notify on new posts", "Languages")
BLOCKS_HEADER = ("Account address",)
MUTES_HEADER = ("Account address", "Hide notifications")


def _csv_line(values: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _address(uri: str, username: str | None, domain: str | None) -> str:
    """``user@host`` as Mastodon's import resolves it; the URI if we never saw the actor."""
    return f"{username}@{domain}" if username and domain else uri


async def _rows(db: Database, query: Callable[[], Select[Any]], key: Any) -> AsyncIterator[Any]:
    """The rows of ``query`` in batches, keyset-paged on ``key`` (a unique id column)."""
    after = 0
    while True:
        async with db.session() as session:
            batch = list(await session.execute(
                query().where(key > after).order_by(key).limit(BATCH)))  # fmt: skip
        for row in batch:
            yield row
        if len(batch) < BATCH:
            return
        after = batch[-1][0]


async def _csv(db: Database, header: Sequence[str], query: Callable[[], Select[Any]],
               key: Any, line: Callable[[Any], Sequence[str]]) -> AsyncIterator[str]:  # fmt: skip
    yield _csv_line(header)
    async for row in _rows(db, query, key):
        yield _csv_line(line(row))


def _with_actor(model: Any, uri_column: Any, *where: ColumnElement[bool],
                extra: tuple[Any, ...] = ()) -> Select[Any]:  # fmt: skip
    """(row id, the other account's URI, its username and domain, ``extra``…) rows."""
    columns: tuple[Any, ...] = (model.id, uri_column, Actor.username, Actor.domain, *extra)
    return (
        select(*columns).select_from(model).outerjoin(Actor, Actor.uri == uri_column).where(*where)
    )


def follows_csv(db: Database, actor: Actor) -> AsyncIterator[str]:
    """``following_accounts.csv``: the accounts ``actor`` follows (accepted follows). We keep
    no per-follow boost, notify or language choices, so each line has Mastodon's defaults."""

    def query() -> Select[Any]:
        return _with_actor(Follow, Follow.followee_uri, Follow.follower_uri == actor.uri,
                           Follow.state == "accepted")  # fmt: skip

    def line(row: Any) -> tuple[str, ...]:
        return (_address(row[1], row[2], row[3]), "true", "false", "")

    return _csv(db, FOLLOWS_HEADER, query, Follow.id, line)


def blocks_csv(db: Database, actor: Actor) -> AsyncIterator[str]:
    """``blocked_accounts.csv``: the accounts ``actor`` blocks."""

    def query() -> Select[Any]:
        return _with_actor(Block, Block.blocked_uri, Block.blocker_uri == actor.uri)

    def line(row: Any) -> tuple[str, ...]:
        return (_address(row[1], row[2], row[3]),)

    return _csv(db, BLOCKS_HEADER, query, Block.id, line)


def mutes_csv(db: Database, actor: Actor) -> AsyncIterator[str]:
    """``muted_accounts.csv``: the accounts ``actor`` mutes now (expired mutes left out)."""

    def query() -> Select[Any]:
        return _with_actor(Mute, Mute.muted_uri, Mute.owner_id == actor.id, active(),
                           extra=(Mute.notifications,))  # fmt: skip

    def line(row: Any) -> tuple[str, ...]:
        return (_address(row[1], row[2], row[3]), "true" if row[4] else "false")

    return _csv(db, MUTES_HEADER, query, Mute.id, line)


def _own_posts(actor: Actor, *columns: Any) -> Select[Any]:
    """The ``Create`` rows of ``actor``'s own live posts (with the post: id, Create, post)."""
    post = aliased(Object)
    chosen: tuple[Any, ...] = columns or (Object.id, Object, post)
    return (
        select(*chosen)
        .select_from(Object)
        .join(post, post.uri == Object.object_uri)
        .where(
            Object.actor_uri == actor.uri,
            Object.local.is_(True),
            Object.type == "Create",
            Object.deleted_at.is_(None),
            post.type.in_(POST_TYPES),
            post.deleted_at.is_(None),
        )
    )


async def outbox_json(db: Database, actor: Actor) -> AsyncIterator[bytes]:
    """``outbox.json``: the ``Create`` of each of ``actor``'s own posts (any audience: it is
    their archive), oldest first, each embedding the post as it is now (edits included)."""
    async with db.session() as session:
        total = await session.scalar(_own_posts(actor, func.count())) or 0
    head = {"@context": OBJECT_CONTEXT, "id": "outbox.json", "type": "OrderedCollection",
            "totalItems": total}  # fmt: skip
    yield orjson.dumps(head)[:-1] + b',"orderedItems":['
    first = True
    async for row in _rows(db, lambda: _own_posts(actor), Object.id):
        item = orjson.dumps(bare(activity_document(row[1], row[2])))
        yield item if first else b"," + item
        first = False
    yield b"]}"
