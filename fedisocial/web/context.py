"""What every handler needs, built once by the app and reached through the request."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from jinja2 import Environment
from starlette.requests import Request

from fedisocial.ap.client import FederationClient
from fedisocial.config import Settings
from fedisocial.delivery import Delivery
from fedisocial.inbox import Inbox
from fedisocial.jobs import JobQueue
from fedisocial.media import MediaStore
from fedisocial.outbox import Outbox
from fedisocial.signatures import SignatureVerifier
from fedisocial.store.db import Database
from fedisocial.studio import Studio
from fedisocial.urls import Urls

__all__ = ["ByteCache", "Context", "get_context"]


class ByteCache:
    """A small TTL cache of rendered response bodies.

    Actor, WebFinger and NodeInfo documents are read far more often than they
    change (a boosted post makes hundreds of servers fetch the same actor), so
    they are served from memory for a few seconds.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._refreshing: dict[str, asyncio.Future[bytes]] = {}

    async def get_or_render(self, key: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        """Fresh bytes from memory; else one render per key at a time.

        While an expired entry is re-rendered, the stale bytes are served (no
        request waits, and a burst of requests causes one render, not one each).
        """
        hit = self._entries.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        pending = self._refreshing.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._refresh(key, render))
            self._refreshing[key] = pending
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        if hit is not None:
            return hit[1]
        return await asyncio.shield(pending)

    async def _refresh(self, key: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            body = await render()
        except BaseException:
            self._entries.pop(key, None)  # e.g. the user is gone: stop serving the old bytes
            raise
        finally:
            del self._refreshing[key]
        self._entries[key] = (time.monotonic() + self.ttl, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return body

    def invalidate(self, key: str) -> None:
        self._entries.pop(key, None)


@dataclass
class Context:
    settings: Settings
    urls: Urls
    db: Database
    client: FederationClient
    queue: JobQueue
    templates: Environment
    outbox: Outbox
    delivery: Delivery
    inbox: Inbox
    media: MediaStore
    studio: Studio
    verifier: SignatureVerifier
    cache: ByteCache = field(default_factory=lambda: ByteCache(ttl=10.0))

    async def close(self, *, database: bool = True) -> None:
        """Release connections: the image model's, the HTTP pool, the database's."""
        close_provider = getattr(self.studio.provider, "aclose", None)
        if close_provider is not None:
            await close_provider()
        await self.client.aclose()
        if database:
            await self.db.close()


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context
