"""Mastodon's JSON entities (Account, Status, MediaAttachment, …) from our rows.

One :class:`Entities` per request, for one viewer: it loads what a list of
rows needs in a few grouped queries (authors, counts, the viewer's likes and
boosts, the posts replied to and boosted), so that a page of 40 statuses costs
the same handful of queries as one. Shapes and field names follow Mastodon
4.x (https://docs.joinmastodon.org/entities/), which apps decode strictly:
every field is present, ids are strings, times are ISO 8601 in UTC with
milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap import vocab
from fedisocial.ap.vocab import AUTOMATED_TYPES, content_language
from fedisocial.social.bookmarks import bookmarked
from fedisocial.social.collections import Counts, counts
from fedisocial.social.content import plain_text
from fedisocial.social.notifications import GENERATION, Shown, group_key
from fedisocial.store.db import Database
from fedisocial.store.models import (
    Actor,
    Engagement,
    Follow,
    Media,
    OAuthClient,
    Object,
    PostApplication,
)
from fedisocial.studio.media import thumbnail_size
from fedisocial.urls import Urls

__all__ = ["Entities", "iso_time", "visibility_name"]

#: our visibility → Mastodon's
_VISIBILITY = {"public": "public", "unlisted": "unlisted", "followers": "private",
               "direct": "direct"}  # fmt: skip
_MEDIA_KINDS = {"image": "image", "video": "video", "audio": "audio"}


def iso_time(moment: datetime | None) -> str | None:
    """``2026-12-01T18:52:30.123Z``: what Mastodon sends and apps parse."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def visibility_name(ours: str) -> str:
    return _VISIBILITY.get(ours, "public")


def _date(moment: datetime) -> str:
    """Mastodon gives an account's ``created_at`` at midnight, to hide when it was made."""
    return moment.strftime("%Y-%m-%dT00:00:00.000Z")


@dataclass
class _AccountFacts:
    followers: int = 0
    following: int = 0
    statuses: int = 0
    last_status_at: datetime | None = None


@dataclass
class _Loaded:
    """What a list of statuses needs beyond its rows, loaded in grouped queries."""

    actors: dict[str, Actor] = field(default_factory=dict)
    objects: dict[str, Object] = field(default_factory=dict)
    counts: dict[str, Counts] = field(default_factory=dict)
    engaged: set[tuple[str, str]] = field(default_factory=set)
    media: dict[str, Media] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ids of the posts the viewer bookmarked
    bookmarks: set[int] = field(default_factory=set)
    #: local posts made through an app: post id → Mastodon's Application (name, website)
    applications: dict[int, dict[str, Any]] = field(default_factory=dict)


