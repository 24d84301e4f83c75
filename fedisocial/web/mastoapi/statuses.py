"""``/api/v1/statuses``: post, read, edit and delete statuses, and act on them.

https://docs.joinmastodon.org/methods/statuses/. What each action does lives in
:mod:`fedisocial.social.statuses` (and :class:`~fedisocial.social.outbox.Outbox`,
so posts, edits, deletes, favourites, boosts and pins federate); media are the
studio's (:class:`~fedisocial.studio.attachments.StudioAttacher`: the poster's
own uploads, not yet attached, described). As on Mastodon, a status the viewer
may not read is answered 404, a validation error 422, and acting twice
(favouriting a favourite) is not an error.

Not supported yet, answered 422: ``scheduled_at``, ``poll``, and muting a
conversation (``/mute``, ``/unmute``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.ap.addressing import Visibility
from fedisocial.errors import BadRequest, NotFound, Unprocessable
from fedisocial.social import bookmarks, statuses
from fedisocial.social.collections import engagers, read_page
from fedisocial.social.content import plain_text
from fedisocial.social.statuses import Composed, readable_status
from fedisocial.social.versions import history, source_text
from fedisocial.store.models import Actor, Media, Object
from fedisocial.studio.attachments import attach_uploads
from fedisocial.studio.generation import MAX_ATTACHMENTS
from fedisocial.web import auth
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import (
    Params,
    json_response,
    page_response,
    paging,
    path_id,
    read_params,
)
from fedisocial.web.mastoapi.entities import Entities

__all__ = ["routes"]

#: Mastodon's visibility → ours
_VISIBILITIES: dict[str, Visibility] = {"public": "public", "unlisted": "unlisted",
                                        "private": "followers", "direct": "direct"}  # fmt: skip
_OURS: dict[str, Visibility] = {v: v for v in _VISIBILITIES.values()}
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
#: at most this many ids in ``GET /api/v1/statuses?id[]=`` (Mastodon's page size)
_MAX_IDS = 20


# -- who asks, what they see --------------------------------------------------------------


async def _reader(request: Request, scope: str) -> Actor | None:
    """Who reads a method that works without a token too (Mastodon's
    ``authorize_if_got_token!``): a token must cover ``scope``."""
    actor = await auth.signed_in_user(request)
    await auth.require_scope(request, scope)
    return actor


def _uri(actor: Actor | None) -> str | None:
    return actor.uri if actor is not None else None


async def _status(request: Request, viewer: Actor | None) -> Object:
    """The status of the path, if the viewer may read it (404 otherwise)."""
    return await readable_status(get_context(request).db, path_id(request), _uri(viewer))


async def _post(request: Request, viewer: Actor | None) -> Object:
    """:func:`_status`; a boost stands for the post it boosts (what one favourites)."""
    return await statuses.target_of(get_context(request).db, await _status(request, viewer))


async def _own(request: Request, actor: Actor) -> Object:
    """One of the actor's own posts (Mastodon: ``Status.where(account: current_account)``)."""
    row = await _status(request, actor)
    if row.actor_uri != actor.uri or not row.local or row.type == "Announce":
        raise NotFound("Record not found")
    return row


async def _entity(request: Request, viewer: Actor | None, row: Object) -> dict[str, Any]:
    context = get_context(request)
    async with context.db.session() as session:
        fresh = await session.get_one(Object, row.id)
    entity = await Entities(context.db, context.urls, viewer).status(fresh)
    if entity is None:
        raise NotFound("Record not found")
    return entity


async def _answer(request: Request, viewer: Actor | None, row: Object) -> Response:
    return json_response(await _entity(request, viewer, row))


# -- composing -----------------------------------------------------------------------------


def _language(params: Params) -> str | None:
    value = (params.text("language") or "").strip()
    return value if _LANGUAGE.match(value) else None  # Mastodon ignores what it cannot read


