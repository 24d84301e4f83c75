"""What every handler needs, built once by the app and reached through the request."""

from __future__ import annotations

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
from fedisocial.outbox import Outbox
from fedisocial.store.db import Database
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

    async def get_or_render(self, key: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        body = await render()
        self._entries[key] = (now + self.ttl, body)
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
    cache: ByteCache = field(default_factory=lambda: ByteCache(ttl=10.0))


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context
