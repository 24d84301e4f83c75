"""The thread above an asking post, as the assistant may read it.

Up to ``depth`` posts above the ask: from storage, the missing ones fetched through the
guarded client (:func:`~fedisocial.federation.remote.fetch_parents`: a failed fetch ends
the walk, not the answer). It reads only what it may read (public and unlisted posts,
and those addressed to it) and keeps apart the posts whose authors opted out of AI use
(``noai``): they are never put into a prompt, only counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from fedisocial.ap.client import FederationClient
from fedisocial.federation.remote import fetch_parents
from fedisocial.social.access import addressees, is_public
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Object

__all__ = ["Thread", "read_thread"]


@dataclass(frozen=True)
class Thread:
    """The posts above the ask that go into the prompt, oldest first, with their authors."""

    quoted: list[tuple[Object, Actor]] = field(default_factory=list)
    #: posts above it by authors who opted out of AI use (read for blocks only)
    left_out: int = 0
    #: every author of the thread above (the blocks apply to all of them)
    authors: set[str] = field(default_factory=set)


async def read_thread(
    db: Database, client: FederationClient, post: Object, *, reader: str, depth: int,
    max_age: timedelta,
) -> Thread:  # fmt: skip
    """What ``reader`` (the assistant) reads above ``post``, at most ``depth`` posts."""
    if post.in_reply_to is None:
        return Thread()
    await fetch_parents(db, client, post, max_age=max_age, limit=depth)
    above: list[Object] = []
    uri: str | None = post.in_reply_to
    seen = {post.uri}
    async with db.session() as session:
        while uri and uri not in seen and len(above) < depth:
            seen.add(uri)
            row = await session.scalar(select(Object).where(Object.uri == uri))
            if row is None or row.deleted_at is not None:
                break
            above.append(row)
            uri = row.in_reply_to
        authors = {row.actor_uri for row in above if row.actor_uri}
        actors = {a.uri: a for a in await session.scalars(
            select(Actor).where(Actor.uri.in_(authors))
        )}  # fmt: skip
    quoted, left_out = [], 0
    for row in reversed(above):
        author = actors.get(row.actor_uri or "")
        if author is None or not (is_public(row) or reader in addressees(row.data)):
            continue
        if author.noai:
            left_out += 1
            continue
        quoted.append((row, author))
    return Thread(quoted, left_out, authors)
