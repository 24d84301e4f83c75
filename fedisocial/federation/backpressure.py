"""Inbox backpressure: refuse new deliveries while too much received work waits.

Past ``inbox_max_backlog`` due ``process_activity`` jobs (queued and due, or
running), the inbox answers 503 with ``Retry-After`` before it reads the body
or verifies the signature, so a flood costs next to nothing and the latency of
processing stays bounded. Senders keep the activity and try again: Mastodon
retries every 5xx on its own backoff, GoToSocial and our own delivery honour
``Retry-After``. Once the backlog is back under the bound, the inbox answers
202 again.

The figure is read from the jobs table at most once per ``every`` seconds per
process (:meth:`~fedisocial.jobs.JobQueue.backlog`, a scan bounded by the
bound), one read at a time; the activities this process queued since are added
to it, so one process keeps to the bound between reads. ``Retry-After`` is the
time the workers need for what waits, at the drain rate measured between two
reads, clamped to [:data:`MIN_WAIT`, :data:`MAX_WAIT`] (the cap while no drain
has been seen: the workers may be stalled).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fedisocial.errors import ServiceUnavailable
from fedisocial.jobs import JobQueue

__all__ = ["MAX_WAIT", "MIN_WAIT", "Backpressure"]

#: shortest and longest Retry-After we send, in seconds
MIN_WAIT = 10
MAX_WAIT = 300


@dataclass(frozen=True)
class _Reading:
    at: float
    backlog: int


class Backpressure:
    """Whether the inbox takes more work now; ``bound`` 0 means always."""

    def __init__(
        self,
        queue: JobQueue,
        kind: str,
        bound: int,
        *,
        every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.kind = kind
        self.bound = bound
        self.every = every
        self._clock = clock
        self._last: _Reading | None = None
        self._reading: asyncio.Future[_Reading] | None = None
        #: activities this process queued since the last reading
        self._accepted = 0
        #: jobs processed per second, as last measured
        self._rate: float | None = None

    async def check(self) -> None:
        """Raise :class:`ServiceUnavailable` (503, Retry-After) while past the bound."""
        if self.bound <= 0:
            return
        backlog = await self.backlog()
        if backlog > self.bound:
            wait = self.retry_after(backlog)
            raise ServiceUnavailable(
                f"this server is busy: {backlog} activities waiting; retry after {wait} s",
                retry_after=wait,
            )

    def accepted(self) -> None:
        """Count one activity this process queued (until the next reading sees it)."""
        self._accepted += 1

    def retry_after(self, backlog: int) -> int:
        """Seconds the workers need for ``backlog`` jobs at the measured rate, clamped."""
        if not self._rate:
            return MAX_WAIT
        return max(MIN_WAIT, min(MAX_WAIT, math.ceil(backlog / self._rate)))

    async def backlog(self) -> int:
        """The due jobs of our kind, as last read, plus those this process queued since."""
        reading = self._last
        if reading is None or self._clock() - reading.at >= self.every:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read())
                self._reading.add_done_callback(lambda f: f.cancelled() or f.exception())
            reading = await asyncio.shield(self._reading)
        return reading.backlog + self._accepted

    async def _read(self) -> _Reading:
        try:
            backlog = await self.queue.backlog(self.kind, self.bound + 1)
        finally:
            self._reading = None
        reading = _Reading(self._clock(), backlog)
        accepted, self._accepted = self._accepted, 0
        previous, self._last = self._last, reading
        if previous is not None:
            drained = previous.backlog + accepted - backlog
            if drained > 0 and reading.at > previous.at:
                self._rate = drained / (reading.at - previous.at)
        return reading
