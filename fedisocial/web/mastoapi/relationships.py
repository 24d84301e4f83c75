"""Follows, blocks and mutes, and the Relationship entity that answers them.

https://docs.joinmastodon.org/methods/accounts/#follow (and ``/follow_requests``,
``/blocks``, ``/mutes``). As on Mastodon, every action answers the relationship as
it is now, and doing it twice is not an error. Scopes are Mastodon's granular ones,
which ``follow`` (its old name for them) covers too. ``reblogs``, ``notify`` and
``languages`` of a follow are accepted and not kept: every boost shows, no one
is notified of new posts (``showing_reblogs`` is true while following).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.social import collections, mutes, relations
from fedisocial.social.relations import Relationship
from fedisocial.store.models import Actor
from fedisocial.web.auth import require_user
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.accounts import account_page, entities, target, window
from fedisocial.web.mastoapi.common import json_response, read_params
from fedisocial.web.mastoapi.entities import iso_time

__all__ = ["relationship_entity", "routes"]

_ACCOUNTS = "/api/v1/accounts"
#: ids a relationships or familiar_followers request may ask about (Mastodon's figure)
_MAX_IDS = 80


def relationship_entity(found: Relationship) -> dict[str, Any]:
    """Mastodon's Relationship (https://docs.joinmastodon.org/entities/Relationship/)."""
    return {
        "id": str(found.actor_id),
        "following": found.following,
        "showing_reblogs": found.following or found.requested,
        "notifying": False,
        "languages": None,
        "followed_by": found.followed_by,
        "blocking": found.blocking,
        "blocked_by": found.blocked_by,
        "muting": found.muting,
        "muting_notifications": found.muting_notifications,
        "requested": found.requested,
        "requested_by": found.requested_by,
        "domain_blocking": False,
        "endorsed": False,
        "note": "",
    }


async def _answer(request: Request, actor: Actor, other: Actor) -> Response:
    found = await relations.relationships(get_context(request).db, actor, [other])
    return json_response(relationship_entity(found[0]))


async def _asked_accounts(request: Request) -> list[Actor]:
    """The accounts of ``id[]`` we know, in the order asked, each once (others are left out)."""
    params = await read_params(request)
    wanted = [int(i) for i in params.strings("id") if i.isdigit() and len(i) <= 18]
    return await relations.actors_by_id(get_context(request).db, wanted[:_MAX_IDS])


# -- reading --------------------------------------------------------------------------------------


async def relationships(request: Request) -> Response:
    actor = await require_user(request, "read:follows")
    others = await _asked_accounts(request)
    found = await relations.relationships(get_context(request).db, actor, others)
    return json_response([relationship_entity(r) for r in found])


async def familiar_followers(request: Request) -> Response:
    actor = await require_user(request, "read:follows")
    others = await _asked_accounts(request)
    known = await relations.familiar_followers(get_context(request).db, actor, others)
    render = entities(request, actor)
    return json_response([{"id": str(other.id), "accounts": await render.accounts(known[other.id])}
                          for other in others])  # fmt: skip


async def follow_requests(request: Request) -> Response:
    actor = await require_user(request, "read:follows")
    cursor, limit = window(await read_params(request))
    db = get_context(request).db
    page = await collections.read_page(db, collections.pending_followers(actor.uri), cursor, limit)
    asking = collections.Page([str(item["actor"]) for item in page.items], page.next_max_id,
                              page.prev_min_id)  # fmt: skip
    return await account_page(request, actor, asking)


async def blocks(request: Request) -> Response:
    actor = await require_user(request, "read:blocks")
    cursor, limit = window(await read_params(request))
    page = await collections.read_page(get_context(request).db, relations.blocked(actor.uri),
                                       cursor, limit)  # fmt: skip
    return await account_page(request, actor, page)


async def muted(request: Request) -> Response:
    actor = await require_user(request, "read:mutes")
    cursor, limit = window(await read_params(request))
    db = get_context(request).db
    page = await collections.read_page(db, mutes.muted(actor.id), cursor, limit)
    ends = await mutes.mutes_of(db, actor.id, page.items)
    extra = {uri: {"mute_expires_at": iso_time(mute.expires_at)} for uri, mute in ends.items()}
    return await account_page(request, actor, page, extra)


# -- acting ----------------------------------------------------------------------------------------


async def follow(request: Request) -> Response:
    actor = await require_user(request, "write:follows")
    other = await target(request)
    await read_params(request)  # reblogs, notify, languages: accepted, not kept
    await relations.follow(get_context(request).outbox, actor, other)
    return await _answer(request, actor, other)


async def unfollow(request: Request) -> Response:
    actor = await require_user(request, "write:follows")
    other = await target(request)
    await relations.unfollow(get_context(request).outbox, actor, other)
    return await _answer(request, actor, other)


async def remove_from_followers(request: Request) -> Response:
    actor = await require_user(request, "write:follows")
    other = await target(request)
    await relations.remove_from_followers(get_context(request).outbox, actor, other)
    return await _answer(request, actor, other)


async def block(request: Request) -> Response:
    actor = await require_user(request, "write:blocks")
    other = await target(request)
    await relations.block(get_context(request).outbox, actor, other)
    return await _answer(request, actor, other)


async def unblock(request: Request) -> Response:
    actor = await require_user(request, "write:blocks")
    other = await target(request)
    await relations.unblock(get_context(request).outbox, actor, other)
    return await _answer(request, actor, other)


async def mute(request: Request) -> Response:
    actor = await require_user(request, "write:mutes")
    other = await target(request)
    params = await read_params(request)
    await mutes.mute(get_context(request).db, actor, other,
                     notifications=params.flag("notifications", default=True),
                     duration=params.number("duration") or None)  # fmt: skip
    return await _answer(request, actor, other)


async def unmute(request: Request) -> Response:
    actor = await require_user(request, "write:mutes")
    other = await target(request)
    await mutes.unmute(get_context(request).db, actor, other)
    return await _answer(request, actor, other)


async def _answer_request(request: Request, accept: bool) -> Response:
    actor = await require_user(request, "write:follows")
    other = await target(request)
    await relations.answer_follow_request(get_context(request).outbox, actor, other,
                                          accept=accept)  # fmt: skip
    return await _answer(request, actor, other)


async def authorize(request: Request) -> Response:
    return await _answer_request(request, accept=True)


async def reject(request: Request) -> Response:
    return await _answer_request(request, accept=False)


_ACTIONS = {"follow": follow, "unfollow": unfollow, "remove_from_followers": remove_from_followers,
            "block": block, "unblock": unblock, "mute": mute, "unmute": unmute}  # fmt: skip

routes: list[BaseRoute] = [
    Route(f"{_ACCOUNTS}/relationships", relationships, methods=["GET"]),
    Route(f"{_ACCOUNTS}/familiar_followers", familiar_followers, methods=["GET"]),
    *(
        Route(f"{_ACCOUNTS}/{{id:int}}/{name}", handler, methods=["POST"])
        for name, handler in _ACTIONS.items()
    ),
    Route("/api/v1/follow_requests", follow_requests, methods=["GET"]),
    Route("/api/v1/follow_requests/{id:int}/authorize", authorize, methods=["POST"]),
    Route("/api/v1/follow_requests/{id:int}/reject", reject, methods=["POST"]),
    Route("/api/v1/blocks", blocks, methods=["GET"]),
    Route("/api/v1/mutes", muted, methods=["GET"]),
]