class Entities:
    """Renders rows as Mastodon entities for ``viewer`` (None: an anonymous or app client)."""

    def __init__(self, db: Database, urls: Urls, viewer: Actor | None) -> None:
        self.db = db
        self.urls = urls
        self.viewer = viewer

    # -- accounts -------------------------------------------------------------------
    async def _facts(self, actors: Sequence[Actor]) -> dict[str, _AccountFacts]:
        uris = [actor.uri for actor in actors]
        facts = {uri: _AccountFacts() for uri in uris}
        accepted = Follow.state == "accepted"
        followers = (select(Follow.followee_uri, func.count())
                     .where(Follow.followee_uri.in_(uris), accepted)
                     .group_by(Follow.followee_uri))  # fmt: skip
        following = (select(Follow.follower_uri, func.count())
                     .where(Follow.follower_uri.in_(uris), accepted)
                     .group_by(Follow.follower_uri))  # fmt: skip
        posts = (select(Object.actor_uri, func.count(), func.max(Object.published))
                 .where(Object.actor_uri.in_(uris), Object.type.in_(vocab.STATUS_TYPES),
                        Object.deleted_at.is_(None), Object.visibility.in_(("public", "unlisted")))
                 .group_by(Object.actor_uri))  # fmt: skip
        async with self.db.session() as session:
            for uri, number in await session.execute(followers):
                facts[uri].followers = number
            for uri, number in await session.execute(following):
                facts[uri].following = number
            for author, number, last in await session.execute(posts):
                facts[str(author)].statuses, facts[str(author)].last_status_at = number, last
        return facts

    def _acct(self, actor: Actor) -> str:
        return actor.username if actor.local else f"{actor.username}@{actor.domain}"

    def _account(self, actor: Actor, facts: _AccountFacts) -> dict[str, Any]:
        avatar = actor.icon_url or self.urls.avatar(actor.username)
        header = actor.image_url or self.urls.header(actor.username)
        return {
            "id": str(actor.id),
            "username": actor.username,
            "acct": self._acct(actor),
            "display_name": actor.name or "",
            "locked": actor.manually_approves_followers,
            "bot": actor.type in AUTOMATED_TYPES,
            "discoverable": actor.discoverable,
            "indexable": actor.indexable,
            "group": actor.type == "Group",
            "created_at": _date(actor.created_at),
            "note": actor.summary or "",
            "url": actor.url or actor.uri,
            "uri": actor.uri,
            "avatar": avatar,
            "avatar_static": avatar,
            "header": header,
            "header_static": header,
            "followers_count": facts.followers,
            "following_count": facts.following,
            "statuses_count": facts.statuses,
            "last_status_at": facts.last_status_at.strftime("%Y-%m-%d")
            if facts.last_status_at
            else None,
            "hide_collections": False,
            "noindex": not actor.indexable,
            "emojis": [],
            "roles": [],
            "fields": [
                {"name": f.get("name", ""), "value": f.get("value", ""), "verified_at": None}
                for f in actor.fields
            ],
        }

    async def accounts(self, actors: Sequence[Actor]) -> list[dict[str, Any]]:
        """Account entities of ``actors``, in order (three grouped queries)."""
        facts = await self._facts(actors)
        return [self._account(actor, facts[actor.uri]) for actor in actors]

    async def account(self, actor: Actor) -> dict[str, Any]:
        return (await self.accounts([actor]))[0]

    async def credential_account(self, actor: Actor, *, follow_requests: int) -> dict[str, Any]:
        """The signed-in user's own Account, with ``source`` (what the settings edit)."""
        entity = await self.account(actor)
        entity["source"] = {
            "privacy": "public",
            "sensitive": False,
            "language": None,
            "note": plain_text(actor.summary or ""),
            "fields": [
                {
                    "name": f.get("name", ""),
                    "value": plain_text(f.get("value", "")),
                    "verified_at": None,
                }
                for f in actor.fields
            ],
            "follow_requests_count": follow_requests,
            "indexable": actor.indexable,
            "discoverable": actor.discoverable,
            "hide_collections": False,
            "attribution_domains": [],
        }
        entity["role"] = {"id": "-99", "name": "", "permissions": "0", "color": "",
                          "highlighted": False}  # fmt: skip
        return entity

    # -- statuses -------------------------------------------------------------------
    async def _load(self, rows: Sequence[Object]) -> _Loaded:
        loaded = _Loaded(objects={row.uri: row for row in rows})
        boosted = [row.object_uri for row in rows if row.type == "Announce" and row.object_uri]
        replied = [row.in_reply_to for row in rows if row.in_reply_to]
        async with self.db.session() as session:
            missing = [uri for uri in (*boosted, *replied) if uri not in loaded.objects]
            if missing:
                for row in await session.scalars(select(Object).where(Object.uri.in_(missing))):
                    loaded.objects[row.uri] = row
            posts = list(loaded.objects.values())
            wanted = {row.actor_uri for row in posts if row.actor_uri}
            for post in posts:
                wanted.update(vocab.mention_hrefs(post.data))
            if wanted:
                query = select(Actor).where(Actor.uri.in_(wanted))
                loaded.actors = {actor.uri: actor for actor in await session.scalars(query)}
            shown = [row.uri for row in posts if row.type != "Announce"]
            if self.viewer is not None and shown:
                mine = select(Engagement.kind, Engagement.object_uri).where(
                    Engagement.actor_uri == self.viewer.uri, Engagement.object_uri.in_(shown)
                )
                loaded.engaged = {(kind, uri) for kind, uri in await session.execute(mine)}
            local = [row.uri for row in posts if row.local]
            if local:
                files = select(Media).where(Media.note_uri.in_(local))
                loaded.media = {media.path: media for media in await session.scalars(files)}
                loaded.applications = await _applications(
                    session, [row.id for row in posts if row.local]
                )
        if self.viewer is not None:
            ids = [row.id for row in posts if row.type != "Announce"]
            loaded.bookmarks = await bookmarked(self.db, self.viewer.id, ids)
        loaded.counts = await counts(self.db, shown, self.viewer.uri if self.viewer else None)
        authors = [actor for actor in loaded.actors.values()
                   if actor.uri in {row.actor_uri for row in posts}]  # fmt: skip
        for actor, entity in zip(authors, await self.accounts(authors), strict=True):
            loaded.accounts[actor.uri] = entity
        return loaded

    def media_attachment(self, media: Media) -> dict[str, Any]:
        """The MediaAttachment of one of our uploads (a draft, or attached to a post)."""
        small = thumbnail_size(media.width, media.height)
        return {
            "id": str(media.id),
            "type": "image",
            "url": self.urls.media(media.path),
            "preview_url": self.urls.media(media.thumbnail_path),
            "remote_url": None,
            "preview_remote_url": None,
            "text_url": None,
            "meta": {
                "original": _size(media.width, media.height),
                "small": _size(*small),
                "focus": {"x": media.focal_x, "y": media.focal_y},
            },
            "description": media.description or None,
            "blurhash": media.blurhash or None,
        }

    def _attachment(self, post: Object, index: int, item: dict[str, Any],
                    media: dict[str, Media]) -> dict[str, Any]:  # fmt: skip
        url = _text_url(item.get("url")) or ""
        local = media.get(self.urls.media_key(url) or "")
        kind = str(item.get("mediaType") or "").partition("/")[0]
        width, height = item.get("width"), item.get("height")
        original: dict[str, Any] = {}
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            original = _size(width, height)
        meta: dict[str, Any] = {"original": original} if original else {}
        if local is not None:
            meta["small"] = _size(*thumbnail_size(local.width, local.height))
        focus = item.get("focalPoint")
        if isinstance(focus, list) and len(focus) == 2:
            meta["focus"] = {"x": focus[0], "y": focus[1]}
        preview = self.urls.media(local.thumbnail_path) if local else url
        return {
            "id": str(local.id) if local else f"{post.id}{index:02d}",
            "type": _MEDIA_KINDS.get(kind, "unknown"),
            "url": url,
            "preview_url": preview,
            "remote_url": None if post.local else url,
            "preview_remote_url": None,
            "text_url": None,
            "meta": meta,
            "description": item.get("summary") or item.get("name") or None,
            "blurhash": item.get("blurhash") or None,
        }

    def _mentions(self, post: Object, loaded: _Loaded) -> list[dict[str, Any]]:
        out = []
        for href in vocab.mention_hrefs(post.data):
            actor = loaded.actors.get(href)
            if actor is not None:
                out.append({"id": str(actor.id), "username": actor.username,
                            "url": actor.url or actor.uri, "acct": self._acct(actor)})  # fmt: skip
        return out

    def _tags(self, post: Object) -> list[dict[str, Any]]:
        out = []
        for tag in vocab.as_list(post.data.get("tag")):
            if isinstance(tag, dict) and tag.get("type") == "Hashtag":
                name = str(tag.get("name") or "").lstrip("#")
                if name:
                    out.append({"name": name.lower(), "url": self.urls.hashtag(name)})
        return out

    def _status(self, post: Object, loaded: _Loaded) -> dict[str, Any] | None:
        account = loaded.accounts.get(post.actor_uri or "")
        if account is None:
            return None
        if post.type == "Announce":
            target = loaded.objects.get(post.object_uri or "")
            inner = self._status(target, loaded) if target is not None else None
            if inner is None:
                return None
            return {**inner, "id": str(post.id), "uri": post.uri, "url": None,
                    "created_at": iso_time(post.published), "account": account, "reblog": inner,
                    "content": "", "media_attachments": [], "mentions": [], "tags": [],
                    "spoiler_text": "", "sensitive": False, "in_reply_to_id": None,
                    "in_reply_to_account_id": None, "edited_at": None, "application": None,
                    "visibility": visibility_name(post.visibility)}  # fmt: skip
        doc = post.data
        parent = loaded.objects.get(post.in_reply_to or "")
        parent_author = loaded.actors.get(parent.actor_uri or "") if parent else None
        tally = loaded.counts.get(post.uri, Counts())
        language = content_language(doc)
        updated = _time(doc.get("updated"))
        attachments = _attachments(doc)
        return {
            "id": str(post.id),
            "uri": post.uri,
            "url": _text_url(doc.get("url")) or post.uri,
            "created_at": iso_time(post.published),
            # our posts are ``updated`` by edits only (within the second they were made, too)
            "edited_at": iso_time(updated)
            if updated and (updated > post.published or post.local)
            else None,
            "account": account,
            "content": str(doc.get("content") or ""),
            "visibility": visibility_name(post.visibility),
            "sensitive": bool(doc.get("sensitive")) or bool(doc.get("summary")),
            "spoiler_text": plain_text(str(doc.get("summary") or "")),
            "media_attachments": [
                self._attachment(post, i, item, loaded.media) for i, item in enumerate(attachments)
            ],
            # Mastodon shows it to anyone (its ``show_application`` setting is on by default)
            "application": loaded.applications.get(post.id),
            "mentions": self._mentions(post, loaded),
            "tags": self._tags(post),
            "emojis": [],
            "reblogs_count": tally.shares,
            "favourites_count": tally.likes,
            "replies_count": tally.replies,
            "in_reply_to_id": str(parent.id) if parent else None,
            "in_reply_to_account_id": str(parent_author.id) if parent_author else None,
            "reblog": None,
            "poll": None,
            "card": None,
            "language": language,
            "text": None,
            "favourited": ("like", post.uri) in loaded.engaged,
            "reblogged": ("announce", post.uri) in loaded.engaged,
            # a muted conversation: we do not mute conversations (yet)
            "muted": False,
            "bookmarked": post.id in loaded.bookmarks,
            # Mastodon tells only the author whether a post is pinned
            "pinned": post.pinned_at is not None
            if self.viewer is not None and post.actor_uri == self.viewer.uri
            else False,
            "filtered": [],
        }

    async def statuses(self, rows: Sequence[Object]) -> list[dict[str, Any]]:
        """Status entities of posts and boosts, in order; a row whose author or boosted post
        we do not have is left out (an app cannot show a status without its account)."""
        loaded = await self._load(rows)
        out = []
        for row in rows:
            entity = self._status(row, loaded)
            if entity is not None:
                out.append(entity)
        return out

    async def status(self, row: Object) -> dict[str, Any] | None:
        found = await self.statuses([row])
        return found[0] if found else None

    async def status_edits(
        self, row: Object, versions: Sequence[tuple[dict[str, Any], datetime]]
    ) -> list[dict[str, Any]]:
        """StatusEdit entities of ``row``'s versions (document, when it was made), in order."""
        loaded = await self._load([row])
        account = loaded.accounts.get(row.actor_uri or "")
        if account is None:
            return []
        out = []
        for doc, made in versions:
            items = _attachments(doc)
            out.append({
                "content": str(doc.get("content") or ""),
                "spoiler_text": plain_text(str(doc.get("summary") or "")),
                "sensitive": bool(doc.get("sensitive")) or bool(doc.get("summary")),
                "created_at": iso_time(made),
                "account": account,
                "poll": None,
                "media_attachments": [self._attachment(row, i, item, loaded.media)
                                      for i, item in enumerate(items)],
                "emojis": [],
            })  # fmt: skip
        return out

    # -- notifications --------------------------------------------------------------
    async def notifications(self, shown: Sequence[Shown]) -> list[dict[str, Any]]:
        """Notification entities, in order; those whose post cannot be shown are left out."""
        posts = [item.post for item in shown if item.post is not None]
        statuses = {status["id"]: status for status in await self.statuses(posts)}
        actors = list({item.actor.id: item.actor for item in shown}.values())
        accounts = {a.id: e for a, e in zip(actors, await self.accounts(actors), strict=True)}
        out = []
        for item in shown:
            found = item.notification
            entity: dict[str, Any] = {"id": str(found.id), "type": found.type,
                                      "created_at": iso_time(found.created_at),
                                      "account": accounts[item.actor.id]}  # fmt: skip
            if item.post is not None:
                status = statuses.get(str(item.post.id))
                if status is None:
                    continue
                entity["status"] = status
            if found.type == GENERATION:
                entity["generation_id"] = found.key.rpartition(":")[2]
            entity["group_key"] = group_key(found)
            out.append(entity)
        return out


async def _applications(session: AsyncSession, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The Application of each of the local posts ``ids`` made through an app (one query)."""
    query = (
        select(PostApplication.object_id, OAuthClient.name, OAuthClient.website)
        .join(OAuthClient, OAuthClient.id == PostApplication.client_id)
        .where(PostApplication.object_id.in_(ids))
    )
    return {post_id: {"name": name, "website": website or None}
            for post_id, name, website in await session.execute(query)}  # fmt: skip


def _attachments(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        item
        for item in vocab.as_list(doc.get("attachment"))
        if isinstance(item, dict) and item.get("type") != "PropertyValue"
    ]


def _size(width: int, height: int) -> dict[str, Any]:
    return {"width": width, "height": height, "size": f"{width}x{height}",
            "aspect": width / height if height else 1.0}  # fmt: skip


def _text_url(value: Any) -> str | None:
    """A stored document's URL (cleaned when it was stored: a string, or a Link's href)."""
    if isinstance(value, dict):
        value = value.get("href")
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
