"""The ActivityPub client-to-server API over HTTP (ActivityPub §6, the actor's ``endpoints``).

- ``POST /users/NAME/outbox``: an activity or a bare post, as
  ``application/activity+json``, ``application/ld+json; profile="…activitystreams"``
  or ``application/json`` (else 415); 201 with ``Location`` and the stored
  activity. What each activity does is :mod:`fedisocial.social.c2s`.
- ``POST /users/NAME/media`` (``uploadMedia``): multipart ``file`` and
  ``object``; 201 with ``Location`` and the ``Image``. ``GET`` of that id serves
  the ``Image`` again.
- ``POST /api/proxy`` (``proxyUrl``): form ``id=URL``; the remote object,
  fetched with our signed GET through the guarded client.

All of them take the owner's OAuth Bearer token (or password): 401 with a
``WWW-Authenticate: Bearer`` challenge without one, 403 ``insufficient_scope``
for a token that may not do this, 403 for someone else's outbox.
"""

from __future__ import annotations

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.ap import render as as2
from fedisocial.ap.jsonld import OBJECT_CONTEXT
from fedisocial.ap.vocab import ACTIVITY_JSON, check_http_url, load_json, parse_json_object
from fedisocial.errors import (
    BadRequest,
    Gone,
    InvalidDocument,
    NotFound,
    PayloadTooLarge,
    RemoteError,
    RemoteStatus,
    UnsupportedMediaType,
)
from fedisocial.social.accounts import find_local_actor
from fedisocial.social.c2s import ClientOutbox
from fedisocial.store.models import Actor, Media
from fedisocial.studio.attachments import StudioAttacher, alt_of, image_document, upload_object
from fedisocial.web import auth
from fedisocial.web.body import read_body
from fedisocial.web.context import get_context

__all__ = ["routes"]

_JSON_TYPES = frozenset({"application/activity+json", "application/ld+json", "application/json"})
_NO_STORE = {"Cache-Control": "no-store"}


def _as2(doc: dict[str, object], status: int = 200, location: str | None = None) -> Response:
    headers = {**_NO_STORE, **({"Location": location} if location else {})}
    return Response(orjson.dumps(doc), status, headers=headers, media_type=ACTIVITY_JSON)


async def _owner(request: Request) -> Actor:
    """The client's account, which must own the path's outbox or media endpoint (else 403)."""
    context = get_context(request)
    owner = await find_local_actor(context.db, context.urls, request.path_params["username"])
    return await auth.require_owner(request, owner, "posts through this outbox")


def _client_outbox(request: Request, application_id: int | None = None) -> ClientOutbox:
    context = get_context(request)
    return ClientOutbox(context.outbox, context.db, StudioAttacher(context.studio),
                        application_id)  # fmt: skip


def _check_json(request: Request) -> None:
    """JSON, or no type at all (read as JSON: some clients send none); anything else 415."""
    given = request.headers.get("content-type")
    if given is not None and given.partition(";")[0].strip().lower() not in _JSON_TYPES:
        raise UnsupportedMediaType(
            "post activities as application/activity+json or application/ld+json; "
            f'profile="https://www.w3.org/ns/activitystreams", not {given}'
        )


async def post_outbox(request: Request) -> Response:
    """§6: do what the client posted; 201 with the activity's id in ``Location`` and the body."""
    actor = await _owner(request)
    _check_json(request)
    context = get_context(request)
    doc = parse_json_object(
        await read_body(request, context.settings.max_inbox_bytes, what="an activity")
    )
    grant = await auth.token_grant(request)
    c2s = _client_outbox(request, grant.client_id if grant is not None else None)
    await auth.require_scope(request, await c2s.scope(actor, doc))
    activity = await c2s.submit(actor, doc)
    stored = {"@context": OBJECT_CONTEXT, **activity.data}
    return _as2(as2.compact(stored), 201, location=activity.uri)


# -- uploadMedia -------------------------------------------------------------------------------


def _object_part(value: str | UploadFile | None, data: bytes | None) -> dict[str, object]:
    if value is None:
        raise BadRequest('send the object part too: JSON such as {"type": "Image", "name": "…"}')
    try:
        parsed = load_json(data if data is not None else str(value).encode(), "the object part")
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the object part is not JSON") from exc
    return dict(upload_object(parsed))


async def upload_media(request: Request) -> Response:
    """``uploadMedia``: the file checked and kept like every upload; 201 with the ``Image``."""
    actor = await _owner(request)
    await auth.require_scope(request, "write:media")
    context = get_context(request)
    cap = context.settings.media_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap + 65_536:
        raise PayloadTooLarge(f"images can have at most {cap} bytes")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("upload as multipart/form-data with a file and an object part")
    async with request.form(max_files=2, max_fields=4) as form:
        file, part = form.get("file"), form.get("object")
        if file is None or isinstance(file, str):
            raise BadRequest("send the image as the multipart part 'file'")
        raw = await part.read(65_536) if isinstance(part, UploadFile) else None
        obj = _object_part(part, raw)
        data = await file.read(cap + 1)
        media = await context.studio.upload(actor, data, filename=file.filename,
                                            description=alt_of(obj) or "")  # fmt: skip
    doc = image_document(context.studio, actor, media)
    return _as2(doc, 201, location=str(doc["id"]))


async def media_object(request: Request) -> Response:
    """The ``Image`` of an upload, at its id (the file itself is public, so is this)."""
    context = get_context(request)
    owner = await find_local_actor(context.db, context.urls, request.path_params["username"])
    async with context.db.session() as session:
        media = await session.get(Media, request.path_params["media_id"])
    if media is None or media.owner_id != owner.id:
        raise NotFound(f"nothing at {request.url.path}")
    return _as2(image_document(context.studio, owner, media))


# -- proxyUrl ----------------------------------------------------------------------------------


async def proxy(request: Request) -> Response:
    """``proxyUrl``: a remote object fetched for the client with our signed GET."""
    await auth.require_user(request, "read")
    context = get_context(request)
    async with request.form(max_files=0, max_fields=4) as form:
        target = form.get("id")
    if not isinstance(target, str) or not target:
        raise BadRequest("send the id of the object to fetch as the form field id")
    url = check_http_url(target, "the id")
    if context.urls.is_local(url):
        raise BadRequest(f"{url} is on this server: GET it directly")
    try:
        doc = await context.client.get_json(url)
    except RemoteStatus as exc:
        if exc.status_code == 404:
            raise NotFound(f"{url} does not exist (its server answered 404)") from exc
        if exc.status_code == 410:
            raise Gone(f"{url} was deleted (its server answered 410)") from exc
        raise
    except InvalidDocument as exc:
        raise RemoteError(exc.message) from exc
    return _as2(doc)


routes = [
    Route("/users/{username}/outbox", post_outbox, methods=["POST"]),
    Route("/users/{username}/media", upload_media, methods=["POST"]),
    Route("/users/{username}/media/{media_id:int}", media_object, methods=["GET"]),
    Route("/api/proxy", proxy, methods=["POST"]),
]
