"""Mastodon apps: ``POST /api/v1/apps`` and ``GET /api/v1/apps/verify_credentials``.

https://docs.joinmastodon.org/methods/apps/ — an app registers (JSON or a form; redirect
URIs one per line or as a list, Mastodon 4.3) and gets a confidential client with a
secret; the Application entity is Mastodon 4.3's (``redirect_uri`` is the URIs joined by
newlines, ``redirect_uris`` the list, ``client_secret_expires_at`` 0: secrets do not
expire). There is no Web Push here, so ``vapid_key`` is empty. Registrations are throttled
per client address like RFC 7591's at ``/oauth/register``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedisocial.auth.throttle import registration_key, registration_throttle
from fedisocial.errors import NotFound
from fedisocial.store.models import OAuthClient
from fedisocial.web import auth
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import json_response, read_params

__all__ = ["application", "routes"]


def application(client: OAuthClient, secret: str | None = None) -> dict[str, Any]:
    """The Application entity; with ``secret``, the CredentialApplication (only the answer
    to a registration has it: we keep its hash)."""
    entity: dict[str, Any] = {
        "id": str(client.id),
        "name": client.name,
        "website": client.website or None,
        "scopes": client.scopes.split(),
        "redirect_uri": "\n".join(client.redirect_uris),
        "redirect_uris": list(client.redirect_uris),
        "client_id": client.client_id,
        "vapid_key": "",
    }
    if secret is not None:
        entity.update(client_secret=secret, client_secret_expires_at=0)
    return entity


async def create(request: Request) -> Response:
    context = get_context(request)
    await registration_throttle(context.db).admit([registration_key(auth.client_address(request))])
    params = await read_params(request)
    client, secret = await context.oauth.clients.register_app(
        params.text("client_name") or "", params.strings("redirect_uris"),
        " ".join(params.strings("scopes")), params.text("website"),
    )  # fmt: skip
    return json_response(application(client, secret))


async def verify_credentials(request: Request) -> Response:
    """The app of any valid token, a user's or the app's own (no scope needed, 4.3)."""
    grant = await auth.require_token(request)
    client = await get_context(request).oauth.clients.get(grant.client_id)
    if client is None:  # deleted meanwhile; its tokens went with it
        raise NotFound("The app of this token is gone")
    return json_response(application(client))


routes = [
    Route("/api/v1/apps", create, methods=["POST"]),
    Route("/api/v1/apps/verify_credentials", verify_credentials, methods=["GET"]),
]
