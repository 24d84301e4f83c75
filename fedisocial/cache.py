"""In-memory caches: a bounded TTL map, and a byte cache that renders once per key.

Both live in one process (each web process or worker has its own); nothing
here is shared or persistent, so a restart simply starts cold.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["ByteCache", "TTLCache"]

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """Up to ``max_entries`` values, each fresh for ``ttl`` seconds; the oldest set goes first."""

    def __init__(
        self, ttl: float, max_entries: int = 10_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value of ``key`` while fresh, else None."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] > self._clock() else None

    def stale(self, key: K) -> V | None:
        """The value of ``key`` even when expired (None when never set or evicted)."""
        hit = self._entries.get(key)
        return None if hit is None else hit[1]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class ByteCache:
    """Rendered response bodies, kept for ``ttl`` seconds.

    Actor, WebFinger and NodeInfo documents are read far more often than they
    change (a boosted post makes hundreds of servers fetch the same actor), so
    they are served from memory for a few seconds.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._entries: TTLCache[str, bytes] = TTLCache(ttl, max_entries)
        self._refreshing: dict[str, asyncio.Future[bytes]] = {}

    async def get_or_render(self, key: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        """Fresh bytes from memory; else one render per key at a time.

        While an expired entry is re-rendered, the stale bytes are served (no
        request waits, and a burst of requests causes one render, not one each).
        """
        fresh = self._entries.get(key)
        if fresh is not None:
            return fresh
        stale = self._entries.stale(key)
        pending = self._refreshing.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._refresh(key, render))
            self._refreshing[key] = pending
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        if stale is not None:
            return stale
        return await asyncio.shield(pending)

    async def _refresh(self, key: str, render: Callable[[], Awaitable[bytes]]) -> bytes:
        try:
            body = await render()
        except BaseException:
            self._entries.pop(key)  # e.g. the user is gone: stop serving the old bytes
            raise
        finally:
            del self._refreshing[key]
        self._entries.put(key, body)
        return body
