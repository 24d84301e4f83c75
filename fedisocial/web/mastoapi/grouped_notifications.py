"""Grouped notifications, Mastodon 4.3's ``/api/v2/notifications``
(https://docs.joinmastodon.org/methods/grouped_notifications/).

What modern apps (Phanpy, Elk, Ivory, Mastodon's own; masto.js ``v2.notifications``)
list: likes and boosts of one post, and follows, within an hour, come as one
NotificationGroup with its count and up to 8 accounts; the answer is a
GroupedNotificationsResults, ``{accounts, statuses, notification_groups}``, each account
and status once. Groups are made by :mod:`fedisocial.social.notifications`
(:func:`~fedisocial.social.notifications.grouped_page`), with the v1 listing's rules:
only what the owner may read, our own type only when ``types[]`` names it.

Pages go by notification id as Mastodon's controller does: ``Link`` has ``next``
(``max_id``: the page's oldest group edge) and ``prev`` (``min_id``: its newest) whenever
the page has a group. As Mastodon sends it, ``most_recent_notification_id`` is a number
(the Mastodon iOS app decodes it as one), every other id a string. ``include_filtered``
is accepted: we filter no notifications away (no notification requests).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import BadRequest, NotFound
from fedisocial.social import notifications
from fedisocial.social.notifications import GENERATION, GROUPABLE, Group
from fedisocial.store.models import Actor
from fedisocial.web.auth import require_user
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import (
    Params,
    json_response,
    page_links,
    page_response,
    paging,
    read_params,
)
from fedisocial.web.mastoapi.entities import Entities, iso_time
from fedisocial.web.mastoapi.timelines import read_listing

__all__ = ["routes"]

#: groups a page (Mastodon's DEFAULT_NOTIFICATIONS_LIMIT), accounts a page, unread_count's cap
_PAGE = 40
_ACCOUNTS = 40
_COUNT_DEFAULT, _COUNT_MAX = 100, 1000
_EXPAND = ("full", "partial_avatars")
#: what a partial account has (Mastodon's PartialAccountSerializer)
_PARTIAL = ("id", "acct", "locked", "bot", "url", "avatar", "avatar_static")


def _filters(params: Params) -> dict[str, Any]:
    return {"types": params.strings("types"), "exclude": params.strings("exclude_types"),
            "account_id": params.number("account_id"),
            "grouped": params.strings("grouped_types") or GROUPABLE}  # fmt: skip


def _expand(params: Params) -> str:
    expand = params.text("expand_accounts") or "full"
    if expand not in _EXPAND:
        raise BadRequest(f"Invalid value for 'expand_accounts': {expand!r}, "
                         "allowed values are 'full' and 'partial_avatars'")  # fmt: skip
    return expand


def _group(group: Group, status: dict[str, Any] | None, paginated: bool) -> dict[str, Any]:
    latest = group.latest.notification
    entity: dict[str, Any] = {
        "group_key": group.key,
        "notifications_count": group.count,
        "type": latest.type,
        "most_recent_notification_id": latest.id,
    }
    if paginated:
        entity["page_min_id"] = str(group.page_min_id)
        entity["page_max_id"] = str(latest.id)
        entity["latest_page_notification_at"] = iso_time(latest.created_at)
    entity["sample_account_ids"] = [str(actor.id) for actor in group.accounts]
    if status is not None:
        entity["status_id"] = status["id"]
    if latest.type == GENERATION:
        entity["generation_id"] = latest.key.rpartition(":")[2]
    return entity


async def _results(request: Request, viewer: Actor, groups: list[Group], *,
                   expand: str = "full", paginated: bool = True) -> dict[str, Any]:  # fmt: skip
    """A GroupedNotificationsResults; a group whose post cannot be shown is left out."""
    context = get_context(request)
    entities = Entities(context.db, context.urls, viewer)
    posts = list({g.latest.post.id: g.latest.post for g in groups if g.latest.post}.values())
    statuses = {status["id"]: status for status in await entities.statuses(posts)}
    shown, out = [], []
    for group in groups:
        post = group.latest.post
        status = statuses.get(str(post.id)) if post is not None else None
        if post is None or status is not None:
            shown.append(group)
            out.append(_group(group, status, paginated))
    # in full: every sample account, or (partial_avatars) each group's newest; and the
    # statuses' authors, as Mastodon's presenter lists them
    full_actors = [a for g in shown for a in (g.accounts if expand == "full" else g.accounts[:1])]
    others = [a for g in shown for a in g.accounts[1:]] if expand != "full" else []
    unique = list({actor.id: actor for actor in [*full_actors, *others]}.values())
    rendered = dict(zip([a.id for a in unique], await entities.accounts(unique), strict=True))
    accounts = {str(a.id): rendered[a.id] for a in full_actors}
    for status in statuses.values():
        accounts.setdefault(status["account"]["id"], status["account"])
    results: dict[str, Any] = {"accounts": list(accounts.values())}
    if expand != "full":
        results["partial_accounts"] = list({
            str(a.id): {name: rendered[a.id][name] for name in _PARTIAL}
            for a in others if str(a.id) not in accounts
        }.values())  # fmt: skip
    results["statuses"] = list(statuses.values())
    results["notification_groups"] = out
    return results


async def index(request: Request) -> Response:
    viewer = await require_user(request, "read:notifications")
    params = await read_params(request)
    expand = _expand(params)
    cursor, limit = paging(params, _PAGE)
    page = await notifications.grouped_page(get_context(request).db, viewer, cursor, limit,
                                            **_filters(params))  # fmt: skip
    results = await _results(request, viewer, page.items, expand=expand)
    return json_response(results, headers=page_links(request, page))


async def show(request: Request) -> Response:
    viewer = await require_user(request, "read:notifications")
    key = str(request.path_params["group_key"])
    found = await notifications.find_group(get_context(request).db, viewer, key)
    results = await _results(request, viewer, [found], paginated=False) if found else None
    if results is None or not results["notification_groups"]:
        raise NotFound("Record not found")
    return json_response(results)


async def dismiss(request: Request) -> Response:
    viewer = await require_user(request, "write:notifications")
    key = str(request.path_params["group_key"])
    await notifications.dismiss_group(get_context(request).db, viewer, key)
    return json_response({})


async def accounts(request: Request) -> Response:
    """The accounts of a group's notifications, newest first, paged by notification id."""
    viewer = await require_user(request, "read:notifications")
    params = await read_params(request)
    key = str(request.path_params["group_key"])
    page = await read_listing(request, params, notifications.listing(viewer, group=key),
                              _ACCOUNTS)  # fmt: skip
    context = get_context(request)
    actors = [item.actor for item in page.items]
    rendered = await Entities(context.db, context.urls, viewer).accounts(actors)
    return page_response(request, page, rendered)


async def unread_count(request: Request) -> Response:
    """How many groups are newer than the notifications marker, at most ``limit``."""
    viewer = await require_user(request, "read:notifications")
    params = await read_params(request)
    limit = max(1, min(params.number("limit", _COUNT_DEFAULT) or _COUNT_DEFAULT, _COUNT_MAX))
    count = await notifications.unread_count(get_context(request).db, viewer, limit=limit,
                                             **_filters(params))  # fmt: skip
    return json_response({"count": count})


routes: list[BaseRoute] = [
    Route("/api/v2/notifications", index, methods=["GET"]),
    Route("/api/v2/notifications/unread_count", unread_count, methods=["GET"]),
    Route("/api/v2/notifications/{group_key}", show, methods=["GET"]),
    Route("/api/v2/notifications/{group_key}/dismiss", dismiss, methods=["POST"]),
    Route("/api/v2/notifications/{group_key}/accounts", accounts, methods=["GET"]),
]
