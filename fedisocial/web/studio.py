"""The image studio over HTTP: media files, generation jobs, uploads, publishing.

``/media/…`` is open to everyone (remote servers fetch attachments). The
``/api/studio/…`` endpoints act for a local user: an app with an OAuth Bearer
token (``write:media`` / ``write:statuses``), or the web composer
(``templates/_composer.html`` with ``static/composer.js``) with the browser's
sign-in session (:func:`fedisocial.web.auth.app_or_session_user`). The composer
polls the status endpoint while a generation runs, edits a draft's alt text
(``PUT /api/studio/media/ID``) and discards a draft (``DELETE``). ``/studio``,
where the studio's page was, now leads to the composer (``/compose``).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fedisocial.ap.addressing import VISIBILITIES
from fedisocial.ap.vocab import parse_json_object
from fedisocial.errors import BadRequest, PayloadTooLarge
from fedisocial.studio.media import CACHE_CONTROL, media_type_for_key
from fedisocial.studio.uploads import change, discard
from fedisocial.web import auth, robots
from fedisocial.web.body import read_body
from fedisocial.web.context import get_context

__all__ = ["routes"]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})  # fmt: skip


async def media_file(request: Request) -> Response:
    context = get_context(request)
    key = request.path_params["key"]
    data = await context.media.get(key)
    headers = {"Cache-Control": CACHE_CONTROL, **await robots.media_headers(request, key)}
    return Response(data, media_type=media_type_for_key(key), headers=headers)


async def _json_body(request: Request, limit: int = 65_536) -> dict[str, Any]:
    return parse_json_object(await read_body(request, limit))


_JSON_TYPES = {int: "a number", float: "a number", list: "a list", dict: "an object"}


def _text(body: dict[str, Any], name: str, default: str | None = "") -> str | None:
    """The string field ``name`` of a JSON body (``default`` when absent or null); else 400."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, str):
        return value
    found = str(value).lower() if isinstance(value, bool) else _JSON_TYPES.get(type(value))
    raise BadRequest(f"{name} must be text (a string), not {found or 'this'}")


def _media_ids(body: dict[str, Any]) -> list[int]:
    ids = body.get("media_ids") or []
    if not isinstance(ids, list) or not all(type(i) is int for i in ids):  # bools are ints
        raise BadRequest("media_ids must be a list of image ids (numbers)")
    return ids


def _descriptions(body: dict[str, Any]) -> dict[int, str]:
    descriptions = body.get("descriptions") or {}
    if not isinstance(descriptions, dict) or not all(k.isdigit() for k in descriptions):
        raise BadRequest("descriptions must map image ids to alt text")
    for key, value in descriptions.items():
        if not isinstance(value, str):
            raise BadRequest(f"the description of image {key} must be text (a string)")
    return {int(k): v for k, v in descriptions.items()}


async def request_generation(request: Request) -> Response:
    actor = await auth.app_or_session_user(request, "write:media")
    body = await _json_body(request)
    studio = get_context(request).studio
    generation = await studio.request(actor, _text(body, "prompt") or "")
    status = await studio.status(actor, generation.id)
    status["status_url"] = str(request.url_for("generation", generation_id=generation.id))
    return _json(status, 202)


async def generation_status(request: Request) -> Response:
    actor = await auth.app_or_session_user(request, "write:media")
    generation_id = request.path_params["generation_id"]
    return _json(await get_context(request).studio.status(actor, generation_id))


async def upload(request: Request) -> Response:
    actor = await auth.app_or_session_user(request, "write:media")
    context = get_context(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > context.settings.media_max_bytes + 65_536:
        raise PayloadTooLarge(f"images can have at most {context.settings.media_max_bytes} bytes")
    async with request.form(max_files=1, max_fields=4) as form:
        file = form.get("file")
        if file is None or isinstance(file, str):
            raise BadRequest("send the image as the multipart field 'file'")
        data = await file.read(context.settings.media_max_bytes + 1)
        description = str(form.get("description") or "")
        media = await context.studio.upload(actor, data, filename=file.filename,
                                            description=description)  # fmt: skip
    return _json(context.studio.describe(media), 201)


async def publish(request: Request) -> Response:
    actor = await auth.app_or_session_user(request, "write:statuses")
    body = await _json_body(request)
    visibility = body.get("visibility", "public")
    if not isinstance(visibility, str) or visibility not in VISIBILITIES:
        raise BadRequest(f"visibility must be one of {', '.join(VISIBILITIES)}")
    text, summary = _text(body, "text"), _text(body, "cw", None)
    note = await get_context(request).studio.publish(
        actor,
        text or "",
        _media_ids(body),
        descriptions=_descriptions(body),
        visibility=visibility,
        summary=summary or None,
    )
    return _json({"id": note.uri, "url": note.uri}, 201)


def _media_id(request: Request) -> int:
    raw = str(request.path_params["media_id"])
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("no such image")
    return int(raw)


async def describe(request: Request) -> Response:
    """``PUT /api/studio/media/ID`` ``{"description": …}``: the alt text of a draft image
    (the one rule of :func:`fedisocial.studio.uploads.change`, as the Mastodon API's)."""
    actor = await auth.app_or_session_user(request, "write:media")
    description = _text(await _json_body(request), "description")
    context = get_context(request)
    longest = context.settings.media_max_description
    media = await change(context.db, actor, _media_id(request), description=description,
                         focus=None, max_description=longest)  # fmt: skip
    return _json(context.studio.describe(media))


async def drop(request: Request) -> Response:
    """``DELETE /api/studio/media/ID``: discard a draft image (not one already posted)."""
    actor = await auth.app_or_session_user(request, "write:media")
    context = get_context(request)
    await discard(context.db, context.media, actor, _media_id(request))
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


async def studio_page(request: Request) -> Response:
    """``/studio``: the studio is part of the composer now."""
    query = request.url.query
    return RedirectResponse("/compose" + (f"?{query}" if query else ""), 308)


routes = [
    Route("/studio", studio_page),
    Route("/media/{key:path}", media_file, methods=["GET", "HEAD"]),
    Route("/api/studio/generations", request_generation, methods=["POST"]),
    Route("/api/studio/generations/{generation_id:int}", generation_status, name="generation"),
    Route("/api/studio/media", upload, methods=["POST"]),
    Route("/api/studio/media/{media_id}", describe, methods=["PUT"]),
    Route("/api/studio/media/{media_id}", drop, methods=["DELETE"]),
    Route("/api/studio/posts", publish, methods=["POST"]),
]
