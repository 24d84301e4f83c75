"""The client-to-server outbox (ActivityPub §6): what a client POSTs, done by :class:`Outbox`.

A client sends an activity, or a bare ``Note``/``Article`` that is wrapped in a
``Create`` (§6.2.1). Each activity type is one small function of the
:data:`HANDLERS` table; each calls the :class:`Outbox` action our own pages
use, so the same rows, feeds, queue and delivery rules apply, and the server
mints every id (a client's ``id`` is ignored, §6). Whatever is wrong with the
input is a :class:`BadRequest` saying what, raised before anything is stored.

Media are the studio's business (``social`` sits below ``studio``): an
:class:`Attacher` given by the caller turns the ``attachment`` of a post into
stored media, and can hold the post back until a generated image is made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap.vocab import ADDRESSING, get_id, normalize
from fedisocial.errors import BadRequest, Forbidden, NotFound
from fedisocial.social.c2s_notes import (
    POSTABLE,
    client_addressing,
    edit_context,
    make_note,
    merge_partial,
    new_context,
)
from fedisocial.social.outbox import Outbox
from fedisocial.social.profile import ProfileChange, change_profile
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Follow, Object
from fedisocial.urls import new_id

__all__ = ["HANDLERS", "Attached", "Attacher", "ClientOutbox"]


@dataclass
class Attached:
    """The media of a post, ready: its ``attachment`` documents and what to do on storing."""

    attachments: list[dict[str, Any]] = field(default_factory=list)
    #: a generated image is still to come: the post is delivered when it is done
    pending: bool = False
    #: a last touch to the Note (the AI label of generated media)
    finish: Callable[[dict[str, Any]], dict[str, Any]] = lambda note: note
    #: runs in the post's transaction: (session, the stored Note, its hidden recipients)
    link: Callable[[AsyncSession, Object, list[str]], Awaitable[None]] | None = None


class Attacher(Protocol):
    """Turns a posted ``attachment`` value into stored media (the studio implements it)."""

    async def prepare(self, actor: Actor, items: Any) -> Attached: ...


Handler = Callable[["ClientOutbox", Actor, dict[str, Any]], Awaitable[Object]]


@dataclass
class ClientOutbox:
    """What a local actor's C2S client may do through its outbox."""

    outbox: Outbox
    db: Database
    media: Attacher
    #: the OAuth client the requests come through: posts record it (Mastodon's ``application``)
    application_id: int | None = None

    async def submit(self, actor: Actor, doc: dict[str, Any]) -> Object:
        """Do what ``doc`` asks; returns the stored activity (with its minted id)."""
        doc = wrap(doc)
        claimed = get_id(doc.get("actor"))
        if claimed is not None and claimed != actor.uri:
            raise Forbidden(f"this outbox posts as {actor.uri}, not as {claimed}")
        return await HANDLERS[doc["type"]](self, actor, doc)

    async def scope(self, actor: Actor, doc: dict[str, Any]) -> str:
        """The OAuth scope the activity needs (Mastodon's granular names; ``write`` covers all)."""
        doc = wrap(doc)
        kind = doc["type"]
        if kind == "Update" and get_id(doc.get("object")) == actor.uri:
            return "write:accounts"
        if kind == "Undo":
            undone, _ = await self.undone(actor, doc)
            return _SCOPES.get(undone, "write:statuses")
        return _SCOPES.get(kind, "write:statuses")

    async def undone(self, actor: Actor, doc: Mapping[str, Any]) -> tuple[str, str]:
        """(type, object id) of the activity an Undo takes back: one of ours, by id or embedded."""
        obj = doc.get("object")
        uri = get_id(obj)
        embedded = isinstance(obj, dict) and isinstance(obj.get("type"), str)
        if uri is None and not embedded:
            raise BadRequest("an Undo needs the object it undoes (an activity id)")
        row = None
        if uri is not None:
            async with self.db.session() as session:
                row = await session.scalar(select(Object).where(Object.uri == uri))
        if row is not None:
            if row.actor_uri != actor.uri or not row.local:
                raise Forbidden(f"{uri} is not an activity of {actor.uri}")
            if row.object_uri is None:
                raise BadRequest(f"{uri} is a {row.type}, which cannot be undone")
            return row.type, row.object_uri
        if isinstance(obj, dict) and embedded and get_id(obj.get("object")):
            return obj["type"], str(get_id(obj.get("object")))
        raise NotFound(f"no activity {uri} of {actor.uri} to undo")


