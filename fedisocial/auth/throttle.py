"""Exponential back-off for password guesses, shared by every process through the database.

Each attempt is charged to its keys (the account named, the client address)
*before* the password is checked, so a burst of parallel guesses gets no more
tries than a sequence would. After ``free`` charged attempts a key must wait
1 s, then 2 s, 4 s … up to ``max_wait`` before the next one; a counter left
alone for a day is forgotten. A success resets the account's counter and
refunds its charge to the address (one valid account must not wipe the
address's record of guesses at other accounts).

Counters live in the ``throttle_counters`` table, updated by compare-and-swap
on the count, so two web processes (``serve --workers 2``) or hosts share them.
The sign-in of the web layer uses it, and so does the OAuth token endpoint.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from fedisocial.config import Settings
from fedisocial.errors import RateLimited
from fedisocial.store.db import Database
from fedisocial.store.models import ThrottleCounter, utcnow
from fedisocial.store.rows import upsert

__all__ = [
    "FORGET_AFTER",
    "Limit",
    "Throttle",
    "ThrottleKey",
    "account_key",
    "address_key",
    "backoff",
    "read_counter",
    "registration_key",
    "registration_throttle",
    "sign_in_throttle",
    "sign_up_key",
    "sign_up_throttle",
    "swap_counter",
    "token_throttle",
]

#: a counter with no attempt for this long starts again from zero
FORGET_AFTER = timedelta(days=1)
#: what a kind of key counts, in a 429's words
_COUNTS = {"account": "for this account", "address": "from this address",
           "registration": "from this address", "sign_up": "from this address"}  # fmt: skip
#: how often a charge is retried when another process changed the counter meanwhile
_SWAPS = 8
_MAX_KEY = 255


@dataclass(frozen=True)
class Limit:
    """How many attempts a kind of key has before it waits, and the longest wait."""

    free: int
    max_wait: float
    #: the first wait (seconds); each further attempt doubles it, up to ``max_wait``
    first_wait: float = 1.0


@dataclass(frozen=True)
class ThrottleKey:
    """One counter: ``kind`` (account, address) picks its :class:`Limit` and its wording."""

    kind: str
    value: str

    @property
    def row(self) -> str:
        return f"{self.kind}:{self.value}"[:_MAX_KEY]


def account_key(username: str) -> ThrottleKey:
    """The counter of an account name, known or not (case-insensitive, like sign-in)."""
    return ThrottleKey("account", username.lower())


def address_key(host: str) -> ThrottleKey:
    """The counter of a client address; IPv6 clients count per /64 (one home, one site)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ThrottleKey("address", host)
    if address.version == 6 and address.ipv4_mapped is None:
        return ThrottleKey("address", str(ipaddress.ip_network(f"{address}/64", strict=False)))
    return ThrottleKey("address", str(getattr(address, "ipv4_mapped", None) or address))


def registration_key(host: str) -> ThrottleKey:
    """The counter of client registrations (RFC 7591) from a client address."""
    return ThrottleKey("registration", address_key(host).value)


def backoff(failures: int, limit: Limit) -> float:
    """Seconds to wait after ``failures`` charged attempts: 0, then 1, 2, 4 … ``max_wait``
    (from ``first_wait`` instead of 1 when the limit says so)."""
    if failures < limit.free:
        return 0.0
    return float(min(limit.max_wait, limit.first_wait * 2 ** min(failures - limit.free, 62)))


