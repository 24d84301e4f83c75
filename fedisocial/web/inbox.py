"""Inbox endpoints: the shared inbox and one per local actor (ActivityPub section 7).

Only checks that belong to HTTP happen here: the content type (415), the size
cap (413) and an unknown user (404). A server too busy to take more answers 503
with ``Retry-After`` before it reads the body
(:mod:`fedisocial.federation.backpressure`). Everything else (signature, dedupe,
storage) is :meth:`fedisocial.federation.inbox.Inbox.accept`; the answer is 202 at once
and the activity is processed as a job.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.errors import UnsupportedMediaType
from fedisocial.social.accounts import find_local_actor
from fedisocial.web.auth import public_url
from fedisocial.web.body import read_body
from fedisocial.web.context import get_context

__all__ = ["routes"]

#: Pleroma and Akkoma deliver as plain application/json
_ACCEPTED_TYPES = frozenset({"application/activity+json", "application/ld+json",
                             "application/json"})  # fmt: skip


def _check_content_type(request: Request) -> None:
    given = request.headers.get("content-type", "")
    if given.partition(";")[0].strip().lower() not in _ACCEPTED_TYPES:
        raise UnsupportedMediaType(
            f"an inbox takes application/activity+json, not {given or 'a body without a type'}"
        )


async def _receive(request: Request, recipient: str | None) -> Response:
    context = get_context(request)
    _check_content_type(request)
    await context.inbox.backpressure.check()
    body = await read_body(request, context.settings.max_inbox_bytes, what="an activity")
    await context.inbox.accept(request.method, public_url(request), request.headers, body,
                               recipient)  # fmt: skip
    return Response(b"{}", status_code=202, media_type="application/json")


async def shared_inbox(request: Request) -> Response:
    return await _receive(request, None)


async def user_inbox(request: Request) -> Response:
    context = get_context(request)
    actor = await find_local_actor(context.db, context.urls, request.path_params["username"])
    return await _receive(request, actor.username)


async def instance_inbox(request: Request) -> Response:
    """The instance actor's inbox (relays deliver there)."""
    return await _receive(request, get_context(request).urls.netloc)


routes = [
    Route("/inbox", shared_inbox, methods=["POST"]),
    Route("/users/{username}/inbox", user_inbox, methods=["POST"]),
    Route("/actor/inbox", instance_inbox, methods=["POST"]),
]
