"""The image studio over HTTP: media files, generation jobs, uploads, publishing.

``/media/…`` is open to everyone (remote servers fetch attachments). The
``/api/studio/…`` endpoints act for a signed-in local user (HTTP Basic, or an
OAuth Bearer token with ``write:media`` / ``write:statuses``); the composer page
and other clients poll the status endpoint while a generation runs.
State-changing requests from a browser must come from our own pages
(``Origin``/``Sec-Fetch-Site`` checked), since browsers resend Basic
credentials on their own. ``/studio`` is that composer page
(``templates/studio.html`` with ``static/studio.js``, no build step).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.ap.addressing import VISIBILITIES
from fedisocial.ap.vocab import parse_json_object
from fedisocial.errors import BadRequest, Forbidden, PayloadTooLarge
from fedisocial.studio.generation import MAX_ATTACHMENTS, MAX_PROMPT
from fedisocial.studio.media import CACHE_CONTROL, media_type_for_key
from fedisocial.web import auth, robots
from fedisocial.web.body import read_body
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import render_page

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


def _same_origin(request: Request) -> None:
    """Refuse cross-site browser requests (CSRF): our pages, or non-browser clients only."""
    context = get_context(request)
    origin = request.headers.get("origin")
    ours = urlsplit(context.urls.base_url)
    if origin and origin != f"{ours.scheme}://{ours.netloc}":
        raise Forbidden(f"requests from {origin} are not accepted here")
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        raise Forbidden("cross-site requests are not accepted here")


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
    _same_origin(request)
    actor = await auth.require_user(request, "write:media", prompt=True)
    body = await _json_body(request)
    studio = get_context(request).studio
    generation = await studio.request(actor, _text(body, "prompt") or "")
    status = await studio.status(actor, generation.id)
    status["status_url"] = str(request.url_for("generation", generation_id=generation.id))
    return _json(status, 202)


async def generation_status(request: Request) -> Response:
    actor = await auth.require_user(request, "write:media", prompt=True)
    generation_id = request.path_params["generation_id"]
    return _json(await get_context(request).studio.status(actor, generation_id))


async def upload(request: Request) -> Response:
    _same_origin(request)
    actor = await auth.require_user(request, "write:media", prompt=True)
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
    _same_origin(request)
    actor = await auth.require_user(request, "write:statuses", prompt=True)
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


async def studio_page(request: Request) -> Response:
    """The composer: ask for images, review the drafts, publish them (signed-in users)."""
    actor = await auth.require_user(request, prompt=True)
    context = get_context(request)
    provider = context.studio.provider
    response = render_page(
        request, "studio.html", user=actor, provider_name=provider.name,
        provider_model=provider.model, per_hour=context.settings.ai_images_per_hour,
        concurrent=context.settings.ai_images_concurrent, max_images=MAX_ATTACHMENTS,
        max_prompt=MAX_PROMPT, max_bytes=context.settings.media_max_bytes,
        visibilities=VISIBILITIES,
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


routes = [
    Route("/studio", studio_page),
    Route("/media/{key:path}", media_file, methods=["GET", "HEAD"]),
    Route("/api/studio/generations", request_generation, methods=["POST"]),
    Route("/api/studio/generations/{generation_id:int}", generation_status, name="generation"),
    Route("/api/studio/media", upload, methods=["POST"]),
    Route("/api/studio/posts", publish, methods=["POST"]),
]
