"""Notifications and markers (https://docs.joinmastodon.org/methods/notifications/,
https://docs.joinmastodon.org/methods/markers/).

Who is notified of what is :mod:`fedisocial.social.notifications`; here are the
Notification entity and the methods. Lists page by notification id (40 a page, at
most 80, as Mastodon's). ``group_key`` is Mastodon 4.3's: likes and boosts of one
post, and follows, within the same hour share one; other notifications are
``ungrouped-ID``. Our own type (:data:`~fedisocial.social.notifications.GENERATION`,
an image made) is listed only when ``types[]`` names it, and carries
``generation_id``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import BadRequest, NotFound
from fedisocial.social import markers, notifications
from fedisocial.social.notifications import Shown
from fedisocial.store.models import Actor, Marker
from fedisocial.web.auth import require_user
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import (
    Params,
    json_response,
    page_response,
    path_id,
    read_params,
)
from fedisocial.web.mastoapi.entities import Entities, iso_time
from fedisocial.web.mastoapi.timelines import read_listing

__all__ = ["routes"]

#: a page of notifications (Mastodon's DEFAULT_NOTIFICATIONS_LIMIT), and unread_count's cap
_PAGE = 40
_COUNT_DEFAULT, _COUNT_MAX = 100, 1000


async def _render(request: Request, viewer: Actor, shown: list[Shown]) -> list[dict[str, Any]]:
    context = get_context(request)
    return await Entities(context.db, context.urls, viewer).notifications(shown)


def _filters(params: Params) -> dict[str, Any]:
    return {"types": params.strings("types"), "exclude": params.strings("exclude_types"),
            "account_id": params.number("account_id")}  # fmt: skip


async def index(request: Request) -> Response:
    viewer = await require_user(request, "read:notifications")
    params = await read_params(request)
    listing = notifications.listing(viewer, **_filters(params))
    page = await read_listing(request, params, listing, _PAGE)
    return page_response(request, page, await _render(request, viewer, page.items))


async def show(request: Request) -> Response:
    viewer = await require_user(request, "read:notifications")
    found = await notifications.find(get_context(request).db, viewer, path_id(request))
    rendered = await _render(request, viewer, [found]) if found is not None else []
    if not rendered:
        raise NotFound("Record not found")
    return json_response(rendered[0])


async def unread_count(request: Request) -> Response:
    viewer = await require_user(request, "read:notifications")
    params = await read_params(request)
    limit = max(1, min(params.number("limit", _COUNT_DEFAULT) or _COUNT_DEFAULT, _COUNT_MAX))
    count = await notifications.unread_count(get_context(request).db, viewer, limit=limit,
                                             **_filters(params))  # fmt: skip
    return json_response({"count": count})


async def clear(request: Request) -> Response:
    viewer = await require_user(request, "write:notifications")
    await notifications.clear(get_context(request).db, viewer)
    return json_response({})


async def _dismiss(request: Request, notification_id: int) -> Response:
    viewer = await require_user(request, "write:notifications")
    if not await notifications.dismiss(get_context(request).db, viewer, notification_id):
        raise NotFound("Record not found")
    return json_response({})


async def dismiss(request: Request) -> Response:
    return await _dismiss(request, path_id(request))


async def dismiss_legacy(request: Request) -> Response:
    """``POST /api/v1/notifications/dismiss`` with ``id`` (before Mastodon 3.1; toot uses it)."""
    await require_user(request, "write:notifications")
    found = (await read_params(request)).number("id")
    if found is None:
        raise BadRequest("id is missing")
    return await _dismiss(request, found)


# -- markers ----------------------------------------------------------------------------


def _markers(found: list[Marker]) -> dict[str, Any]:
    return {marker.timeline: {"last_read_id": marker.last_read_id, "version": marker.version,
                              "updated_at": iso_time(marker.updated_at)}
            for marker in found}  # fmt: skip


async def get_markers(request: Request) -> Response:
    viewer = await require_user(request, "read:statuses")
    timelines = (await read_params(request)).strings("timeline")
    return json_response(_markers(await markers.read(get_context(request).db, viewer.id,
                                                     timelines)))  # fmt: skip


async def save_markers(request: Request) -> Response:
    viewer = await require_user(request, "write:statuses")
    params = await read_params(request)
    last_read = {}
    for name in markers.TIMELINES:
        value = params.nested(name).get("last_read_id")
        if value is not None:
            if not str(value).isdigit() or len(str(value)) > 19:
                raise BadRequest(f"{name}[last_read_id] must be an id, not {value!r}")
            last_read[name] = str(value)
    saved = await markers.save(get_context(request).db, viewer.id, last_read)
    return json_response(_markers(saved))


routes: list[BaseRoute] = [
    Route("/api/v1/notifications", index, methods=["GET"]),
    Route("/api/v1/notifications/unread_count", unread_count, methods=["GET"]),
    Route("/api/v1/notifications/clear", clear, methods=["POST"]),
    Route("/api/v1/notifications/dismiss", dismiss_legacy, methods=["POST"]),
    Route("/api/v1/notifications/{id}", show, methods=["GET"]),
    Route("/api/v1/notifications/{id}/dismiss", dismiss, methods=["POST"]),
    Route("/api/v1/markers", get_markers, methods=["GET"]),
    Route("/api/v1/markers", save_markers, methods=["POST"]),
]