def _visibility(params: Params, default: str = "public") -> Visibility:
    name = params.text("visibility") or default
    if name not in _VISIBILITIES:
        raise Unprocessable(f"Validation failed: Visibility {name!r} is not one of "
                            f"{', '.join(_VISIBILITIES)}")  # fmt: skip
    return _VISIBILITIES[name]


def _media_ids(params: Params) -> list[int]:
    ids = [i for i in params.strings("media_ids") if i != ""]
    if len(ids) > MAX_ATTACHMENTS:
        raise Unprocessable(f"Validation failed: a post can carry at most {MAX_ATTACHMENTS} "
                            "images")  # fmt: skip
    if not all(i.isdigit() and len(i) < 19 for i in ids):
        raise Unprocessable("Validation failed: media_ids are the ids of your uploads")
    return list(dict.fromkeys(int(i) for i in ids))


async def _parent(request: Request, actor: Actor, params: Params) -> Object | None:
    raw = params.text("in_reply_to_id")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise NotFound("The post you are trying to reply to does not appear to exist.")
    try:
        parent = await readable_status(get_context(request).db, int(raw), actor.uri)
    except NotFound as exc:
        raise NotFound("The post you are trying to reply to does not appear to exist.") from exc
    if parent.type == "Announce":
        raise NotFound("The post you are trying to reply to does not appear to exist.")
    return parent


def _unsupported(params: Params) -> None:
    if params.text("scheduled_at"):
        raise Unprocessable("Validation failed: scheduled posts are not supported here yet")
    if params.nested("poll"):
        raise Unprocessable("Validation failed: polls are not supported here yet")


async def create(request: Request) -> Response:
    """``POST /api/v1/statuses``."""
    actor = await auth.require_user(request, "write:statuses")
    params = await read_params(request)
    _unsupported(params)
    composed = Composed(
        text=params.text("status") or "", visibility=_visibility(params),
        parent=await _parent(request, actor, params),
        summary=(params.text("spoiler_text") or "").strip() or None,
        sensitive=params.flag("sensitive"), language=_language(params),
    )  # fmt: skip
    attached = await attach_uploads(get_context(request).studio, actor, _media_ids(params), None)
    key = request.headers.get("idempotency-key")
    grant = await auth.token_grant(request)  # the app posting (none with a password)
    row = await statuses.create(get_context(request).outbox, actor, composed, attached, key,
                                grant.client_id if grant is not None else None)  # fmt: skip
    return await _answer(request, actor, row)


async def _current_media(request: Request, row: Object) -> list[int]:
    """The ids of a local post's uploads, in the order of its attachments."""
    context = get_context(request)
    async with context.db.session() as session:
        media = list(await session.scalars(select(Media).where(Media.note_uri == row.uri)))
    order = [str(item.get("url")) for item in row.data.get("attachment", ())
             if isinstance(item, dict)]  # fmt: skip
    by_url = {context.studio.store.url(m.path): m.id for m in media}
    return [by_url[url] for url in order if url in by_url]


async def update(request: Request) -> Response:
    """``PUT /api/v1/statuses/:id``: text, content warning, sensitive, media, language."""
    actor = await auth.require_user(request, "write:statuses")
    row = await _own(request, actor)
    params = await read_params(request)
    _unsupported(params)
    doc = row.data
    language = next(iter(doc["contentMap"]), None) if isinstance(doc.get("contentMap"), dict) \
        and doc["contentMap"] else None  # fmt: skip
    summary = params.text("spoiler_text") if "spoiler_text" in params else doc.get("summary")
    composed = Composed(
        text=params.text("status") or "" if "status" in params else source_text(doc),
        visibility=_OURS.get(row.visibility, "public"),
        summary=(summary or "").strip() or None,
        sensitive=params.flag("sensitive") if "sensitive" in params else bool(doc.get("sensitive")),
        language=_language(params) if "language" in params else language,
    )  # fmt: skip
    ids = _media_ids(params) if "media_ids" in params else await _current_media(request, row)
    attached = await attach_uploads(get_context(request).studio, actor, ids, row)
    edited = await statuses.edit(get_context(request).outbox, actor, row, composed, attached)
    return await _answer(request, actor, edited)


