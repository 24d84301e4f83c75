"""ActivityPub documents for servers, with HTML on the same URLs for browsers.

Content negotiation follows Mastodon: ``application/activity+json`` and
``application/ld+json; profile="https://www.w3.org/ns/activitystreams"`` get
the AS2 document (always served as ``application/activity+json``), anything
else the HTML page; ``Vary: Accept`` keeps caches honest.

In secure mode (``authorized_fetch``) an actor document is served only to a
signed GET, except the instance actor's: other servers fetch it, unsigned, to
verify the signatures of our own fetches. The document is the same whoever
asks, so it still comes from the byte cache once the signature checks out.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fedisocial.ap.vocab import ACTIVITY_JSON, accepts_activity_json
from fedisocial.social.accounts import find_local_actor, render_actor
from fedisocial.social.avatars import default_avatar_png, default_header_png
from fedisocial.web.auth import require_signature
from fedisocial.web.context import get_context
from fedisocial.web.pages.public import profile_page

__all__ = ["routes"]

_VARY = {"Vary": "Accept", "Cache-Control": "max-age=60"}
#: secure mode: no shared cache may hand a signed-for document to anyone else
_VARY_SIGNED = {"Vary": "Accept", "Cache-Control": "private, max-age=60"}


def wants_activity_json(request: Request) -> bool:
    return accepts_activity_json(request.headers.get("accept", ""))


async def actor_document(request: Request, username: str) -> Response:
    context = get_context(request)

    async def render() -> bytes:
        actor = await find_local_actor(context.db, context.urls, username)
        return orjson.dumps(render_actor(actor))

    body = await context.cache.get_or_render(f"actor:{username.lower()}", render)
    return Response(body, media_type=ACTIVITY_JSON, headers=_VARY)


async def actor(request: Request) -> Response:
    username = request.path_params["username"]
    if wants_activity_json(request):
        if not get_context(request).settings.authorized_fetch:
            return await actor_document(request, username)
        await require_signature(request)
        response = await actor_document(request, username)
        response.headers.update(_VARY_SIGNED)
        return response
    response = await profile_page(request, username)
    response.headers["Vary"] = "Accept"  # (the page says how it may be cached: per person)
    return response


async def instance_actor(request: Request) -> Response:
    context = get_context(request)
    if not wants_activity_json(request):
        return RedirectResponse(context.urls.about, status_code=302, headers=_VARY)
    return await actor_document(request, context.urls.netloc)


async def avatar(request: Request) -> Response:
    return _png(default_avatar_png(request.path_params["username"].lower()))


async def header(request: Request) -> Response:
    return _png(default_header_png(request.path_params["username"].lower()))


def _png(body: bytes) -> Response:
    return Response(
        body, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"}
    )


routes = [
    Route("/users/{username}", actor),
    Route("/@{username}", actor),
    Route("/actor", instance_actor),
    Route("/users/{username}/avatar.png", avatar),
    Route("/users/{username}/header.png", header),
]
