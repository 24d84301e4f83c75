"""The byte cache in front of actor, WebFinger and NodeInfo documents."""

from __future__ import annotations

import asyncio

import pytest

from fedisocial.cache import ByteCache
from fedisocial.errors import NotFound


async def test_a_burst_of_misses_renders_once() -> None:
    cache, renders = ByteCache(ttl=60), 0

    async def render() -> bytes:
        nonlocal renders
        renders += 1
        await asyncio.sleep(0.01)
        return b"doc"

    bodies = await asyncio.gather(*(cache.get_or_render("k", render) for _ in range(50)))
    assert bodies == [b"doc"] * 50 and renders == 1


async def test_stale_bytes_are_served_while_one_refresh_runs() -> None:
    # Given an expired entry
    cache = ByteCache(ttl=0)
    await cache.get_or_render("k", _const(b"old"))
    release = asyncio.Event()

    async def slow() -> bytes:
        await release.wait()
        return b"new"

    # When many requests arrive during a slow re-render, none waits for it
    assert (
        await asyncio.gather(*(cache.get_or_render("k", slow) for _ in range(10))) == [b"old"] * 10
    )
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    # Then the next one gets the new bytes
    assert await cache.get_or_render("k", _const(b"newer")) == b"new"


async def test_a_failed_render_drops_the_entry() -> None:
    cache = ByteCache(ttl=0)
    await cache.get_or_render("k", _const(b"old"))

    async def gone() -> bytes:
        raise NotFound("no such user")

    await cache.get_or_render("k", gone)  # served stale once, refresh fails behind it
    await asyncio.sleep(0)
    with pytest.raises(NotFound):
        await cache.get_or_render("k", gone)


def _const(body: bytes):  # type: ignore[no-untyped-def]
    async def render() -> bytes:
        return body

    return render
