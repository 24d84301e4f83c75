"""Post cards: what a feed, a thread or a profile shows of each post.

A card is the post's Mastodon Status entity (:class:`~fedisocial.web.mastoapi.entities.Entities`
loads a page of them in a few grouped queries: authors, counts, the viewer's likes,
boosts and bookmarks, media with blurhash) plus what only our pages show: who boosted
it, whom it replies to (a name, not a URL), which images are AI-made (the IPTC digital
source type the studio sets, or one a remote server sent), and the paths of our pages
for the post, its author and its tags. Content is sanitized again when shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from fedisocial.ap.render import TRAINED_ALGORITHMIC_MEDIA
from fedisocial.ap.vocab import as_list
from fedisocial.social.content import sanitize
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Object
from fedisocial.urls import Urls
from fedisocial.web.mastoapi.entities import Entities
from fedisocial.web.pages.base import profile_path, tag_path, thread_path

__all__ = ["Card", "cards", "parse_time"]

#: IPTC digital source types (the last part of the code's URI) of AI-made media
_AI_TYPES = {TRAINED_ALGORITHMIC_MEDIA.rsplit("/", 1)[-1], "compositeWithTrainedAlgorithmicMedia"}


@dataclass(frozen=True)
class Card:
    """One post as a card: ``status`` is the post itself (a boost's post), ``boost`` the
    boost's own entity when the row was a boost."""

    status: dict[str, Any]
    boost: dict[str, Any] | None
    content_html: str
    ai_images: frozenset[int]
    reply_to: dict[str, Any] | None
    created: datetime

    @property
    def id(self) -> str:
        """The id of the row (a boost's own id): what paging and "load more" go by."""
        return str((self.boost or self.status)["id"])

    @property
    def path(self) -> str:
        return thread_path(self.status["id"])

    @property
    def author_path(self) -> str:
        return profile_path(self.status["account"]["acct"])

    @property
    def booster_path(self) -> str | None:
        return profile_path(self.boost["account"]["acct"]) if self.boost else None

    def tag_paths(self) -> list[tuple[str, str]]:
        return [(tag["name"], tag_path(tag["name"])) for tag in self.status.get("tags", [])]


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


def _ai_images(post: Object) -> frozenset[int]:
    marked = set()
    images = [item for item in as_list(post.data.get("attachment")) if isinstance(item, dict)]
    for index, item in enumerate(images):
        kinds = {str(kind).rsplit("/", 1)[-1] for kind in as_list(item.get("digitalSourceType"))}
        if kinds & _AI_TYPES:
            marked.add(index)
    return frozenset(marked)


async def cards(db: Database, urls: Urls, viewer: Actor | None,
                rows: Sequence[Object]) -> list[Card]:  # fmt: skip
    """Cards of posts and boosts, in order (a row an app could not show is left out too)."""
    entities = await Entities(db, urls, viewer).statuses(rows)
    shown = [entity.get("reblog") or entity for entity in entities]
    by_id = {row.id: row for row in rows}
    boosted_uris = [row.object_uri for row in rows if row.type == "Announce" and row.object_uri]
    parents = {str(s["in_reply_to_account_id"]) for s in shown if s.get("in_reply_to_account_id")}
    async with db.session() as session:
        boosted = (
            {
                post.uri: post
                for post in await session.scalars(
                    select(Object).where(Object.uri.in_(boosted_uris))
                )
            }
            if boosted_uris
            else {}
        )
        authors = (
            {
                str(actor.id): actor
                for actor in await session.scalars(
                    select(Actor).where(Actor.id.in_([int(i) for i in parents]))
                )
            }
            if parents
            else {}
        )
    found = []
    for entity, status in zip(entities, shown, strict=True):
        row = by_id[int(entity["id"])]
        post = boosted.get(row.object_uri or "") if row.type == "Announce" else row
        author = authors.get(str(status.get("in_reply_to_account_id")))
        reply_to = None
        if author is not None:
            acct = author.username if author.local else f"{author.username}@{author.domain}"
            reply_to = {"acct": acct, "name": author.name or author.username,
                        "path": profile_path(acct)}  # fmt: skip
        found.append(Card(
            status=status,
            boost=entity if entity.get("reblog") else None,
            content_html=sanitize(status["content"]),
            ai_images=_ai_images(post) if post is not None else frozenset(),
            reply_to=reply_to,
            created=parse_time(entity["created_at"]),
        ))  # fmt: skip
    return found
