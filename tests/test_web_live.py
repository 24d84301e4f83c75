"""The feeds' live events (``GET /live``): what the "N new posts" bar and the unread badge hear.

The stream's logic is read in process (:func:`fedisocial.web.pages.live.events` over the
app's own stream hub); the route itself, its headers and the cookie session, from a live
instance, because httpx's ASGI transport buffers a streaming answer until it ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from fedisocial.app import Context
from fedisocial.auth.sessions import SessionStore
from fedisocial.errors import BadRequest, Unauthorized
from fedisocial.social.mutes import mute
from fedisocial.web.pages.live import Reader, events, streams_of
from tests.instances import Instance, make_instance
from tests.oauthflow import PASSWORD, Browser
from tests.test_mastoapi_streaming import _actor
from tests.webapp import csrf_of

SQLITE = pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # the hub's own queries


async def _next(stream: AsyncIterator[bytes], seconds: float = 10) -> tuple[str, dict[str, str]]:
    """The next event of ``stream`` (heartbeats skipped): its name and data."""
    while True:
        chunk = (await asyncio.wait_for(anext(stream), seconds)).decode()
        if chunk.startswith(":"):
            continue
        lines = dict(line.split(": ", 1) for line in chunk.strip().splitlines())
        return lines["event"], json.loads(lines["data"])


@SQLITE
async def test_home_hears_followed_posts_not_its_own_and_its_unread_count(
    context: Context,
) -> None:
    # Given alice, signed in, who follows bob, on her home page
    alice, bob = await _actor(context, "alice"), await _actor(context, "bob")
    await context.outbox.follow(alice, bob.uri)
    _cookie, session = await SessionStore(context.db).start(alice)
    stream = events(context, streams_of("home", alice), Reader(alice, session.id))
    assert await anext(stream) == b":)\n\n"

    # When she posts (the composer shows it) and then bob does
    mine = await context.outbox.post(alice, "my own news")
    his = await context.outbox.post(bob, "news from bob", visibility="followers")

    # Then the first event is bob's post, by the id of its card: her own was not announced
    assert await _next(stream) == ("update", {"id": str(his.id)})

    # And when bob likes her post and then boosts it, her badge hears the count each time
    await context.outbox.like(bob, mine.uri)
    assert await _next(stream) == ("notification", {"unread": 1})
    boost = await context.outbox.boost(bob, mine.uri)
    event, data = await _next(stream)
    if event == "update":  # bob's boost reaches her feed too, as its own card
        assert data == {"id": str(boost.id)}
        event, data = await _next(stream)
    assert (event, data) == ("notification", {"unread": 2})

    # When she closes the page, the hub forgets the stream
    await stream.aclose()
    assert not context.streams._subscriptions


@SQLITE
async def test_a_public_feed_is_open_to_anyone_and_hears_only_what_it_lists(
    context: Context,
) -> None:
    alice = await _actor(context, "alice")
    cats = events(context, streams_of("tag:Cats", None), None)
    local = events(context, streams_of("local", None), None)
    for stream in (cats, local):
        assert await anext(stream) == b":)\n\n"

    await context.outbox.post(alice, "only my followers see my #cats", visibility="followers")
    await context.outbox.post(alice, "dogs are public too")
    shown = await context.outbox.post(alice, "Look at my #Cats")

    assert await _next(cats) == ("update", {"id": str(shown.id)})
    assert (await _next(local))[0] == "update"  # the dogs
    assert await _next(local) == ("update", {"id": str(shown.id)})
    for stream in (cats, local):
        await stream.aclose()


async def test_a_public_feed_leaves_out_whom_the_reader_muted_or_blocked(
    context: Context,
) -> None:
    # Given alice, who muted bob and blocked carol, on the local feed (a new query: both backends)
    alice, bob, carol, dan = [await _actor(context, n) for n in ("alice", "bob", "carol", "dan")]
    await mute(context.db, alice, bob)
    await context.outbox.block(alice, carol.uri)
    _cookie, session = await SessionStore(context.db).start(alice)
    stream = events(context, streams_of("local", alice), Reader(alice, session.id))
    assert await anext(stream) == b":)\n\n"

    # When bob, carol and then dan post in public, she hears of dan's post only
    await context.outbox.post(bob, "muted news")
    await context.outbox.post(carol, "blocked news")
    seen = await context.outbox.post(dan, "news from dan")
    assert await _next(stream) == ("update", {"id": str(seen.id)})
    await stream.aclose()


@SQLITE
async def test_feeds_are_named_and_home_needs_a_session(context: Context) -> None:
    alice = await _actor(context, "alice")
    with pytest.raises(Unauthorized, match="Sign in"):
        streams_of("home", None)
    for wrong in ("", "everything", "tag:", "tag:#", "home:alice"):
        with pytest.raises(BadRequest, match="home, local, federated or tag:NAME"):
            streams_of(wrong, alice)
    # a signed-in reader of a public feed also hears her notifications (the badge)
    assert [s.stream for s in streams_of("federated", alice)] == ["public", "user:notification"]
    assert [s.key for s in streams_of("tag:Cats", None)] == [["hashtag", "cats"]]


@SQLITE
async def test_heartbeats_keep_it_open_until_the_session_ends(context: Context) -> None:
    alice = await _actor(context, "alice")
    store = SessionStore(context.db)
    cookie, session = await store.start(alice)
    stream = events(context, streams_of("local", alice), Reader(alice, session.id),
                    heartbeat=0.05)  # fmt: skip
    assert await anext(stream) == b":)\n\n"
    assert await asyncio.wait_for(anext(stream), 10) == b":thump\n\n"

    # When she signs out in another tab, the stream ends at its next heartbeat
    await store.end(cookie)
    rest = [chunk async for chunk in stream]
    assert rest in ([], [b":thump\n\n"])  # (one may have been on its way)
    assert not context.streams._subscriptions


# -- the route, on a live instance ------------------------------------------------------------


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    """One live instance with alice and bob."""
    made = make_instance(tmp_path_factory.mktemp("live") / "one")
    for name in ("alice", "bob"):
        created = made.cli("user", "create", name, "--password-stdin", stdin=f"{PASSWORD}\n")
        assert created.returncode == 0, created.stderr
    made.start()
    try:
        yield made
    finally:
        made.stop()


async def _compose(http: httpx.AsyncClient, text: str) -> str:
    """Post ``text`` from the composer as its script does; the new post's id."""
    fields = {"csrf_token": csrf_of((await http.get("/")).text), "text": text,
              "visibility": "public"}  # fmt: skip
    answer = await http.post("/compose", data=fields, headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    ident: str = answer.json()["id"]
    return ident


async def test_a_signed_in_browser_streams_a_feed_and_its_badge(instance: Instance) -> None:
    async with (
        httpx.AsyncClient(base_url=instance.base_url, timeout=20) as alice,
        httpx.AsyncClient(base_url=instance.base_url, timeout=20) as bob,
    ):
        # Signed out: the home feed's stream is refused, a public one is not; nonsense is a 400
        assert (await alice.get("/live", params={"feed": "home"})).status_code == 401
        assert (await alice.get("/live", params={"feed": "nonsense"})).status_code == 400
        async with alice.stream("GET", "/live", params={"feed": "federated"}) as public:
            assert public.status_code == 200
            assert await anext(public.aiter_lines()) == ":)"

        # Given alice signed in, with a post, reading the local feed
        for who, name in ((alice, "alice"), (bob, "bob")):
            assert (await Browser(who).sign_in(name)).status_code == 303
        hers = await _compose(alice, "Hello from alice")
        async with alice.stream("GET", "/live", params={"feed": "local"}) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-accel-buffering"] == "no"
            lines = answer.aiter_lines()
            assert await anext(lines) == ":)"

            # When bob posts, then likes her post
            his = await _compose(bob, "Live from bob")
            csrf = csrf_of((await bob.get("/")).text)
            liked = await bob.post(f"/statuses/{hers}/favourite", data={"csrf_token": csrf},
                                   headers={"Accept": "application/json"})  # fmt: skip
            assert liked.status_code == 200, liked.text
            got: list[str] = []
            while len(got) < 4:
                line = await asyncio.wait_for(anext(lines), 15)
                got += [line] if line else []

    # Then she hears his post, by the id of its card, and her unread count
    assert got == ["event: update", f'data: {{"id":"{his}"}}',
                   "event: notification", 'data: {"unread":1}']  # fmt: skip
