"""Sign-in throttling: exponential back-off per account and per client address.

The counters live in the database, so two processes (``serve --workers 2``)
share them; each test runs on SQLite and on PostgreSQL. Time moves by a clock
the test holds, never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.auth.throttle import (
    Limit,
    Throttle,
    ThrottleKey,
    account_key,
    address_key,
    backoff,
    sign_in_throttle,
)
from fedisocial.errors import RateLimited, Unauthorized
from fedisocial.social.accounts import authenticate, create_user
from fedisocial.store.db import Database
from fedisocial.store.models import ThrottleCounter, utcnow
from fedisocial.urls import Urls

PASSWORD = "the right password"
LIMITS = {"account": Limit(free=3, max_wait=60.0), "address": Limit(free=12, max_wait=60.0)}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def sign_in(throttle: Throttle, db: Database, username: str, password: str,
                  address: str = "192.0.2.7") -> None:  # fmt: skip
    """What the web layer does: admit, check the password, then reset on success."""
    keys = [account_key(username), address_key(address)]
    await throttle.admit(keys)
    await authenticate(db, username, password)
    await throttle.succeeded(keys)


@pytest.fixture
async def alice(db: Database) -> Database:
    await create_user(db, Urls("http://127.0.0.1:8000"), "alice", PASSWORD)
    return db


def test_the_wait_doubles_after_the_free_attempts_up_to_a_cap() -> None:
    limit = Limit(free=3, max_wait=60.0)
    assert [backoff(n, limit) for n in range(10)] == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60]
    assert backoff(10_000, limit) == 60.0


def test_ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert address_key("2001:db8:1:2::5") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::5") != address_key("2001:db8:1:3::5")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7")
    assert account_key("Alice") == account_key("alice")


async def test_wrong_passwords_make_the_account_wait_longer_each_time(alice: Database) -> None:
    # Given a throttle allowing three free attempts per account
    clock = Clock()
    throttle = Throttle(alice, LIMITS, clock=clock)
    # When someone guesses alice's password three times
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await sign_in(throttle, alice, "alice", "guess")
    # Then the fourth attempt, even with the right password, must wait 1 s
    with pytest.raises(RateLimited) as refused:
        await sign_in(throttle, alice, "alice", PASSWORD)
    assert refused.value.status == 429
    assert refused.value.message == ("too many failed sign-ins for this account; try again in 1 s")
    assert refused.value.headers == {"Retry-After": "1"}
    # And after that wait one more guess is allowed, and the next wait is 2 s
    clock.advance(1)
    with pytest.raises(Unauthorized):
        await sign_in(throttle, alice, "alice", "guess")
    with pytest.raises(RateLimited) as again:
        await sign_in(throttle, alice, "alice", PASSWORD)
    assert again.value.headers == {"Retry-After": "2"}


async def test_the_right_password_after_the_wait_works_and_resets_the_count(
    alice: Database,
) -> None:
    # Given alice's account waiting after three wrong passwords
    clock = Clock()
    throttle = Throttle(alice, LIMITS, clock=clock)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await sign_in(throttle, alice, "alice", "guess")
    # When she waits and signs in with the right password
    clock.advance(1)
    await sign_in(throttle, alice, "alice", PASSWORD)
    # Then the count starts again: three more attempts before any wait
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await sign_in(throttle, alice, "alice", "guess")
    with pytest.raises(RateLimited):
        await sign_in(throttle, alice, "alice", PASSWORD)


async def test_one_address_guessing_many_accounts_is_slowed_down(alice: Database) -> None:
    # Given one client guessing a different name each time (never one account thrice)
    clock = Clock()
    throttle = Throttle(alice, LIMITS, clock=clock)
    for n in range(12):
        with pytest.raises(Unauthorized):
            await sign_in(throttle, alice, f"user{n}", "guess", address="198.51.100.4")
    # When it tries alice's right password
    with pytest.raises(RateLimited) as refused:
        await sign_in(throttle, alice, "alice", PASSWORD, address="198.51.100.4")
    # Then its address must wait, while alice from elsewhere signs in
    assert refused.value.message.startswith("too many failed sign-ins from this address")
    await sign_in(throttle, alice, "alice", PASSWORD, address="203.0.113.9")


async def test_successes_do_not_use_up_the_address_allowance(alice: Database) -> None:
    # Given alice signing in from one address far more often than the free attempts
    throttle = Throttle(alice, LIMITS, clock=Clock())
    # When every HTTP Basic request signs in again
    for _ in range(30):
        await sign_in(throttle, alice, "alice", PASSWORD)
    # Then she is never made to wait


async def test_a_burst_of_parallel_guesses_gets_no_more_tries_than_a_row(alice: Database) -> None:
    # Given ten guesses sent at once
    throttle = Throttle(alice, LIMITS, clock=Clock())
    results = await asyncio.gather(
        *(sign_in(throttle, alice, "alice", f"guess {n}") for n in range(10)),
        return_exceptions=True,
    )
    # Then only the three free ones reached the password check
    assert sum(isinstance(r, Unauthorized) for r in results) == 3
    assert sum(isinstance(r, RateLimited) for r in results) == 7


async def test_two_processes_share_the_counters(alice: Database) -> None:
    # Given a second process: its own engine on the same database
    other = Database(alice.url, schema=alice.schema)
    clock = Clock()
    try:
        first, second = Throttle(alice, LIMITS, clock=clock), Throttle(other, LIMITS, clock=clock)
        # When the guesses are spread over both
        for throttle in (first, second, first):
            with pytest.raises(Unauthorized):
                await sign_in(throttle, alice, "alice", "guess")
        # Then either one makes the next attempt wait
        for throttle in (first, second):
            with pytest.raises(RateLimited):
                await sign_in(throttle, alice, "alice", PASSWORD)
    finally:
        await other.close()


# -- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture
async def context(app: Starlette) -> Context:
    ctx: Context = app.state.context
    await create_user(ctx.db, ctx.urls, "alice", PASSWORD)
    return ctx


@pytest.fixture
async def remote_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client connecting from 192.0.2.50, as the socket peer."""
    transport = httpx.ASGITransport(app=app, client=("192.0.2.50", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        yield c


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


#: an endpoint that takes HTTP Basic (the Mastodon API does; the studio no longer does)
PASSWORD_GUARDED = "/api/v1/accounts/verify_credentials"


async def guessed_at(context: Context, key: ThrottleKey, failures: int) -> None:
    """Given: ``failures`` attempts charged to ``key`` just now (a wait of minutes)."""
    async with context.db.transaction() as session:
        session.add(ThrottleCounter(key=key.row, failures=failures, last_attempt_at=utcnow()))


async def test_wrong_passwords_sent_ten_at_a_time_get_429(
    remote_client: httpx.AsyncClient, context: Context
) -> None:
    # Given the default limit of free attempts per account
    free = context.settings.sign_in_free_attempts
    # When a client sends twenty wrong passwords for alice, ten at a time
    statuses = []
    for start in range(0, 20, 10):
        answers = await asyncio.gather(
            *(remote_client.get(PASSWORD_GUARDED, headers=basic("alice", f"guess {start + n}"))
              for n in range(10))
        )  # fmt: skip
        statuses += [answer.status_code for answer in answers]
    # Then the free ones were checked and most of the others told to wait (the exact
    # count per second of waiting is proven with a held clock above)
    assert statuses.count(401) >= free
    assert statuses.count(429) >= 10
    assert set(statuses) == {401, 429}


async def test_a_waiting_account_gets_429_with_retry_after_and_why(
    remote_client: httpx.AsyncClient, context: Context
) -> None:
    # Given alice's account guessed at many times just now
    await guessed_at(context, account_key("alice"), context.settings.sign_in_free_attempts + 10)
    # When she signs in, with the right password
    refused = await remote_client.get(PASSWORD_GUARDED, headers=basic("Alice", PASSWORD))
    # Then 429 says how long to wait, in the header and in words
    assert refused.status_code == 429
    seconds = int(refused.headers["retry-after"])
    assert 0 < seconds <= context.settings.sign_in_max_wait
    assert refused.json() == {
        "error": f"too many failed sign-ins for this account; try again in {seconds} s"
    }


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    remote_client: httpx.AsyncClient, context: Context
) -> None:
    # Given the client's own address guessed at many times just now
    await guessed_at(
        context, address_key("192.0.2.50"), 10 * context.settings.sign_in_free_attempts
    )
    # When it claims to be someone else with X-Forwarded-For
    spoofed = {**basic("alice", PASSWORD), "X-Forwarded-For": "203.0.113.77"}
    answer = await remote_client.get(PASSWORD_GUARDED, headers=spoofed)
    # Then it is still counted by its socket address
    assert answer.status_code == 429
    assert "from this address" in answer.json()["error"]


async def test_the_sign_in_throttle_follows_the_settings(context: Context) -> None:
    throttle = sign_in_throttle(context.db, context.settings)
    free = context.settings.sign_in_free_attempts
    assert throttle.limits["account"] == Limit(free, float(context.settings.sign_in_max_wait))
    assert throttle.limits["address"].free == 4 * free
