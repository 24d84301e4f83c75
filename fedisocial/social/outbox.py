"""Local actions: build the activity, store it, address it, queue its delivery.

Every action commits the objects it changes, the activity, the home-feed
entries and the fan-out job in one transaction, so an accepted post is never
lost and never delivered half-way. Recipients on this instance are served
directly (feeds, follows); remote ones get the activity through delivery.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap import render as as2
from fedisocial.ap.addressing import Visibility, address, visibility_of
from fedisocial.ap.client import FederationClient
from fedisocial.ap.render import iso
from fedisocial.ap.vocab import AS_PUBLIC, POST_TYPES, http_url, parse_handle
from fedisocial.errors import BadRequest, FedisocialError, Forbidden, NotFound
from fedisocial.federation.delivery import enqueue_fanout
from fedisocial.federation.remote import fetch_actor, fetch_object, resolve_handle
from fedisocial.jobs import JobQueue
from fedisocial.social import notifications
from fedisocial.social.access import is_public
from fedisocial.social.accounts import find_local_actor, render_actor
from fedisocial.social.collections import bare
from fedisocial.social.content import MentionTarget, Rendered, find_mentions, render
from fedisocial.social.timeline import add_to_feeds
from fedisocial.social.versions import record as record_version
from fedisocial.store.db import Database
from fedisocial.store.models import (
    Actor,
    Block,
    Engagement,
    Follow,
    Object,
    PostApplication,
    utcnow,
)
from fedisocial.store.rows import object_columns
from fedisocial.urls import Urls, new_id

__all__ = ["MAX_TEXT", "Outbox", "check_length", "iso"]

#: the longest post text we accept, in characters
MAX_TEXT = 5000


def _audience(doc: Mapping[str, Any]) -> list[str]:
    """``to`` and ``cc`` of a document we made (either may be absent: we leave out empty arrays)."""
    return [*doc.get("to", ()), *doc.get("cc", ())]


def check_length(text: str) -> None:
    """400 for a post's text over :data:`MAX_TEXT` characters (ours and C2S clients')."""
    if len(text) > MAX_TEXT:
        raise BadRequest(f"a post can have at most {MAX_TEXT:,} characters")


def _check_text(text: str, attachments: Sequence[Any]) -> None:
    if not text.strip() and not attachments:
        raise BadRequest("a post needs text or an attachment")
    check_length(text)


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

    async def mentions(self, text: str) -> dict[tuple[str, str | None], MentionTarget]:
        targets = {}
        for user, host in find_mentions(text):
            try:
                actor = await self.actor_of(f"{user}@{host}" if host else user)
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
        recipients: Sequence[str],
        ref: str | None = None,
    ) -> Object:
        """Store an activity we send and queue its delivery to ``recipients``."""
        row = Object(uri=activity["id"], local=True, data=activity,
                     **object_columns(activity, actor.followers_url))  # fmt: skip
        session.add(row)
        await session.flush()
        enqueue_fanout(session, activity["id"], actor.id, recipients, ref=ref)
        return row

    def _activity(
        self,
        actor: Actor,
        kind: as2.ActivityType,
        obj: str | Mapping[str, Any],
        *,
        to: Sequence[str] = (),
        cc: Sequence[str] = (),
    ) -> dict[str, Any]:
        uri = self.urls.activity(actor.username, new_id())
        return as2.activity(kind, uri, actor.uri, obj, published=utcnow(), to=to, cc=cc)

    def _note(
        self,
        actor: Actor,
        rendered: Rendered,
        visibility: Visibility,
        replied_to: str | None,
        *,
        uri: str,
        published: datetime,
        in_reply_to: str | None,
        summary: str | None,
        attachments: Sequence[Mapping[str, Any]],
        updated: datetime | None = None,
    ) -> dict[str, Any]:
        """The Note of a post or of its edit: mentions are tagged and addressed, both ways.

        ``replied_to`` is the author of the post replied to, always addressed
        (as on Mastodon, without a Mention tag).
        """
        mentioned = [m.uri for m in rendered.mentions]
        if replied_to is not None and replied_to != actor.uri:
            mentioned.append(replied_to)
        assert actor.followers_url is not None
        to, cc = address(visibility, actor.followers_url, mentioned)
        mentions = [as2.Mention(m.uri, m.acct) for m in rendered.mentions]
        post = as2.Note(
            id=uri, attributed_to=actor.uri, content=rendered.html, published=published,
            to=to, cc=cc, in_reply_to=in_reply_to, summary=summary, mentions=mentions,
            hashtags=rendered.hashtags, attachments=attachments, updated=updated,
        )  # fmt: skip
        return as2.note(post, self.urls)

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
        _check_text(text, attachments or ())
        parent = await self.parent_post(in_reply_to) if in_reply_to else None
        note = await self.compose(actor, text, visibility=visibility, parent=parent,
                                  summary=summary, attachments=attachments or ())  # fmt: skip
        row, _create = await self.publish(actor, note)
        return row

    async def compose(
        self,
        actor: Actor,
        text: str,
        *,
        visibility: Visibility = "public",
        parent: Object | None = None,
        summary: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
        sensitive: bool = False,
        language: str | None = None,
        keep_source: bool = False,
        uri: str | None = None,
        published: datetime | None = None,
        updated: datetime | None = None,
    ) -> dict[str, Any]:
        """The Note of a post of ``text`` (not stored: :meth:`publish` or :meth:`replace` it).

        ``sensitive`` marks the media sensitive without a content warning; ``language``
        writes ``contentMap``; ``keep_source`` keeps the text as ``source`` (``text/plain``),
        which the Mastodon API gives back for editing. ``uri``, ``published`` and
        ``updated`` are an edited post's (a new post gets a new id, now).
        """
        mentions = await self.mentions(text)
        rendered = render(text, mentions, self.urls.hashtag)
        note = self._note(
            actor, rendered, visibility, parent.actor_uri if parent else None,
            uri=uri or self.urls.note(actor.username, new_id()), published=published or utcnow(),
            in_reply_to=parent.uri if parent else None, summary=summary,
            attachments=attachments, updated=updated,
        )  # fmt: skip
        if sensitive:
            note["sensitive"] = True
        if language:
            note["contentMap"] = {language: note["content"]}
        if keep_source:
            note["source"] = {"content": text, "mediaType": "text/plain"}
        return note

    async def publish(
        self,
        actor: Actor,
        note: dict[str, Any],
        *,
        hidden: Sequence[str] = (),
        deliver: bool = True,
        within: Callable[[AsyncSession, Object], Awaitable[None]] | None = None,
        application_id: int | None = None,
    ) -> tuple[Object, Object]:
        """Store a Note already made (by :meth:`post`, or by a C2S client) and its Create.

        The Create copies the Note's addressing; ``hidden`` recipients (``bto``/``bcc``)
        are delivered to but never written down. ``deliver=False`` keeps it back until
        :meth:`release` (a post waiting for its generated image). ``within`` runs in the
        same transaction, after the rows are added. ``application_id``: the OAuth client
        it is posted through (Mastodon's ``application``). Returns (Note, Create).
        """
        create = self._activity(actor, "Create", note, to=note.get("to", ()),
                                cc=note.get("cc", ()))  # fmt: skip
        if note.get("audience"):
            create["audience"] = note["audience"]
        recipients = [*_audience(note), *note.get("audience", ()), *hidden] if deliver else []
        async with self.db.transaction() as session:
            row = Object(uri=note["id"], local=True, data=note,
                         **object_columns(note, actor.followers_url))  # fmt: skip
            session.add(row)
            await session.flush()
            if application_id is not None:
                session.add(PostApplication(object_id=row.id, client_id=application_id))
            activity = await self._store(session, actor, create, recipients=recipients,
                                         ref=note["id"])  # fmt: skip
            if deliver:
                await add_to_feeds(session, row)
                await self._notify_post(session, row)
            if within is not None:
                await within(session, row)
        return row, activity

    async def release(
        self,
        note_uri: str,
        revise: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        hidden: Sequence[str] = (),
    ) -> Object | None:
        """Deliver a post kept back by :meth:`publish`, changed by ``revise`` first.

        None when the post is gone meanwhile (deleted by its author).
        """
        async with self.db.transaction() as session:
            row = await session.scalar(select(Object).where(Object.uri == note_uri))
            create = await session.scalar(select(Object).where(
                Object.type == "Create", Object.object_uri == note_uri, Object.local.is_(True)
            ))  # fmt: skip
            actor = await session.scalar(select(Actor).where(Actor.uri == row.actor_uri)) \
                if row is not None else None  # fmt: skip
            if row is None or row.deleted_at is not None or create is None or actor is None:
                return None
            row.data = revise(row.data)
            create.data = {**create.data, "object": row.data}
            recipients = [*_audience(row.data), *row.data.get("audience", ()), *hidden]
            enqueue_fanout(session, create.uri, actor.id, recipients, ref=note_uri)
            await add_to_feeds(session, row)
            await self._notify_post(session, row)
        return row

    async def _notify_post(self, session: AsyncSession, row: Object) -> None:
        """Tell the local accounts a post mentions, and the author of the post it answers."""
        parent = None
        if row.in_reply_to is not None:
            query = select(Object.actor_uri).where(Object.uri == row.in_reply_to)
            parent = await session.scalar(query)
        await notifications.record(session, notifications.post_notices(row, parent))

    async def withdraw(self, note_uri: str) -> None:
        """Take back a post kept back by :meth:`publish` and never delivered: a Tombstone."""
        async with self.db.transaction() as session:
            row = await session.scalar(select(Object).where(Object.uri == note_uri))
            if row is None or row.deleted_at is not None:
                return
            now = utcnow()
            row.data = as2.tombstone(note_uri, former_type=row.type, deleted=now)
            row.deleted_at = now

    async def parent_post(self, uri: str) -> Object:
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
        """Change a post's text: the Note is made again, as a post of this text would be.

        Its audience gets an Update with ``updated`` set. As on Mastodon, people the
        post no longer mentions lose the tag and the addressing but still get the
        Update (Mastodon turns them into silent mentions and delivers to every mention).
        """
        mentions = await self.mentions(text)
        rendered = render(text, mentions, self.urls.hashtag)
        async with self.db.transaction() as session:
            row = await self._own(session, actor, uri)
            before = row.data
            _check_text(text, before.get("attachment", ()))
            visibility = visibility_of(before.get("to", ()), before.get("cc", ()),
                                       actor.followers_url)  # fmt: skip
            replied_to = None
            if row.in_reply_to is not None:
                query = select(Object.actor_uri).where(Object.uri == row.in_reply_to)
                replied_to = await session.scalar(query)
            note = self._note(
                actor, rendered, visibility, replied_to, uri=uri, published=row.published,
                in_reply_to=row.in_reply_to, summary=before.get("summary"),
                attachments=before.get("attachment", ()), updated=utcnow(),
            )  # fmt: skip
            await self._send_update(session, actor, row, note)
        return row

    async def replace(
        self,
        actor: Actor,
        uri: str,
        make: Callable[[Object], dict[str, Any]],
        *,
        within: Callable[[AsyncSession, Object], Awaitable[None]] | None = None,
    ) -> tuple[Object, Object]:
        """Update one of the actor's posts: ``make`` gives the new Note from the stored row.

        Delivered as :meth:`edit` delivers (the new audience and the old one). ``within``
        runs in the same transaction, after the update. Returns (Note, Update).
        """
        async with self.db.transaction() as session:
            row = await self._own(session, actor, uri)
            update = await self._send_update(session, actor, row, make(row))
            if within is not None:
                await within(session, row)
        return row, update

    async def _send_update(
        self, session: AsyncSession, actor: Actor, row: Object, note: dict[str, Any]
    ) -> Object:
        before = row.data
        record_version(session, row)
        row.data = note
        update = self._activity(actor, "Update", note, to=note.get("to", ()),
                                cc=note.get("cc", ()))  # fmt: skip
        recipients = [*_audience(note), *_audience(before)]
        stored = await self._store(session, actor, update, recipients=recipients, ref=row.uri)
        await add_to_feeds(session, row)
        told = await notifications.edit_notices(session, row, stored.uri)
        await notifications.record(session, told)
        return stored

    async def delete(self, actor: Actor, uri: str) -> Object:
        """Delete a post: a Tombstone stays, pending deliveries of it are cancelled."""
        async with self.db.transaction() as session:
            row = await self._own(session, actor, uri)
            audience = _audience(row.data)
            now = utcnow()
            row.data = as2.tombstone(uri, former_type=row.type, deleted=now)
            row.deleted_at = now
            await notifications.forget_post(session, row.id)
            await JobQueue.cancel(session, uri)
            # followers always hear of a delete, whoever the post was addressed to
            recipients = [r for r in [actor.followers_url, *audience] if r]
            activity = self._activity(actor, "Delete", as2.tombstone(uri), to=[AS_PUBLIC],
                                      cc=recipients)  # fmt: skip
            return await self._store(session, actor, activity, recipients=recipients)

    async def pin(self, actor: Actor, uri: str, *, pinned: bool = True) -> Object:
        """Show a post in the profile's featured collection (or take it out)."""
        async with self.db.transaction() as session:
            row = await self._own(session, actor, uri)
            row.pinned_at = utcnow() if pinned else None
        return row

    async def feature(self, actor: Actor, uri: str, *, pinned: bool = True) -> Object:
        """:meth:`pin`, told to the followers as Mastodon does: ``Add`` (or ``Remove``) of the
        post to the ``featured`` collection. Returns the activity."""
        assert actor.featured_url is not None and actor.followers_url is not None
        kind: as2.ActivityType = "Add" if pinned else "Remove"
        activity = self._activity(actor, kind, uri, to=[AS_PUBLIC], cc=[actor.followers_url])
        activity["target"] = actor.featured_url
        async with self.db.transaction() as session:
            row = await self._own(session, actor, uri)
            if (row.pinned_at is not None) == pinned:
                raise BadRequest(f"{uri} is {'already' if pinned else 'not'} pinned")
            row.pinned_at = utcnow() if pinned else None
            return await self._store(session, actor, activity, recipients=[actor.followers_url])

    # -- likes and boosts -----------------------------------------------------------
    async def _engage(
        self, actor: Actor, kind: str, uri: str, visibility: Visibility = "public"
    ) -> Object:
        target = await self._object(uri)
        if target.type not in POST_TYPES:
            raise BadRequest(f"{uri} is a {target.type}, not a post")
        author = target.actor_uri
        if kind == "like":
            activity = self._activity(actor, "Like", target.uri, to=[author] if author else [])
            recipients = [author] if author else []
        else:
            if not is_public(target):
                raise Forbidden("only public and unlisted posts can be boosted")
            assert actor.followers_url is not None
            to, cc = address(visibility, actor.followers_url, [author] if author else [])
            activity = self._activity(actor, "Announce", target.uri, to=to, cc=cc)
            recipients = [r for r in (*to, *cc) if r != AS_PUBLIC]
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
            if author is not None:
                told = "favourite" if kind == "like" else "reblog"
                await notifications.record(
                    session, [notifications.Notice(author, told, actor.uri, row.uri, target)]
                )
        return row

    async def like(self, actor: Actor, uri: str) -> Object:
        return await self._engage(actor, "like", uri)

    async def boost(self, actor: Actor, uri: str, visibility: Visibility = "public") -> Object:
        """Announce ``uri`` to the actor's followers (and its author); ``visibility`` as a
        post's (Mastodon's reblog ``visibility``: public, unlisted or followers)."""
        return await self._engage(actor, "announce", uri, visibility)

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
                recipients = _audience(original.data)
                original.deleted_at = utcnow()
            await session.delete(engagement)
            await notifications.withdraw(session, actor=actor.uri, key=engagement.activity_uri)
            undo = self._activity(actor, "Undo", embedded, to=recipients)
            return await self._store(session, actor, undo, recipients=recipients)

    async def unlike(self, actor: Actor, uri: str) -> Object:
        return await self._disengage(actor, "like", uri)

    async def unboost(self, actor: Actor, uri: str) -> Object:
        return await self._disengage(actor, "announce", uri)

    # -- follows ----------------------------------------------------------------------
    async def follow(self, actor: Actor, target: str) -> Object:
        """Ask to follow ``target``; local targets answer at once (unless they approve).

        A local Service account (the assistant) follows nobody: it is mentioned, not fed."""
        if actor.type == "Service":
            raise Forbidden(f"@{actor.username} is a service account: it never follows anyone")
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
            told = notifications.follow_type(followee, follow.state == "accepted")
            await notifications.record(
                session, [notifications.Notice(followee.uri, told, actor.uri, activity["id"])]
            )
            return await self._store(session, actor, activity, recipients=[followee.uri])

    async def unfollow(self, actor: Actor, target: str) -> Object:
        followee = await self.actor_of(target)
        query = select(Follow).where(
            Follow.follower_uri == actor.uri, Follow.followee_uri == followee.uri
        )
        return await self._undo(actor, "Follow", query, followee, f"not following {followee.uri}")

    async def _undo(
        self, actor: Actor, kind: as2.ActivityType, query: Any, target: Actor, missing: str
    ) -> Object:
        """Take back the follow or block ``query`` finds: ``target`` is sent an Undo of it."""
        async with self.db.transaction() as session:
            row = await session.scalar(query)
            if row is None:
                raise NotFound(missing)
            embedded = as2.embedded(kind, row.activity_uri, actor.uri, target.uri)
            await session.delete(row)
            if kind == "Follow":
                await notifications.withdraw(session, actor=actor.uri, owner=target.uri,
                                             types=notifications.FOLLOWS)  # fmt: skip
            undo = self._activity(actor, "Undo", embedded, to=[target.uri])
            return await self._store(session, actor, undo, recipients=[target.uri])

    async def answer_follow(self, actor: Actor, follow_uri: str, *, accept: bool) -> Object:
        """Accept or reject a follow request addressed to ``actor``."""
        async with self.db.transaction() as session:
            return await self.answer_follow_in(session, actor, follow_uri, accept=accept)

    async def answer_follow_in(
        self, session: AsyncSession, actor: Actor, follow_uri: str, *, accept: bool
    ) -> Object:
        """:meth:`answer_follow` inside the caller's transaction (the inbox's batch)."""
        follow = await session.scalar(select(Follow).where(
            Follow.activity_uri == follow_uri, Follow.followee_uri == actor.uri
        ))  # fmt: skip
        if follow is None:
            raise NotFound(f"no follow request {follow_uri} for {actor.uri}")
        embedded = as2.embedded("Follow", follow.activity_uri, follow.follower_uri, actor.uri)
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

    async def update_profile(self, actor: Actor) -> Object:
        """Tell followers that the actor document changed (an Update of it, as Mastodon sends)."""
        assert actor.followers_url is not None
        doc = bare(render_actor(actor))
        update = self._activity(actor, "Update", doc, to=[AS_PUBLIC], cc=[actor.followers_url])
        async with self.db.transaction() as session:
            return await self._store(session, actor, update, recipients=[actor.followers_url])

    async def unblock(self, actor: Actor, target: str) -> Object:
        """Take a block back: ``target`` is sent an Undo of the Block."""
        blocked = await self.actor_of(target)
        query = select(Block).where(
            Block.blocker_uri == actor.uri, Block.blocked_uri == blocked.uri
        )
        return await self._undo(actor, "Block", query, blocked, f"not blocking {blocked.uri}")