class Throttle:
    """Admit or refuse attempts per key; the 429 says "too many ``{action}``" (e.g. "failed
    sign-ins") and whose ("for this account", "from this address")."""

    def __init__(
        self,
        db: Database,
        limits: dict[str, Limit],
        *,
        action: str = "failed sign-ins",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.limits = limits
        self.action = action
        self.clock = clock

    async def admit(self, keys: Sequence[ThrottleKey]) -> None:
        """Charge one attempt to every key, or raise RateLimited (with Retry-After) if one waits."""
        read = [(key, await read_counter(self.db, key.row)) for key in keys]
        for key, (failures, last) in read:
            self._refuse_if_waiting(key, failures, last, self.clock())
        for key, seen in read:
            await self._charge(key, seen)

    async def succeeded(self, keys: Sequence[ThrottleKey]) -> None:
        """The attempt was right: reset the account's counter, refund the others' charge.

        The account's row stays (at zero), so its next attempt is one update, not a new row.
        """
        async with self.db.transaction() as session:
            for key in keys:
                if key.kind == "account":
                    await session.execute(
                        update(ThrottleCounter)
                        .where(ThrottleCounter.key == key.row)
                        .values(failures=0)
                    )
                else:
                    await session.execute(
                        update(ThrottleCounter)
                        .where(ThrottleCounter.key == key.row, ThrottleCounter.failures > 0)
                        .values(failures=ThrottleCounter.failures - 1)
                    )

    @staticmethod
    def _counted(failures: int, last: datetime | None, now: datetime) -> int:
        return 0 if last is None or now - last >= FORGET_AFTER else failures

    def _refuse_if_waiting(
        self, key: ThrottleKey, failures: int, last: datetime | None, now: datetime
    ) -> None:
        wait = backoff(self._counted(failures, last, now), self.limits[key.kind])
        if last is None or not wait:  # (a concurrent attempt may have written a later ``last``)
            return
        left = (last + timedelta(seconds=wait) - now).total_seconds()
        if left > 0:
            seconds = math.ceil(left)
            raise RateLimited(
                f"too many {self.action} {_COUNTS[key.kind]}; try again in {seconds} s",
                retry_after=seconds,
            )

    async def _charge(self, key: ThrottleKey, seen: tuple[int, datetime | None]) -> None:
        """Add one attempt; refuse if a wait began meanwhile (``seen``: the counter as just
        read, read again only after a lost swap)."""

        def step(failures: int, last: datetime | None, now: datetime) -> tuple[int, datetime]:
            self._refuse_if_waiting(key, failures, last, now)
            return self._counted(failures, last, now) + 1, now

        await swap_counter(self.db, key.row, step, clock=self.clock, seen=seen,
                           busy=f"attempts at once {_COUNTS[key.kind]}")  # fmt: skip


Step = Callable[[int, datetime | None, datetime], tuple[int, datetime]]


async def read_counter(db: Database, row: str) -> tuple[int, datetime | None]:
    """The count and time of counter ``row``: (0, None) when it has none."""
    async with db.session() as session:
        found = (await session.execute(
            select(ThrottleCounter.failures, ThrottleCounter.last_attempt_at)
            .where(ThrottleCounter.key == row)
        )).first()  # fmt: skip
    return (found[0], found[1]) if found is not None else (0, None)


async def swap_counter(
    db: Database, row: str, step: Step, *, clock: Callable[[], datetime] = utcnow,
    seen: tuple[int, datetime | None] | None = None, busy: str = "requests at once",
) -> None:  # fmt: skip
    """Change counter ``row`` to what ``step(count, time, now)`` makes of it (or let ``step``
    refuse with RateLimited), by compare-and-swap on the count, so that processes and hosts
    sharing the database share it. ``seen``: the counter as the caller just read it. After
    :data:`_SWAPS` lost swaps, a 429 says there were too many ``busy``."""
    for attempt in range(_SWAPS):
        count, last = seen if seen is not None and attempt == 0 else await read_counter(db, row)
        now = clock()
        count_to, last_to = step(count, last, now)
        if last is None:
            if await _create(db, row, count_to, last_to):
                return
            continue
        async with db.transaction() as session:
            swapped = await session.execute(
                update(ThrottleCounter)
                .where(ThrottleCounter.key == row, ThrottleCounter.failures == count)
                .values(failures=count_to, last_attempt_at=last_to)
            )
        if getattr(swapped, "rowcount", 0):
            return
    raise RateLimited(f"too many {busy}; try again in 1 s", retry_after=1)


async def _create(db: Database, row: str, count: int, last: datetime) -> bool:
    """A new counter; False if another made it first. Forgotten counters are swept out."""
    async with db.transaction() as session:
        await session.execute(
            delete(ThrottleCounter).where(ThrottleCounter.last_attempt_at < last - FORGET_AFTER)
        )
        created = await session.execute(
            upsert(session, ThrottleCounter)
            .values(key=row, failures=count, last_attempt_at=last)
            .on_conflict_do_nothing()
        )
    return bool(getattr(created, "rowcount", 0))


def sign_in_throttle(db: Database, settings: Settings) -> Throttle:
    """The throttle of password sign-ins: per account, and four times as lenient per address."""
    free = settings.sign_in_free_attempts
    wait = float(settings.sign_in_max_wait)
    limits = {"account": Limit(free, wait), "address": Limit(4 * free, wait)}
    return Throttle(db, limits)


def token_throttle(db: Database, settings: Settings) -> Throttle:
    """The throttle of the OAuth token endpoint: per client address, as lenient as sign-in's
    per-address limit. Each request is charged and a granted one refunded, so only failed
    exchanges (guessed codes, refresh tokens or client secrets) add up."""
    limits = {"address": Limit(4 * settings.sign_in_free_attempts,
                               float(settings.sign_in_max_wait))}  # fmt: skip
    return Throttle(db, limits, action="failed token requests")


#: client registrations an address may make in a day before it waits (as Mastodon's 30 apps
#: per 5 minutes and address, but remembered for the day), and the longest wait (seconds)
REGISTRATIONS = Limit(30, 300.0)


def registration_throttle(db: Database) -> Throttle:
    """The throttle of dynamic client registration: every registration is charged, none
    refunded, so one address cannot fill the clients table."""
    return Throttle(db, {"registration": REGISTRATIONS}, action="client registrations")


#: accounts an address may make at once (Mastodon allows 5 sign-ups per 30 minutes and
#: address); then one every 30 minutes, until the address leaves it alone for a day
SIGN_UPS = Limit(5, 1800.0, first_wait=1800.0)


def sign_up_key(host: str) -> ThrottleKey:
    """The counter of web sign-ups from a client address (IPv6: per /64)."""
    return ThrottleKey("sign_up", address_key(host).value)


def sign_up_throttle(db: Database) -> Throttle:
    """The throttle of the sign-up page: every well-formed sign-up is charged, none refunded,
    so one address cannot make accounts by the hundred."""
    return Throttle(db, {"sign_up": SIGN_UPS}, action="sign-ups")