async def destroy(request: Request) -> Response:
    """``DELETE /api/v1/statuses/:id``: the status as it was, with ``text`` for a redraft."""
    actor = await auth.require_user(request, "write:statuses")
    row = await _own(request, actor)
    entity = await _entity(request, actor, row)
    entity["text"] = source_text(row.data)
    await statuses.delete_status(get_context(request).outbox, actor, row)
    return json_response(entity)


# -- reading --------------------------------------------------------------------------------


async def show(request: Request) -> Response:
    viewer = await _reader(request, "read:statuses")
    return await _answer(request, viewer, await _status(request, viewer))


async def index(request: Request) -> Response:
    """``GET /api/v1/statuses?id[]=…``: those of the ids the viewer may read, in order."""
    viewer = await _reader(request, "read:statuses")
    params = await read_params(request)
    raw = params.strings("id")
    if not raw:
        raise BadRequest("param is missing or the value is empty: id")
    if len(raw) > _MAX_IDS:
        raise Unprocessable(f"Validation failed: ask for at most {_MAX_IDS} statuses at once")
    ids = [int(i) for i in raw if i.isdigit() and len(i) < 19]
    context = get_context(request)
    rows = await statuses.readable_statuses(context.db, ids, _uri(viewer))
    return json_response(await Entities(context.db, context.urls, viewer).statuses(rows))


async def context_of(request: Request) -> Response:
    """``GET /:id/context``: the ancestors and descendants we have that the viewer may read."""
    viewer = await _reader(request, "read:statuses")
    row = await _status(request, viewer)
    context = get_context(request)
    before, after = [], []
    if row.type != "Announce":
        before = await statuses.ancestors(context.db, row, _uri(viewer))
        after = await statuses.descendants(context.db, row, _uri(viewer))
    entities = Entities(context.db, context.urls, viewer)
    rendered = await entities.statuses([*before, *after])
    return json_response({"ancestors": rendered[: len(before)],
                          "descendants": rendered[len(before):]})  # fmt: skip


async def history_of(request: Request) -> Response:
    """``GET /:id/history``: StatusEdit entities, oldest first, the current version last."""
    viewer = await _reader(request, "read:statuses")
    row = await _post(request, viewer)
    context = get_context(request)
    versions = [(v.data, v.created_at) for v in await history(context.db, row)]
    entities = Entities(context.db, context.urls, viewer)
    return json_response(await entities.status_edits(row, versions))


async def source_of(request: Request) -> Response:
    """``GET /:id/source``: the text to edit (StatusSource)."""
    actor = await auth.require_user(request, "read:statuses")
    row = await _post(request, actor)
    summary = plain_text(str(row.data.get("summary") or ""))
    return json_response({"id": str(row.id), "text": source_text(row.data),
                          "spoiler_text": summary})  # fmt: skip


async def _accounts(request: Request, kind: str) -> Response:
    viewer = await _reader(request, "read:accounts")
    row = await _post(request, viewer)
    context = get_context(request)
    cursor, limit = paging(await read_params(request))
    page = await read_page(context.db, engagers(kind, row.uri), cursor, limit)
    async with context.db.session() as session:
        found = {a.uri: a for a in await session.scalars(
            select(Actor).where(Actor.uri.in_(page.items)))}  # fmt: skip
    actors = [found[uri] for uri in page.items if uri in found]
    rendered = await Entities(context.db, context.urls, viewer).accounts(actors)
    return page_response(request, page, rendered)


async def favourited_by(request: Request) -> Response:
    return await _accounts(request, "like")


async def reblogged_by(request: Request) -> Response:
    return await _accounts(request, "announce")


# -- acting on a status ----------------------------------------------------------------------


