"""What the buttons of a card do: like, boost, bookmark (and undo each), delete one's post.

Each button is a small form (``POST /statuses/ID/ACTION`` with the CSRF value), so it
works without JavaScript: the answer goes back to the page, at the card. The app's
script sends the same form with ``Accept: application/json`` and gets the post's new
state (``favourited``, counts, …) to update the card in place. The actions are those
of :mod:`fedisocial.social.statuses`, as the Mastodon API's, so they federate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import NotFound
from fedisocial.social import bookmarks, statuses
from fedisocial.social.outbox import Outbox
from fedisocial.social.statuses import readable_status
from fedisocial.store.models import Actor, Object
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.entities import Entities
from fedisocial.web.pages.base import done, read_form, signed_in

__all__ = ["routes"]

#: what each button does, through the outbox (so that it federates) or its database
_ACTIONS: dict[str, Callable[[Outbox, Actor, Object], Awaitable[object]]] = {
    "favourite": statuses.favourite,
    "unfavourite": statuses.unfavourite,
    "reblog": lambda outbox, me, post: statuses.reblog(outbox, me, post, "public"),
    "unreblog": statuses.unreblog,
    "bookmark": lambda outbox, me, post: bookmarks.bookmark(outbox.db, me.id, post.id),
    "unbookmark": lambda outbox, me, post: bookmarks.unbookmark(outbox.db, me.id, post.id),
}


def _status_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("This post does not exist (any more)")
    return int(raw)


async def _state(request: Request, me: Actor, post: Object) -> dict[str, Any]:
    context = get_context(request)
    async with context.db.session() as session:
        fresh = await session.get(Object, post.id)
    entity = await Entities(context.db, context.urls, me).status(fresh) if fresh else None
    if entity is None:
        return {"id": str(post.id), "deleted": True}
    keys = ("favourited", "favourites_count", "reblogged", "reblogs_count", "bookmarked",
            "replies_count")  # fmt: skip
    return {"id": entity["id"], **{key: entity[key] for key in keys}}


async def act(request: Request) -> Response:
    """``POST /statuses/ID/ACTION``: the action on the post (a boost stands for its post)."""
    me = await signed_in(request)
    await read_form(request, max_fields=4)
    action = _ACTIONS.get(request.path_params["action"])
    if action is None:
        raise NotFound(f"There is no action {request.path_params['action']!r} on posts")
    db = get_context(request).db
    post = await statuses.target_of(db, await readable_status(db, _status_id(request), me.uri))
    await action(get_context(request).outbox, me, post)
    return done(request, await _state(request, me, post), anchor=f"post-{post.id}")


async def delete(request: Request) -> Response:
    """``POST /statuses/ID/delete``: one's own post goes (the Delete federates)."""
    me = await signed_in(request)
    await read_form(request, max_fields=4)
    context = get_context(request)
    post = await readable_status(context.db, _status_id(request), me.uri)
    if post.actor_uri != me.uri or not post.local:
        raise NotFound("This post is not yours to delete")
    if post.type == "Announce":
        await statuses.unreblog(context.outbox, me, await statuses.target_of(context.db, post))
    else:
        await statuses.delete_status(context.outbox, me, post)
    return done(request, {"id": str(post.id), "deleted": True})


routes: list[BaseRoute] = [
    Route("/statuses/{id}/delete", delete, methods=["POST"]),
    Route("/statuses/{id}/{action}", act, methods=["POST"]),
]
