"""Local actions: build the activity, store it, address it, queue its delivery.

Every action commits the objects it changes, the activity, the home-feed
entries and the fan-out job in one transaction, so an accepted post is never
lost and never delivered half-way. Recipients on this instance are served
directly (feeds, follows); remote ones get the activity through delivery.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap.addressing import Visibility, address
from fedisocial.ap.client import FederationClient
from fedisocial.ap.jsonld import OBJECT_CONTEXT
from fedisocial.ap.vocab import AS_PUBLIC, POST_TYPES, parse_handle
from fedisocial.errors import BadRequest, FedisocialError, Forbidden, NotFound
from fedisocial.federation.delivery import enqueue_fanout
from fedisocial.federation.remote import fetch_actor, fetch_object, resolve_handle
from fedisocial.jobs import JobQueue
from fedisocial.social.accounts import find_local_actor
from fedisocial.social.content import MentionTarget, find_mentions, http_url, render
from fedisocial.social.timeline import add_to_feeds
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Block, Engagement, Follow, Object, utcnow
from fedisocial.store.rows import object_columns
from fedisocial.urls import Urls, new_id

__all__ = ["Outbox", "iso"]


def iso(moment: datetime) -> str:
    """``2026-11-26T07:39:30Z``: the timestamp shape every server parses."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Outbox:
    """The actions a local actor can take; each returns the stored activity or object."""

    db: Database
    client: FederationClient
    urls: Urls
    actor_max_age: timedelta

    # -- lookups ------------------------------------------------------------------
    async def actor_of(self, target: str) -> Actor:
        """An actor by handle (``@bob@host``, ``bob@host``, local ``bob``) or id.

        Our own accounts come from the store only: asking our own server over
        the network for a name nobody has here only fails in a confusing way.
        """
        if target.startswith(("https://", "http://")):
            if self.urls.is_local(target):
                return await self._local_actor(target)
            return await fetch_actor(self.db, self.client, target, max_age=self.actor_max_age)
        name, _, host = target.strip().lstrip("@").partition("@")
        if not host or host.lower() == self.urls.netloc:
            return await find_local_actor(self.db, self.urls, name)
        name, host = parse_handle(target)
        return await resolve_handle(self.db, self.client, name, host, max_age=self.actor_max_age)

    async def _local_actor(self, uri: str) -> Actor:
        name = self.urls.local_username(uri)
        if name is not None:
            return await find_local_actor(self.db, self.urls, name)
        async with self.db.session() as session:
            actor = await session.scalar(select(Actor).where(Actor.uri == uri))
        if actor is None:
            raise NotFound(f"no account {uri} on this instance")
        return actor

    async def _object(self, uri: str) -> Object:
        """A post by id: ours from the store (NotFound if missing), others' fetched."""
        if not self.urls.is_local(uri):
            return await fetch_object(self.db, self.client, uri)
        async with self.db.session() as session:
            row = await session.scalar(select(Object).where(Object.uri == uri))
        if row is None or row.deleted_at is not None:
            raise NotFound(f"no post {uri}")
        return row

    async def _mentions(self, text: str) -> dict[tuple[str, str | None], MentionTarget]:
        targets = {}
        for user, host in find_mentions(text):
            try:
                actor = await resolve_handle(self.db, self.client, user, host or self.urls.netloc,
                                             max_age=self.actor_max_age)  # fmt: skip
            except FedisocialError:
                continue  # like Mastodon: an unknown handle stays plain text
            acct = f"{actor.username}@{actor.domain}"
            targets[(user, host)] = MentionTarget(actor.uri, http_url(actor.url) or actor.uri, acct)
        return targets

    # -- storing --------------------------------------------------------------------
    async def _store(
        self,
        session: AsyncSession,
        actor: Actor,
        activity: dict[str, Any],
        *,
        recipients: list[str],
        ref: str | None = None,
    ) -> Object:
        """Store an activity we send and queue its delivery to ``recipients``."""
        row = Object(uri=activity["id"], local=True, data=activity,
                     **object_columns(activity, actor.followers_url))  # fmt: skip
        session.add(row)
        await session.flush()
        enqueue_fanout(session, activity["id"], actor.id, recipients, ref=ref)
        return row

    def _activity(self, actor: Actor, kind: str, obj: Any, **fields: Any) -> dict[str, Any]:
        return {
            "@context": OBJECT_CONTEXT,
            "id": self.urls.activity(actor.username, new_id()),
            "type": kind,
            "actor": actor.uri,
            "object": obj,
            "published": iso(utcnow()),
            **fields,
        }

    # -- posts ----------------------------------------------------------------------
    async def post(
        self,
        actor: Actor,
        text: str,
        *,
        visibility: Visibility = "public",
        in_reply_to: str | None = None,
        summary: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Object:
        """Publish a Note; returns the stored Note."""
        if not text.strip() and not attachments:
            raise BadRequest("a post needs text or an attachment")
        if len(text) > 5000:
            raise BadRequest("a post can have at most 5,000 characters")
        parent = await self._parent(in_reply_to) if in_reply_to else None
        mentions = await self._mentions(text)
        rendered = render(text, mentions, self.urls.hashtag)
        mentioned = [m.uri for m in rendered.mentions]
        if parent is not None and parent.actor_uri and parent.actor_uri != actor.uri:
            mentioned.append(parent.actor_uri)  # the author replied to is always addressed
        assert actor.followers_url is not None
        to, cc = address(visibility, actor.followers_url, mentioned)
        now = utcnow()
        uri = self.urls.note(actor.username, new_id())
        tags = [{"type": "Mention", "href": m.uri, "name": f"@{m.acct}"} for m in rendered.mentions]
        tags += [{"type": "Hashtag", "href": self.urls.hashtag(t), "name": f"#{t}"}
                 for t in rendered.hashtags]  # fmt: skip
        note: dict[str, Any] = {
            "@context": OBJECT_CONTEXT,
            "id": uri,
            "type": "Note",
            "attributedTo": actor.uri,
            "content": rendered.html,
            "published": iso(now),
            "url": uri,
            "to": to,
            "cc": cc,
            "inReplyTo": parent.uri if parent else None,
            "summary": summary or None,
            "sensitive": bool(summary),
            "tag": tags,
            "attachment": attachments or [],
            "replies": self.urls.replies(uri),
            "likes": self.urls.likes(uri),
            "shares": self.urls.shares(uri),
        }
        create = self._activity(actor, "Create", note, to=to, cc=cc)
        async with self.db.transaction() as session:
            row = Object(uri=uri, local=True, data=note,
                         **object_columns(note, actor.followers_url))  # fmt: skip
            session.add(row)
            await session.flush()
            await self._store(session, actor, create, recipients=to + cc, ref=uri)
            await add_to_feeds(session, row)
        return row

    async def _parent(self, uri: str) -> Object:
        try:
            return await self._object(uri)
        except NotFound as exc:
            raise NotFound(f"no post {uri} to reply to") from exc

    async def _own(self, session: AsyncSession, actor: Actor, uri: str) -> Object:
        row = await session.scalar(select(Object).where(Object.uri == uri))
        if row is None or row.deleted_at is not None:
            raise NotFound(f"no post {uri}")
        if row.actor_uri != actor.uri or not row.local:
            raise Forbidden(f"{uri} is not a post of {actor.uri}")
        return row

    async def edit(self, actor: Actor, uri: str, text: str) -> Object:
        """Change a post's text; followers get an Update with ``updated`` set."""
        mentions = await self._mentions(text)
        rendered = render(text, mentions, self.urls.hashtag)
        async with self.db.transaction() as session:
            row = await self._own(session, actor, uri)
            note = dict(row.data)
            note["content"] = rendered.html
            note["updated"] = iso(utcnow())
            note["tag"] = [t for t in note.get("tag", []) if t.get("type") != "Hashtag"] + [
                {"type": "Hashtag", "href": self.urls.hashtag(t), "name": f"#{t}"}
                for t in rendered.hashtags
            ]
            row.data = note
            update = self._activity(actor, "Update", note, to=note["to"], cc=note["cc"])
            await self._store(session, actor, update, recipients=note["to"] + note["cc"], ref=uri)
        return row

    async def delete(self, actor: Actor, uri: str) -> Object:
        """Delete a post: a Tombstone stays, pending deliveries of it are cancelled."""
        async with self.db.transaction() as session:
            row = await self._own(session, actor, uri)
            audience = row.data.get("to", []) + row.data.get("cc", [])
            now = utcnow()
            row.data = {"id": uri, "type": "Tombstone", "formerType": row.type,
                        "deleted": iso(now)}  # fmt: skip
            row.deleted_at = now
            await JobQueue.cancel(session, uri)
            tombstone = {"id": uri, "type": "Tombstone"}
            activity = self._activity(actor, "Delete", tombstone, to=[AS_PUBLIC],
                                      cc=[actor.followers_url, *audience])  # fmt: skip
            # followers always hear of a delete, whoever the post was addressed to
            recipients = [r for r in [actor.followers_url, *audience] if r]
            return await self._store(session, actor, activity, recipients=recipients)

    async def pin(self, actor: Actor, uri: str, *, pinned: bool = True) -> Object:
        """Show a post in the profile's featured collection (or take it out)."""
        async with self.db.transaction() as session:
            row = await self._own(session, actor, uri)
            row.pinned_at = utcnow() if pinned else None
        return row

    # -- likes and boosts -----------------------------------------------------------
    async def _engage(self, actor: Actor, kind: str, uri: str) -> Object:
        target = await self._object(uri)
        if target.type not in POST_TYPES:
            raise BadRequest(f"{uri} is a {target.type}, not a post")
        author = target.actor_uri
        if kind == "like":
            activity = self._activity(actor, "Like", target.uri, to=[author] if author else [])
            recipients = [author] if author else []
        else:
            if target.visibility not in ("public", "unlisted"):
                raise Forbidden("only public and unlisted posts can be boosted")
            cc = [c for c in (author, actor.followers_url) if c]
            activity = self._activity(actor, "Announce", target.uri, to=[AS_PUBLIC], cc=cc)
            recipients = cc
        async with self.db.transaction() as session:
            taken = await session.scalar(select(Engagement).where(
                Engagement.kind == kind, Engagement.actor_uri == actor.uri,
                Engagement.object_uri == target.uri,
            ))  # fmt: skip
            if taken is not None:
                raise BadRequest(f"already {'liked' if kind == 'like' else 'boosted'}: {uri}")
            session.add(Engagement(kind=kind, actor_uri=actor.uri, object_uri=target.uri,
                                   activity_uri=activity["id"]))  # fmt: skip
            row = await self._store(session, actor, activity, recipients=recipients)
            if kind == "announce":
                await add_to_feeds(session, row, target)
        return row

    async def like(self, actor: Actor, uri: str) -> Object:
        return await self._engage(actor, "like", uri)

    async def boost(self, actor: Actor, uri: str) -> Object:
        return await self._engage(actor, "announce", uri)

    async def _disengage(self, actor: Actor, kind: str, uri: str) -> Object:
        async with self.db.transaction() as session:
            engagement = await session.scalar(select(Engagement).where(
                Engagement.kind == kind, Engagement.actor_uri == actor.uri,
                Engagement.object_uri == uri,
            ))  # fmt: skip
            if engagement is None:
                raise NotFound(f"not {'liked' if kind == 'like' else 'boosted'}: {uri}")
            original = await session.scalar(
                select(Object).where(Object.uri == engagement.activity_uri)
            )
            embedded = original.data if original else engagement.activity_uri
            recipients = []
            if original is not None:
                recipients = original.data.get("to", []) + original.data.get("cc", [])
                original.deleted_at = utcnow()
            await session.delete(engagement)
            undo = self._activity(actor, "Undo", embedded, to=recipients)
            return await self._store(session, actor, undo, recipients=recipients)

    async def unlike(self, actor: Actor, uri: str) -> Object:
        return await self._disengage(actor, "like", uri)

    async def unboost(self, actor: Actor, uri: str) -> Object:
        return await self._disengage(actor, "announce", uri)

    # -- follows ----------------------------------------------------------------------
    async def follow(self, actor: Actor, target: str) -> Object:
        """Ask to follow ``target``; local targets answer at once (unless they approve)."""
        followee = await self.actor_of(target)
        if followee.uri == actor.uri:
            raise BadRequest("you cannot follow yourself")
        activity = self._activity(actor, "Follow", followee.uri, to=[followee.uri])
        async with self.db.transaction() as session:
            existing = await session.scalar(select(Follow).where(
                Follow.follower_uri == actor.uri, Follow.followee_uri == followee.uri
            ))  # fmt: skip
            if existing is not None:
                raise BadRequest(f"already following {followee.uri} ({existing.state})")
            follow = Follow(follower_uri=actor.uri, followee_uri=followee.uri,
                            activity_uri=activity["id"])  # fmt: skip
            session.add(follow)
            if followee.local and not followee.manually_approves_followers:
                follow.state, follow.accepted_at = "accepted", utcnow()
            return await self._store(session, actor, activity, recipients=[followee.uri])

    async def unfollow(self, actor: Actor, target: str) -> Object:
        followee = await self.actor_of(target)
        async with self.db.transaction() as session:
            follow = await session.scalar(select(Follow).where(
                Follow.follower_uri == actor.uri, Follow.followee_uri == followee.uri
            ))  # fmt: skip
            if follow is None:
                raise NotFound(f"not following {followee.uri}")
            embedded = {"id": follow.activity_uri, "type": "Follow", "actor": actor.uri,
                        "object": followee.uri}  # fmt: skip
            await session.delete(follow)
            undo = self._activity(actor, "Undo", embedded, to=[followee.uri])
            return await self._store(session, actor, undo, recipients=[followee.uri])

    async def answer_follow(self, actor: Actor, follow_uri: str, *, accept: bool) -> Object:
        """Accept or reject a follow request addressed to ``actor``."""
        async with self.db.transaction() as session:
            follow = await session.scalar(select(Follow).where(
                Follow.activity_uri == follow_uri, Follow.followee_uri == actor.uri
            ))  # fmt: skip
            if follow is None:
                raise NotFound(f"no follow request {follow_uri} for {actor.uri}")
            embedded = {"id": follow.activity_uri, "type": "Follow",
                        "actor": follow.follower_uri, "object": actor.uri}  # fmt: skip
            if accept:
                follow.state, follow.accepted_at = "accepted", utcnow()
            else:
                await session.delete(follow)
            answer = self._activity(actor, "Accept" if accept else "Reject", embedded,
                                    to=[follow.follower_uri])  # fmt: skip
            return await self._store(session, actor, answer, recipients=[follow.follower_uri])

    async def accept_follow(self, actor: Actor, follow_uri: str) -> Object:
        return await self.answer_follow(actor, follow_uri, accept=True)

    async def reject_follow(self, actor: Actor, follow_uri: str) -> Object:
        return await self.answer_follow(actor, follow_uri, accept=False)

    async def block(self, actor: Actor, target: str) -> Object:
        """Block ``target``: follows both ways end, and they are told (as Mastodon does)."""
        blocked = await self.actor_of(target)
        if blocked.uri == actor.uri:
            raise BadRequest("you cannot block yourself")
        activity = self._activity(actor, "Block", blocked.uri, to=[blocked.uri])
        async with self.db.transaction() as session:
            await session.execute(delete(Follow).where(
                ((Follow.follower_uri == actor.uri) & (Follow.followee_uri == blocked.uri))
                | ((Follow.follower_uri == blocked.uri) & (Follow.followee_uri == actor.uri))
            ))  # fmt: skip
            session.add(Block(blocker_uri=actor.uri, blocked_uri=blocked.uri,
                              activity_uri=activity["id"]))  # fmt: skip
            return await self._store(session, actor, activity, recipients=[blocked.uri])

    async def unblock(self, actor: Actor, target: str) -> Object:
        """Take a block back: ``target`` is sent an Undo of the Block."""
        blocked = await self.actor_of(target)
        async with self.db.transaction() as session:
            block = await session.scalar(select(Block).where(
                Block.blocker_uri == actor.uri, Block.blocked_uri == blocked.uri
            ))  # fmt: skip
            if block is None:
                raise NotFound(f"not blocking {blocked.uri}")
            embedded = {"id": block.activity_uri, "type": "Block", "actor": actor.uri,
                        "object": blocked.uri}  # fmt: skip
            await session.delete(block)
            undo = self._activity(actor, "Undo", embedded, to=[blocked.uri])
            return await self._store(session, actor, undo, recipients=[blocked.uri])