async def favourite(request: Request) -> Response:
    actor = await auth.require_user(request, "write:favourites")
    row = await _post(request, actor)
    await statuses.favourite(get_context(request).outbox, actor, row)
    return await _answer(request, actor, row)


async def unfavourite(request: Request) -> Response:
    actor = await auth.require_user(request, "write:favourites")
    row = await _post(request, actor)
    await statuses.unfavourite(get_context(request).outbox, actor, row)
    return await _answer(request, actor, row)


async def reblog(request: Request) -> Response:
    """``POST /:id/reblog``: the boost (a Status whose ``reblog`` is the post)."""
    actor = await auth.require_user(request, "write:statuses")
    row = await _post(request, actor)
    visibility = _visibility(await read_params(request))
    boost = await statuses.reblog(get_context(request).outbox, actor, row, visibility)
    return await _answer(request, actor, boost)


async def unreblog(request: Request) -> Response:
    actor = await auth.require_user(request, "write:statuses")
    row = await _post(request, actor)
    await statuses.unreblog(get_context(request).outbox, actor, row)
    return await _answer(request, actor, row)


async def bookmark(request: Request) -> Response:
    actor = await auth.require_user(request, "write:bookmarks")
    row = await _post(request, actor)
    await bookmarks.bookmark(get_context(request).db, actor.id, row.id)
    return await _answer(request, actor, row)


async def unbookmark(request: Request) -> Response:
    actor = await auth.require_user(request, "write:bookmarks")
    row = await _post(request, actor)
    await bookmarks.unbookmark(get_context(request).db, actor.id, row.id)
    return await _answer(request, actor, row)


async def _pin(request: Request, *, pinned: bool) -> Response:
    actor = await auth.require_user(request, "write:accounts")
    row = await _status(request, actor)
    row = await statuses.pin(get_context(request).outbox, actor, row, pinned=pinned)
    return await _answer(request, actor, row)


async def pin(request: Request) -> Response:
    return await _pin(request, pinned=True)


async def unpin(request: Request) -> Response:
    return await _pin(request, pinned=False)


async def mute(request: Request) -> Response:
    """Muting a conversation: not supported yet (said plainly, as a 422)."""
    actor = await auth.require_user(request, "write:mutes")
    await _status(request, actor)
    raise Unprocessable("Validation failed: muting conversations is not supported here yet")


_ID = "/api/v1/statuses/{id}"
routes: list[BaseRoute] = [
    Route("/api/v1/statuses", create, methods=["POST"]),
    Route("/api/v1/statuses", index, methods=["GET"]),
    Route(_ID, show, methods=["GET"]),
    Route(_ID, update, methods=["PUT"]),
    Route(_ID, destroy, methods=["DELETE"]),
    Route(f"{_ID}/context", context_of, methods=["GET"]),
    Route(f"{_ID}/history", history_of, methods=["GET"]),
    Route(f"{_ID}/source", source_of, methods=["GET"]),
    Route(f"{_ID}/favourited_by", favourited_by, methods=["GET"]),
    Route(f"{_ID}/reblogged_by", reblogged_by, methods=["GET"]),
    Route(f"{_ID}/favourite", favourite, methods=["POST"]),
    Route(f"{_ID}/unfavourite", unfavourite, methods=["POST"]),
    Route(f"{_ID}/reblog", reblog, methods=["POST"]),
    Route(f"{_ID}/unreblog", unreblog, methods=["POST"]),
    Route(f"{_ID}/bookmark", bookmark, methods=["POST"]),
    Route(f"{_ID}/unbookmark", unbookmark, methods=["POST"]),
    Route(f"{_ID}/pin", pin, methods=["POST"]),
    Route(f"{_ID}/unpin", unpin, methods=["POST"]),
    Route(f"{_ID}/mute", mute, methods=["POST"]),
    Route(f"{_ID}/unmute", mute, methods=["POST"]),
]
