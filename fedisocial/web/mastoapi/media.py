"""``/api/v1/media`` and ``/api/v2/media``: uploads, as Mastodon apps make them.

https://docs.joinmastodon.org/methods/media/. A file goes through
:meth:`Studio.upload <fedisocial.studio.generation.Studio.upload>`, the checks
and limits of every image (JPEG, PNG or WebP, cleaned, measured, thumbnailed):
a file we refuse is 422 and one over the size cap 413, and nothing is stored.
Processing is done before we answer, so v2 answers 200 with the ``url`` (Mastodon
answers 202 with ``url: null`` only while it is still processing, and clients
poll ``GET /api/v1/media/:id`` until it is there). The alt text may come later
(``PUT``), but a post takes only described media.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import PayloadTooLarge, Unprocessable
from fedisocial.store.models import Actor
from fedisocial.studio.media import InvalidImage
from fedisocial.studio.uploads import alt_text, change, own_upload, parse_focus
from fedisocial.web import auth
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import json_response, path_id, read_params
from fedisocial.web.mastoapi.entities import Entities

__all__ = ["routes"]

#: room for the form's other parts beside the file
_FORM_SLACK = 65_536


def _entities(request: Request, actor: Actor) -> Entities:
    context = get_context(request)
    return Entities(context.db, context.urls, actor)


async def upload(request: Request) -> Response:
    """``POST /api/v1/media`` (and v2): multipart ``file``, ``description``, ``focus``."""
    try:
        return await _upload(request)
    finally:
        await request.close()  # the form's spooled files


async def _upload(request: Request) -> Response:
    actor = await auth.require_user(request, "write:media")
    context = get_context(request)
    cap = context.settings.media_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap + _FORM_SLACK:
        raise PayloadTooLarge(f"images can have at most {cap} bytes")
    params = await read_params(request, files=2)
    file = params.files.get("file")
    if not isinstance(file, UploadFile):
        raise Unprocessable("Validation failed: File can't be blank (send it as the part 'file')")
    focus = parse_focus(text) if (text := params.text("focus")) else None
    description = alt_text(params.text("description") or "", context.settings.media_max_description)
    data = await file.read(cap + 1)
    if len(data) > cap:
        raise PayloadTooLarge(f"images can have at most {cap} bytes")
    try:
        media = await context.studio.upload(actor, data, filename=file.filename,
                                            description=description or None)  # fmt: skip
    except InvalidImage as exc:
        raise Unprocessable(f"Validation failed: {exc.message}") from exc
    if focus is not None:
        media = await change(context.db, actor, media.id, description=None, focus=focus,
                             max_description=context.settings.media_max_description)  # fmt: skip
    return json_response(_entities(request, actor).media_attachment(media))


async def show(request: Request) -> Response:
    """``GET /api/v1/media/:id``: one of the viewer's uploads (ready: 200)."""
    actor = await auth.require_user(request, "write:media")
    media = await own_upload(get_context(request).db, actor, path_id(request))
    return json_response(_entities(request, actor).media_attachment(media))


async def update(request: Request) -> Response:
    """``PUT /api/v1/media/:id``: alt text and focus, while not attached to a post."""
    actor = await auth.require_user(request, "write:media")
    context = get_context(request)
    media_id = path_id(request)
    await own_upload(context.db, actor, media_id, draft=True)
    try:
        params = await read_params(request, files=1)
    finally:
        await request.close()
    focus = parse_focus(text) if (text := params.text("focus")) else None
    longest = context.settings.media_max_description
    media = await change(context.db, actor, media_id, description=params.text("description"),
                         focus=focus, max_description=longest)  # fmt: skip
    return json_response(_entities(request, actor).media_attachment(media))


routes: list[BaseRoute] = [
    Route("/api/v1/media", upload, methods=["POST"]),
    Route("/api/v2/media", upload, methods=["POST"]),
    Route("/api/v1/media/{id}", show, methods=["GET"]),
    Route("/api/v1/media/{id}", update, methods=["PUT"]),
]
