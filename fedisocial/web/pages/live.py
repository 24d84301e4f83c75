"""New posts and notifications, live: the server-sent events behind a feed's "N new posts" bar.

``GET /live?feed=home|local|federated|tag:NAME`` is a ``text/event-stream`` for the page of
that feed (``static/app.js`` opens one per ``[data-feed]``). It sends

- ``event: update`` / ``data: {"id": "…"}`` when a post (or a boost: the id of its card)
  arrives that the feed would now list for this reader, but the reader's own, which the
  composer already put on the page;
- ``event: notification`` / ``data: {"unread": N}`` when the signed-in person gets a
  notification (N: the navigation's unread count, at most :data:`~.base.UNREAD_LIMIT`);
- a ``:thump`` comment every :data:`HEARTBEAT_SECONDS`, as Mastodon's streaming server does,
  so proxies keep it open; and it ends when the session does (signed out elsewhere), so the
  browser's reconnection is refused (401) and stops.

It listens to the same :class:`~fedisocial.social.streaming.StreamHub` as the streaming
API (``user`` for home, ``public:local``, ``public`` and ``hashtag``, and
``user:notification`` beside a public feed for a signed-in reader): one reader of the
tables per process for every stream, no database connection held while a stream idles.
Home needs a session; the public feeds are open to anyone, as their pages are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from fedisocial.auth.sessions import SessionStore
from fedisocial.errors import BadRequest, Unauthorized
from fedisocial.social import notifications
from fedisocial.social.streaming import Delivery, Subscription, new_inbox
from fedisocial.social.timeline import tag_name
from fedisocial.store.models import Actor
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import UNREAD_LIMIT
from fedisocial.web.session import current_session

if TYPE_CHECKING:  # the app imports the web layer, not the reverse
    from fedisocial.app import Context

__all__ = ["HEARTBEAT_SECONDS", "Reader", "events", "routes", "streams_of"]

#: seconds between ``:thump`` comments (Mastodon's streaming server: 15)
HEARTBEAT_SECONDS = 15.0
_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
_PUBLIC = {"local": "public:local", "federated": "public"}


@dataclass(frozen=True)
class Reader:
    """Who reads a live feed: the account, and the sign-in session it came with."""

    actor: Actor
    session_id: int


def streams_of(feed: str, actor: Actor | None) -> list[Subscription]:
    """The hub's subscriptions (sharing one queue) that make ``feed``'s live events."""
    queue = new_inbox()
    if feed == "home":
        if actor is None:
            raise Unauthorized("Sign in to follow your home feed live")
        return [Subscription("user", actor, queue=queue)]
    if feed in _PUBLIC:
        found = [Subscription(_PUBLIC[feed], actor, queue=queue)]
    elif feed.startswith("tag:") and tag_name(feed.removeprefix("tag:")):
        found = [Subscription("hashtag", actor, feed.removeprefix("tag:"), queue)]
    else:
        raise BadRequest("feed is home, local, federated or tag:NAME")
    if actor is not None:  # the navigation's badge, on every page of the app
        found.append(Subscription("user:notification", actor, queue=queue))
    return found


def _update(delivery: Delivery, actor: Actor | None) -> bytes | None:
    post = delivery.post
    if post is None or (actor is not None and post.actor_uri == actor.uri):
        return None  # one's own posts and boosts: the composer or the button showed them
    return b"event: update\ndata: " + orjson.dumps({"id": str(post.id)}) + b"\n\n"


async def _notification(context: Context, actor: Actor) -> bytes:
    unread = await notifications.unread_count(context.db, actor, limit=UNREAD_LIMIT)
    return b"event: notification\ndata: " + orjson.dumps({"unread": unread}) + b"\n\n"


async def events(context: Context, subscriptions: list[Subscription], reader: Reader | None,
                 *, heartbeat: float = HEARTBEAT_SECONDS) -> AsyncIterator[bytes]:  # fmt: skip
    """The stream's bytes, from ``:)`` (subscribed from here on) until the session ends or
    the hub drops a reader that fell too far behind; unsubscribes however it stops."""
    actor = reader.actor if reader is not None else None
    queue = subscriptions[0].queue
    for subscription in subscriptions:
        await context.streams.subscribe(subscription)
    try:
        yield b":)\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                if reader is not None and not await SessionStore(context.db).alive(
                    reader.session_id
                ):
                    return
                yield b":thump\n\n"
                continue
            if item is None:  # too far behind: end it, the browser reconnects
                return
            delivery = item[1]
            if delivery.event == "update":
                chunk = _update(delivery, actor)
            elif delivery.event == "notification" and actor is not None:
                chunk = await _notification(context, actor)
            else:  # edits and deletions: the page shows them when it is reloaded
                chunk = None
            if chunk is not None:
                yield chunk
    finally:
        for subscription in subscriptions:
            context.streams.unsubscribe(subscription)


async def live(request: Request) -> Response:
    session = await current_session(request)
    reader = Reader(session.actor, session.id) if session is not None else None
    subscriptions = streams_of(request.query_params.get("feed", ""),
                               reader.actor if reader else None)  # fmt: skip
    return StreamingResponse(events(get_context(request), subscriptions, reader),
                             media_type="text/event-stream", headers=_HEADERS)  # fmt: skip


routes: list[BaseRoute] = [Route("/live", live)]
