"""Who may read a post, and which local actors a post reaches.

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

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap.vocab import as_list, get_id
from fedisocial.errors import Forbidden, NotFound, Unauthorized
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Block, Follow, Object

__all__ = ["READABLE", "addressees", "ensure_readable", "is_blocked", "local_audience"]

#: visibilities anyone may read
READABLE = ("public", "unlisted")


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


async def local_audience(
    session: AsyncSession, author_uri: str, visibility: str, addressed: Iterable[str]
) -> list[int]:
    """Ids of the local actors who should see a post: author, followers, addressees."""
    audience = {author_uri, *addressed}
    query = select(Actor.id).where(Actor.local.is_(True), Actor.uri.in_(audience))
    ids = set(await session.scalars(query))
    if visibility != "direct":
        followers = (
            select(Actor.id)
            .join(Follow, Follow.follower_uri == Actor.uri)
            .where(Follow.followee_uri == author_uri, Follow.state == "accepted")
            .where(Actor.local.is_(True))
        )
        ids.update(await session.scalars(followers))
    return sorted(ids)
