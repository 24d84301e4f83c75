"""The one retry contract: which failures are final, Retry-After, the schedule per job kind.

Pure functions, tested alone (STYLE.md §7); the worker applying them is tested
in test_store.py, the kinds that use them in test_delivery.py and test_studio.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fedisocial.ap.client import parse_retry_after
from fedisocial.errors import (
    BadRequest,
    BlockedAddress,
    NotFound,
    RateLimited,
    RemoteError,
    RemoteStatus,
)
from fedisocial.federation.delivery import DELIVER_RETRY, FANOUT_RETRY
from fedisocial.federation.inbox import PROCESS_RETRY
from fedisocial.jobs import DEFAULT_RETRY, JobFailed, PermanentFailure, RetryPolicy, is_final
from fedisocial.studio.generation import GENERATE_RETRY

NO_JITTER: dict[str, Callable[[], float]] = {"jitter": lambda: 0.0}
FULL_JITTER: dict[str, Callable[[], float]] = {"jitter": lambda: 1.0}


def schedule(policy: RetryPolicy, jitter: Callable[[], float]) -> timedelta:
    """How long after the first attempt the last one comes: the sum of the waits."""
    total, attempt = timedelta(), 1
    while (wait := policy.delay(attempt, jitter=jitter)) is not None:
        total, attempt = total + wait, attempt + 1
    assert attempt == policy.attempts
    return total


def test_backoff_doubles_up_to_a_cap_and_ends() -> None:
    policy = RetryPolicy(base=30, cap=3600, attempts=10)
    assert policy.delay(1, **NO_JITTER) == timedelta(seconds=30)
    assert policy.delay(2, **NO_JITTER) == timedelta(seconds=60)
    assert policy.delay(5, **NO_JITTER) == timedelta(seconds=480)
    assert policy.delay(9, **NO_JITTER) == timedelta(hours=1)  # capped
    assert policy.delay(10, **NO_JITTER) is None  # gives up
    assert policy.delay(3, **FULL_JITTER) == timedelta(seconds=150)  # +25% at most


def test_retry_after_wins_when_longer_up_to_its_own_cap() -> None:
    policy = RetryPolicy(base=30, cap=3600, attempts=10, max_retry_after=7200)
    assert policy.delay(1, retry_after=600, **NO_JITTER) == timedelta(seconds=600)
    assert policy.delay(5, retry_after=1, **NO_JITTER) == timedelta(seconds=480)
    assert policy.delay(1, retry_after=86400, **NO_JITTER) == timedelta(hours=2)


def test_delivery_retries_span_about_three_days() -> None:
    """FEDERATION.md promises "about three days"; Mastodon's retries span about two."""
    assert timedelta(days=2.5) < schedule(DELIVER_RETRY, NO_JITTER["jitter"]) < timedelta(days=3)
    assert schedule(DELIVER_RETRY, FULL_JITTER["jitter"]) < timedelta(days=3.5)


@pytest.mark.parametrize(
    ("policy", "at_least", "at_most"),
    [
        (FANOUT_RETRY, timedelta(hours=2), timedelta(hours=6)),
        (PROCESS_RETRY, timedelta(hours=2), timedelta(hours=6)),
        (GENERATE_RETRY, timedelta(minutes=5), timedelta(minutes=15)),
        (DEFAULT_RETRY, timedelta(hours=2), timedelta(hours=6)),
    ],
    ids=["fanout", "process_activity", "generate_image", "default"],
)
def test_each_kind_retries_for_as_long_as_its_docstring_says(
    policy: RetryPolicy, at_least: timedelta, at_most: timedelta
) -> None:
    assert at_least < schedule(policy, NO_JITTER["jitter"])
    assert schedule(policy, FULL_JITTER["jitter"]) < at_most


@pytest.mark.parametrize(
    ("error", "final"),
    [
        (RemoteStatus("https://a.example/x", 404), True),
        (RemoteStatus("https://a.example/x", 410), True),
        (RemoteStatus("https://a.example/x", 400), True),
        (RemoteStatus("https://a.example/x", 401), False),
        (RemoteStatus("https://a.example/x", 408), False),
        (RemoteStatus("https://a.example/x", 429), False),
        (RemoteStatus("https://a.example/x", 503), False),
        (RemoteError("could not fetch https://a.example/x: connection refused"), False),
        (BlockedAddress("refusing to connect to 10.0.0.1"), True),
        (RateLimited("quota reached"), False),
        (BadRequest("the activity has no actor"), True),
        (NotFound("no such user"), True),
        (PermanentFailure("the row is gone"), True),
        (JobFailed("try later", retry_after=5), False),
        (ConnectionResetError("database went away"), False),
    ],
)
def test_one_rule_for_what_is_final(error: Exception, final: bool) -> None:
    """Most 4xx are final; 401, 408, 429, 5xx and the network are retried."""
    assert is_final(error) is final


def test_parse_retry_after() -> None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; OpenAI adds retry-after-ms."""
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def parse(**headers: str) -> float | None:
        return parse_retry_after(httpx.Headers(headers), now)

    assert parse(**{"Retry-After": "120"}) == 120.0
    assert parse(**{"Retry-After": "Thu, 26 Nov 2026 12:10:00 GMT"}) == 600.0
    assert parse(**{"Retry-After": "Thu, 26 Nov 2026 11:00:00 GMT"}) == 0.0
    assert parse(**{"retry-after-ms": "50", "retry-after": "1"}) == 0.05
    assert parse(**{"Retry-After": "soon"}) is None and parse() is None
