"""Search methods (https://docs.joinmastodon.org/methods/search/): what :mod:`social.search` finds.

- ``GET /api/v2/search``: accounts, statuses and hashtags. A token is optional
  (``read:search`` when given), but resolving (``resolve=true``) and paging
  (``offset``) need one: 401 otherwise, as Mastodon's ``Api::V2::SearchController``.
  ``q`` is required (400). ``limit`` is 20 by default, at most 40, per type.
- ``GET /api/v1/accounts/search``: accounts only, for a signed-in user
  (``read:accounts``); ``limit`` 40 by default, at most 80.

These paths must come before the accounts methods' ``/api/v1/accounts/{id}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import BadRequest, Unauthorized
from fedisocial.social.search import Query, Search
from fedisocial.store.models import Actor
from fedisocial.web.auth import require_scope, require_user, signed_in_user
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import Params, json_response, read_params
from fedisocial.web.mastoapi.entities import Entities

__all__ = ["routes"]

_SEARCH_LIMIT = 20
_ACCOUNTS_LIMIT = 40


def _limit(params: Params, default: int) -> int:
    """Rails' ``limit_param``: the default when absent, else at most twice the default."""
    given = params.number("limit")
    return default if given is None else min(abs(given), 2 * default)


def _search(request: Request) -> Search:
    context = get_context(request)
    return Search(context.db, context.client, context.urls, context.outbox)


def _entities(request: Request, viewer: Actor | None) -> Entities:
    context = get_context(request)
    return Entities(context.db, context.urls, viewer)


def _tag(request: Request, name: str) -> dict[str, Any]:
    return {"name": name, "url": get_context(request).urls.hashtag(name), "history": []}


async def search_v2(request: Request) -> Response:
    viewer = await signed_in_user(request)
    await require_scope(request, "read:search")
    params = await read_params(request)
    text = (params.text("q") or "").strip()
    if not text:
        raise BadRequest("param is missing or the value is empty: q")
    if viewer is None and params.flag("resolve"):
        raise Unauthorized(
            "Search queries that resolve remote resources are not supported without authentication"
        )
    if viewer is None and params.text("offset"):
        raise Unauthorized("Search queries pagination is not supported without authentication")
    query = Query(
        text, kind=params.text("type") or None, resolve=params.flag("resolve"),
        following=params.flag("following"), account_id=params.number("account_id"),
        limit=_limit(params, _SEARCH_LIMIT), offset=max(0, params.number("offset", 0) or 0),
        min_id=params.number("min_id"), max_id=params.number("max_id"),
    )  # fmt: skip
    found = await _search(request).search(query, viewer)
    entities = _entities(request, viewer)
    return json_response({
        "accounts": await entities.accounts(found.accounts),
        "statuses": await entities.statuses(found.statuses),
        "hashtags": [_tag(request, name) for name in found.hashtags],
    })  # fmt: skip


async def account_search(request: Request) -> Response:
    viewer = await require_user(request, "read:accounts")
    params = await read_params(request)
    actors = await _search(request).accounts(
        params.text("q") or "", viewer, limit=_limit(params, _ACCOUNTS_LIMIT),
        offset=max(0, params.number("offset", 0) or 0), resolve=params.flag("resolve"),
        following=params.flag("following"),
    )  # fmt: skip
    return json_response(await _entities(request, viewer).accounts(actors))


routes: list[BaseRoute] = [
    Route("/api/v2/search", search_v2, methods=["GET"]),
    Route("/api/v1/accounts/search", account_search, methods=["GET"]),
]
