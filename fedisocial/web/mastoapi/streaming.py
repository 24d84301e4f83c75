"""Mastodon's streaming API: a WebSocket, and server-sent events, of what happens live.

- ``GET /api/v1/streaming`` as a WebSocket (``?stream=user`` to start with one;
  then ``{"type": "subscribe", "stream": "hashtag", "tag": "cats"}`` and
  ``"unsubscribe"``); messages ``{"stream": ["user"], "event": "update",
  "payload": "<the Status as a JSON string>"}``.
- ``GET /api/v1/streaming/user``, ``/user/notification``, ``/public``,
  ``/public/local``, ``/public/remote`` (each also ``/media``), ``/hashtag`` and
  ``/hashtag/local`` (``?tag=``) as server-sent events: ``event: update`` and
  ``data: …`` lines, a ``:thump`` comment every 15 s to keep proxies from closing it.
- ``GET /api/v1/streaming/health``: ``OK``.

The token comes as ``Authorization: Bearer``, ``?access_token=`` or, for browsers'
WebSockets, ``Sec-WebSocket-Protocol`` (the server answers with the same
protocol, as Mastodon does). Public streams need no token. Events are
``update``, ``notification``, ``delete`` (payload: the status id) and
``status.update``. What each stream shows is :mod:`fedisocial.social.streaming`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from fedisocial.auth.tokens import Grant, authenticate_bearer, require_scopes
from fedisocial.errors import BadRequest, FedisocialError, Unauthorized
from fedisocial.social import notifications
from fedisocial.social.notifications import MASTODON_TYPES
from fedisocial.social.streaming import USER_STREAMS, Delivery, Inbox, Subscription, new_inbox
from fedisocial.social.timeline import tag_name
from fedisocial.store.models import Actor
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.entities import Entities

__all__ = ["routes"]

_HEARTBEAT_SECONDS = 15.0
#: the scopes each stream needs of a token (Mastodon's streaming server); others read:statuses
_SCOPES = {"user": ("read:statuses", "read:notifications"),
           "user:notification": ("read:notifications",)}  # fmt: skip


def _token(connection: HTTPConnection) -> str | None:
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if connection.query_params.get("access_token"):
        return connection.query_params["access_token"]
    protocol = connection.headers.get("sec-websocket-protocol", "")
    return protocol.split(",")[0].strip() or None


async def _viewer(connection: HTTPConnection) -> Actor | None:
    token = _token(connection)
    if token is None:
        return None
    grant = await authenticate_bearer(get_context(connection).db, token)
    connection.state.streaming_grant = grant
    return grant.actor if isinstance(grant, Grant) else None  # an app's own token: nobody


def _subscription(connection: HTTPConnection, viewer: Actor | None, stream: str,
                  tag: str | None, queue: Inbox) -> Subscription:  # fmt: skip
    """A subscription the viewer's token allows (401 without one for a user stream)."""
    if viewer is None and stream in USER_STREAMS:
        raise Unauthorized("the user stream needs a user's access token")
    if hasattr(connection.state, "streaming_grant"):
        require_scopes(connection.state.streaming_grant, _SCOPES.get(stream, ("read:statuses",)))
    return Subscription(stream, viewer, tag, queue)


async def _payload(entities: Entities, delivery: Delivery) -> str | None:
    """The message's payload: a JSON string of the entity, the id for ``delete``; None for
    what the viewer cannot be shown (gone since, or our own notification type, which apps
    do not know)."""
    if delivery.event == "delete":
        return str(delivery.deleted_id)
    if delivery.post is not None:
        status = await entities.status(delivery.post)
        return orjson.dumps(status).decode() if status is not None else None
    note, viewer = delivery.notification, entities.viewer
    if note is not None and viewer is not None and note.type in MASTODON_TYPES:
        found = await notifications.find(entities.db, viewer, note.id)
        shown = await entities.notifications([found]) if found is not None else []
        return orjson.dumps(shown[0]).decode() if shown else None
    return None


# -- server-sent events -----------------------------------------------------------------


async def _events(request: Request, subscription: Subscription) -> AsyncIterator[bytes]:
    context = get_context(request)
    entities = Entities(context.db, context.urls, subscription.viewer)
    await context.streams.subscribe(subscription)
    try:
        yield b":)\n"
        while True:
            try:
                item = await asyncio.wait_for(subscription.queue.get(), _HEARTBEAT_SECONDS)
            except TimeoutError:
                yield b":thump\n\n"
                continue
            if item is None:  # too far behind: end it, the app reconnects
                return
            payload = await _payload(entities, item[1])
            if payload is not None:
                yield f"event: {item[1].event}\ndata: {payload}\n\n".encode()
    finally:
        context.streams.unsubscribe(subscription)


