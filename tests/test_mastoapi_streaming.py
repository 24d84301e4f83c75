"""The streaming API: which stream sees what, live, over WebSocket and server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import websockets

from fedisocial.app import Context
from fedisocial.social.streaming import Delivery, Subscription
from fedisocial.store.models import Actor
from tests.c2s_helpers import person
from tests.instances import Instance, make_instance

PASSWORD = "a good password"


async def _actor(context: Context, name: str) -> Actor:
    await person(context, name)
    return await context.outbox.actor_of(f"{name}@127.0.0.1:8000")


async def _next(subscription: Subscription, seconds: float = 10) -> Delivery:
    item = await asyncio.wait_for(subscription.queue.get(), seconds)
    assert item is not None
    return item[1]


async def _nothing(subscription: Subscription, seconds: float = 1.5) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscription.queue.get(), seconds)


async def test_the_user_stream_sees_its_feed_edits_and_deletes(context: Context) -> None:
    alice, bob = await _actor(context, "alice"), await _actor(context, "bob")
    await context.outbox.follow(alice, bob.uri)
    streams = context.streams
    mine = await streams.subscribe(Subscription("user", alice))
    others = await streams.subscribe(Subscription("user", await _actor(context, "carol")))

    post = await context.outbox.post(bob, "for my followers", visibility="followers")
    got = await _next(mine)
    assert got.event == "update" and got.post is not None and got.post.id == post.id
    await _nothing(others)  # carol follows no one: bob's followers-only post is not hers

    await context.outbox.edit(bob, post.uri, "for my followers, edited")
    edited = await _next(mine)
    assert edited.event == "status.update" and edited.post is not None
    assert "edited" in edited.post.data["content"]

    await context.outbox.delete(bob, post.uri)
    deleted = await _next(mine)
    assert deleted.event == "delete" and deleted.deleted_id == post.id


async def test_notifications_stream_as_mastodon_entities(context: Context) -> None:
    from fedisocial.web.mastoapi.entities import Entities
    from fedisocial.web.mastoapi.streaming import _payload

    alice, bob = await _actor(context, "alice"), await _actor(context, "bob")
    post = await context.outbox.post(alice, "like me")
    told = await context.streams.subscribe(Subscription("user:notification", alice))
    await context.outbox.like(bob, post.uri)
    got = await _next(told)
    assert got.event == "notification" and got.notification is not None
    payload = await _payload(Entities(context.db, context.urls, alice), got)
    assert payload is not None
    entity = json.loads(payload)
    assert entity["type"] == "favourite" and entity["account"]["acct"] == "bob"
    assert entity["status"]["id"] == str(post.id)
    await _nothing(told)  # her own post reached her feed, not her notifications


async def test_public_and_hashtag_streams_show_public_top_level_posts(context: Context) -> None:
    alice = await _actor(context, "alice")
    streams = context.streams
    public = await streams.subscribe(Subscription("public"))
    local = await streams.subscribe(Subscription("public:local"))
    remote = await streams.subscribe(Subscription("public:remote"))
    cats = await streams.subscribe(Subscription("hashtag", tag="#Cats"))

    await context.outbox.post(alice, "only my followers #cats", visibility="followers")
    await context.outbox.post(alice, "quietly #cats", visibility="unlisted")
    shown = await context.outbox.post(alice, "Look at my #Cats")
    for subscription in (public, local, cats):
        got = await _next(subscription)
        assert got.post is not None and got.post.id == shown.id
    reply = await context.outbox.post(alice, "and more #cats", in_reply_to=shown.uri)
    for subscription in (public, local, cats):  # a thread: a reply to oneself is shown
        got = await _next(subscription)
        assert got.post is not None and got.post.id == reply.id
        assert subscription.queue.empty()
    await _nothing(remote)


async def test_a_stream_needs_a_known_name_a_tag_and_for_user_a_viewer(context: Context) -> None:
    from fedisocial.errors import BadRequest

    with pytest.raises(BadRequest, match="unknown stream"):
        Subscription("everything")
    with pytest.raises(BadRequest, match="needs a tag"):
        Subscription("hashtag")
    with pytest.raises(BadRequest, match="signed-in"):
        Subscription("user")


# -- over HTTP, against a live instance -------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Instance, str]]:
    """One live instance for the module's HTTP tests (each starts its own streams)."""
    instance = make_instance(tmp_path_factory.mktemp("streaming") / "one")
    created = instance.cli("user", "create", "alice", "--password-stdin", stdin=f"{PASSWORD}\n")
    assert created.returncode == 0, created.stderr
    made = instance.cli("token", "create", "alice", "--scopes", "read")
    assert made.returncode == 0, made.stderr
    instance.start()
    try:
        yield instance, made.stdout.splitlines()[1].strip()
    finally:
        instance.stop()