def wrap(doc: dict[str, Any]) -> dict[str, Any]:
    """The activity a client means: a bare post becomes a Create with its addressing (§6.2.1).

    BadRequest for a type we do not take.
    """
    kind = doc.get("type")
    if not isinstance(kind, str):
        raise BadRequest("the body needs a type: an activity, or a Note or Article to post")
    if kind in POSTABLE:
        addressing: dict[str, Any] = {k: doc[k] for k in ADDRESSING if k in doc}
        return {"type": "Create", "object": doc, **addressing}
    if kind not in HANDLERS:
        taken = ", ".join(sorted(HANDLERS))
        raise BadRequest(f"cannot take a {kind} here: post a Note or an Article, or one of "
                         f"these activities: {taken}")  # fmt: skip
    return doc


def _object_id(doc: Mapping[str, Any], what: str = "object") -> str:
    found = get_id(doc.get("object"))
    if found is None:
        raise BadRequest(f"a {doc['type']} needs an object: the id of the {what}")
    return found


# -- Create and Update -----------------------------------------------------------------------


async def _create(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    obj = doc.get("object")
    if not isinstance(obj, dict):
        raise BadRequest("a Create needs its object embedded: a Note or an Article")
    kind = obj.get("type", "Note")
    if kind not in POSTABLE:
        raise BadRequest(f"cannot create a {kind}: this server takes Note and Article")
    outbox = c2s.outbox
    reply_to = get_id(obj.get("inReplyTo"))
    parent = await outbox.parent_post(reply_to) if reply_to else None
    attached = await c2s.media.prepare(actor, obj.get("attachment"))
    uri = outbox.urls.note(actor.username, new_id())
    draft = await make_note(outbox, actor, {**obj, "type": kind}, client_addressing(doc, obj),
                            attached.attachments, new_context(uri, parent))  # fmt: skip
    note = attached.finish(draft.note)

    async def within(session: AsyncSession, row: Object) -> None:
        if attached.link is not None:
            await attached.link(session, row, draft.hidden)

    _, create = await outbox.publish(actor, note, hidden=draft.hidden,
                                     deliver=not attached.pending, within=within,
                                     application_id=c2s.application_id)  # fmt: skip
    return create


async def _update(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    obj = doc.get("object")
    if not isinstance(obj, dict) or get_id(obj) is None:
        raise BadRequest("an Update needs its object embedded, with the id of what changes")
    uri = str(get_id(obj))
    if uri == actor.uri:
        return await _update_actor(c2s, actor, obj)
    async with c2s.db.session() as session:
        row = await session.scalar(select(Object).where(Object.uri == uri))
        replied_to = None
        if row is not None and row.in_reply_to:
            query = select(Object.actor_uri).where(Object.uri == row.in_reply_to)
            replied_to = await session.scalar(query)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no post {uri}")
    if row.actor_uri != actor.uri or not row.local:
        raise Forbidden(f"{uri} is not a post of {actor.uri}")
    if row.type not in POSTABLE:
        raise BadRequest(f"{uri} is a {row.type}: only posts can be updated")
    merged = merge_partial(row.data, normalize_partial(obj))
    addressing = {"to": row.data.get("to", []), "cc": row.data.get("cc", []), "bto": [],
                  "bcc": [], "audience": row.data.get("audience", [])}  # fmt: skip
    draft = await make_note(c2s.outbox, actor, merged, addressing, row.data.get("attachment", []),
                            edit_context(row, replied_to))  # fmt: skip
    _, update = await c2s.outbox.replace(actor, uri, lambda _row: draft.note)
    return update


def normalize_partial(obj: dict[str, Any]) -> dict[str, Any]:
    """The sent properties only: ``normalize`` adds empty addressing, which a partial
    update must not read as "remove everyone"."""
    normal = normalize(obj)
    return {k: normal[k] for k in obj if k in normal}


def _flag(obj: Mapping[str, Any], name: str) -> bool | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


async def _update_actor(c2s: ClientOutbox, actor: Actor, obj: Mapping[str, Any]) -> Object:
    """A partial update of the profile: name, summary and the three switches (§6.3)."""
    name, summary = obj.get("name"), obj.get("summary")
    for key, value in (("name", name), ("summary", summary)):
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{key} must be a string")
    change = ProfileChange(
        name=name, summary=summary, locked=_flag(obj, "manuallyApprovesFollowers"),
        discoverable=_flag(obj, "discoverable"), indexable=_flag(obj, "indexable"),
    )  # fmt: skip
    _row, update = await change_profile(c2s.outbox, actor, change)
    return update


# -- the other activities --------------------------------------------------------------------


async def _delete(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    uri = _object_id(doc, "post to delete")
    if uri == actor.uri:
        raise BadRequest("an account cannot be deleted through its outbox")
    return await c2s.outbox.delete(actor, uri)


async def _follow(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    return await c2s.outbox.follow(actor, _object_id(doc, "actor to follow"))


async def _follow_request(c2s: ClientOutbox, actor: Actor, doc: Mapping[str, Any]) -> str:
    """The id of the Follow an Accept or Reject answers: by id, or embedded with its actor."""
    obj = doc.get("object")
    uri = get_id(obj)
    if uri is None:
        raise BadRequest(f"a {doc['type']} needs an object: the Follow it answers")
    async with c2s.db.session() as session:
        found = await session.scalar(select(Follow.activity_uri).where(
            Follow.activity_uri == uri, Follow.followee_uri == actor.uri
        ))  # fmt: skip
        follower = get_id(obj.get("actor")) if isinstance(obj, dict) else None
        if found is None and follower is not None:
            found = await session.scalar(select(Follow.activity_uri).where(
                Follow.follower_uri == follower, Follow.followee_uri == actor.uri
            ))  # fmt: skip
    if found is None:
        raise NotFound(f"no follow request {uri} for {actor.uri}")
    return found


async def _accept(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    follow = await _follow_request(c2s, actor, doc)
    return await c2s.outbox.answer_follow(actor, follow, accept=True)


async def _reject(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    follow = await _follow_request(c2s, actor, doc)
    return await c2s.outbox.answer_follow(actor, follow, accept=False)


def _featured_target(actor: Actor, doc: Mapping[str, Any]) -> None:
    target = get_id(doc.get("target"))
    if target is None:
        raise BadRequest(f"a {doc['type']} needs a target: {actor.featured_url}")
    if target != actor.featured_url:
        raise BadRequest(f"only posts can be added to or removed from {actor.featured_url} "
                         f"(the featured collection), not {target}")  # fmt: skip


async def _add(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    _featured_target(actor, doc)
    return await c2s.outbox.feature(actor, _object_id(doc, "post to pin"), pinned=True)


async def _remove(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    _featured_target(actor, doc)
    return await c2s.outbox.feature(actor, _object_id(doc, "post to unpin"), pinned=False)


async def _like(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    return await c2s.outbox.like(actor, _object_id(doc, "post to like"))


async def _announce(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    return await c2s.outbox.boost(actor, _object_id(doc, "post to boost"))


async def _block(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    return await c2s.outbox.block(actor, _object_id(doc, "actor to block"))


#: what an Undo of each kind calls, on the undone activity's object
_UNDO: dict[str, Callable[[Outbox, Actor, str], Awaitable[Object]]] = {
    "Like": Outbox.unlike,
    "Announce": Outbox.unboost,
    "Follow": Outbox.unfollow,
    "Block": Outbox.unblock,
}


async def _undo(c2s: ClientOutbox, actor: Actor, doc: dict[str, Any]) -> Object:
    kind, target = await c2s.undone(actor, doc)
    undo = _UNDO.get(kind)
    if undo is None:
        raise BadRequest(f"a {kind} cannot be undone; Undo takes {', '.join(_UNDO)}")
    return await undo(c2s.outbox, actor, target)


HANDLERS: dict[str, Handler] = {
    "Create": _create,
    "Update": _update,
    "Delete": _delete,
    "Follow": _follow,
    "Accept": _accept,
    "Reject": _reject,
    "Add": _add,
    "Remove": _remove,
    "Like": _like,
    "Announce": _announce,
    "Block": _block,
    "Undo": _undo,
}

_SCOPES = {
    "Create": "write:statuses",
    "Update": "write:statuses",
    "Delete": "write:statuses",
    "Announce": "write:statuses",
    "Add": "write:accounts",
    "Remove": "write:accounts",
    "Like": "write:favourites",
    "Follow": "write:follows",
    "Accept": "write:follows",
    "Reject": "write:follows",
    "Block": "write:blocks",
}