async def event_stream(request: Request) -> Response:
    suffix = request.path_params.get("stream", "")
    stream = suffix.replace("/", ":") if suffix else request.query_params.get("stream", "")
    if not stream:
        raise BadRequest("name a stream: /api/v1/streaming/user, /public, … or ?stream=")
    viewer = await _viewer(request)
    subscription = _subscription(request, viewer, stream, request.query_params.get("tag"),
                                 new_inbox())  # fmt: skip
    return StreamingResponse(
        _events(request, subscription), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )  # fmt: skip


async def health(request: Request) -> Response:
    return PlainTextResponse("OK")


# -- the WebSocket ------------------------------------------------------------------------


class _Socket:
    """One WebSocket client: its subscriptions share one queue."""

    def __init__(self, websocket: WebSocket, viewer: Actor | None) -> None:
        self.websocket = websocket
        self.viewer = viewer
        self.queue = new_inbox()
        self.subscriptions: dict[tuple[str, str | None], Subscription] = {}
        context = get_context(websocket)
        self.hub = context.streams
        self.entities = Entities(context.db, context.urls, viewer)

    async def subscribe(self, stream: str, tag: str | None) -> None:
        subscription = _subscription(self.websocket, self.viewer, stream, tag, self.queue)
        key = (subscription.stream, subscription.tag)
        if key not in self.subscriptions:
            self.subscriptions[key] = await self.hub.subscribe(subscription)

    def unsubscribe(self, stream: str, tag: str | None) -> None:
        key = (stream, tag_name(tag) if tag else None)
        found = self.subscriptions.pop(key, None)
        if found is not None:
            self.hub.unsubscribe(found)

    async def error(self, message: str) -> None:
        await self.websocket.send_text(orjson.dumps({"error": message}).decode())

    async def read(self) -> None:
        """Subscribe and unsubscribe as the client asks."""
        while True:
            text = await self.websocket.receive_text()
            try:
                message: Any = orjson.loads(text)
            except orjson.JSONDecodeError:
                await self.error('send JSON: {"type": "subscribe", "stream": "user"}')
                continue
            if not isinstance(message, dict) or message.get("type") not in (
                "subscribe",
                "unsubscribe",
            ):
                await self.error("unknown message: its type is subscribe or unsubscribe")
                continue
            stream, tag = str(message.get("stream") or ""), message.get("tag")
            tag = str(tag) if tag is not None else None
            try:
                if message["type"] == "subscribe":
                    await self.subscribe(stream, tag)
                else:
                    self.unsubscribe(stream, tag)
            except FedisocialError as exc:
                await self.error(exc.message)

    async def write(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                await self.websocket.close(code=1013, reason="fell too far behind; reconnect")
                return
            subscription, delivery = item
            payload = await _payload(self.entities, delivery)
            if payload is not None:
                message = {"stream": subscription.key, "event": delivery.event,
                           "payload": payload}  # fmt: skip
                await self.websocket.send_text(orjson.dumps(message).decode())

    def close(self) -> None:
        for subscription in self.subscriptions.values():
            self.hub.unsubscribe(subscription)
        self.subscriptions.clear()


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    body = orjson.dumps({"error": message})
    await websocket.send_denial_response(
        Response(body, status_code=status, media_type="application/json")
    )


async def websocket_stream(websocket: WebSocket) -> None:
    try:
        viewer = await _viewer(websocket)
        socket = _Socket(websocket, viewer)
        first = websocket.query_params.get("stream")
        if first:
            await socket.subscribe(first, websocket.query_params.get("tag"))
    except FedisocialError as exc:
        await _deny(websocket, exc.status, exc.message)
        return
    offered = websocket.headers.get("sec-websocket-protocol")
    await websocket.accept(subprotocol=offered.split(",")[0].strip() if offered else None)
    tasks = [asyncio.create_task(socket.read()), asyncio.create_task(socket.write())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
        socket.close()


routes: list[BaseRoute] = [
    WebSocketRoute("/api/v1/streaming", websocket_stream),
    WebSocketRoute("/api/v1/streaming/", websocket_stream),
    Route("/api/v1/streaming/health", health),
    Route("/api/v1/streaming", event_stream),
    Route("/api/v1/streaming/", event_stream),
    Route("/api/v1/streaming/{stream:path}", event_stream),
]