def _post(instance: Instance, text: str) -> None:
    done = instance.cli("post", "alice", text)
    assert done.returncode == 0, done.stderr


async def test_a_websocket_with_the_token_as_protocol_gets_updates(
    live: tuple[Instance, str],
) -> None:
    instance, token = live
    url = f"ws://127.0.0.1:{instance.port}/api/v1/streaming"
    async with websockets.connect(url, subprotocols=[token]) as socket:  # type: ignore[list-item]
        assert socket.subprotocol == token  # browsers require the protocol echoed
        await socket.send(json.dumps({"type": "subscribe", "stream": "user"}))
        await socket.send(json.dumps({"type": "subscribe", "stream": "hashtag", "tag": "news"}))
        await socket.send("not json")
        error = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert "send JSON" in error["error"]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(_post, instance, "Breaking #news")
        seen = [json.loads(await asyncio.wait_for(socket.recv(), 15)) for _ in range(2)]
    assert sorted(tuple(m["stream"]) for m in seen) == [("hashtag", "news"), ("user",)]
    for message in seen:
        assert message["event"] == "update"
        status = json.loads(message["payload"])
        assert "Breaking" in status["content"] and status["account"]["acct"] == "alice"


async def test_a_bad_token_is_refused_before_the_upgrade(live: tuple[Instance, str]) -> None:
    instance, _token = live
    url = f"ws://127.0.0.1:{instance.port}/api/v1/streaming?stream=user"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer nope"}):
            pass
    assert refused.value.response.status_code == 401
    async with websockets.connect(f"{url}".replace("stream=user", "stream=public")) as socket:
        assert socket.subprotocol is None  # public streams need no token


async def test_server_sent_events_of_the_user_stream(live: tuple[Instance, str]) -> None:
    instance, token = live
    async with httpx.AsyncClient(base_url=instance.base_url, timeout=20) as http:
        assert (await http.get("/api/v1/streaming/health")).text == "OK"
        anonymous = await http.get("/api/v1/streaming/user")
        assert anonymous.status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        async with http.stream("GET", "/api/v1/streaming/user", headers=headers) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.aiter_lines()
            assert await anext(lines) == ":)"
            await asyncio.to_thread(_post, instance, "Hello, stream")
            event = data = None
            while data is None:
                line = await asyncio.wait_for(anext(lines), 15)
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
    assert event == "update" and "Hello, stream" in data["content"]


@pytest.mark.parametrize("db", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)  # fmt: skip
async def test_postgresql_wakes_the_streams_as_the_change_commits(
    context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedisocial.social import streaming

    monkeypatch.setattr(streaming, "POLL_SECONDS", 60.0)  # only NOTIFY can wake it in time
    alice = await _actor(context, "alice")
    mine = await context.streams.subscribe(Subscription("user", alice))
    await asyncio.sleep(0.2)
    post = await context.outbox.post(alice, "woken by NOTIFY")
    got = await _next(mine, seconds=10)
    assert got.post is not None and got.post.id == post.id
