"""Mastodon client API: follows, blocks, mutes and the Relationship entity.

https://docs.joinmastodon.org/methods/accounts/#follow and the methods after it,
``/api/v1/follow_requests``, ``/api/v1/blocks``, ``/api/v1/mutes``. Every action
answers the relationship as it is now; doing it twice is no error. On SQLite and
PostgreSQL; the last test follows an account on a second real instance.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.social import mutes
from fedisocial.social.timeline import home_feed
from fedisocial.store.models import Actor, Follow, Mute, Object, utcnow
from tests.c2s_helpers import BASE, Person, another_token, person
from tests.instances import Instance, alice_and_bob, eventually
from tests.test_roundtrip import rows, run

API = "/api/v1/accounts"


async def actor_of(context: Context, name: str) -> Actor:
    return await context.outbox.actor_of(name)


async def act(client: httpx.AsyncClient, who: Person, action: str, actor: Actor,
              **form: str) -> httpx.Response:  # fmt: skip
    return await client.post(f"{API}/{actor.id}/{action}", data=form, headers=who.auth)


async def relationship(client: httpx.AsyncClient, who: Person, actor: Actor) -> dict[str, Any]:
    answer = await client.get(f"{API}/relationships", params={"id[]": str(actor.id)},
                              headers=who.auth)  # fmt: skip
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()[0]
    return found


async def set_locked(context: Context, name: str) -> None:
    async with context.db.transaction() as session:
        await session.execute(update(Actor).where(Actor.username == name)
                              .values(manually_approves_followers=True))  # fmt: skip


async def feed_texts(context: Context, owner: Actor) -> list[str]:
    page = await home_feed(context.db, owner.id)
    return [str((item.boosted or item.object).data.get("content")) for item in page.items]


async def hidden(context: Context, owner: Actor, author: Actor) -> tuple[bool, bool]:
    """Whether ``owner`` mutes ``author``: (posts, notifications), by its active mute."""
    muting = select(Mute.notifications).where(
        Mute.owner_id == owner.id, Mute.muted_uri == author.uri, mutes.active()
    )
    async with context.db.session() as session:
        found = (await session.execute(muting)).first()
    return found is not None, bool(found and found[0])


# -- follows ------------------------------------------------------------------------------------


async def test_follow_unfollow_and_the_relationship_both_ways(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write follow")
    bob = await person(context, "bob", scope="read follow")
    bob_actor, alice_actor = await actor_of(context, "bob"), await actor_of(context, "alice")
    # When alice follows bob (who accepts everyone)
    answer = await act(client, alice, "follow", bob_actor, reblogs="false", notify="true")
    # Then the answer is her relationship with him, and he sees it from his side
    assert answer.status_code == 200, answer.text
    mine = answer.json()
    assert mine["id"] == str(bob_actor.id) and mine["following"] is True
    assert mine["requested"] is False and mine["showing_reblogs"] is True
    assert set(mine) >= {"followed_by", "blocking", "blocked_by", "muting", "muting_notifications",
                         "requested_by", "domain_blocking", "endorsed", "note", "notifying",
                         "languages"}  # fmt: skip
    theirs = await relationship(client, bob, alice_actor)
    assert theirs["followed_by"] is True and theirs["following"] is False
    # and following again is no error and sends nothing more
    again = await act(client, alice, "follow", bob_actor)
    assert again.status_code == 200 and again.json()["following"] is True
    async with context.db.session() as session:
        follows = list(await session.scalars(select(Object).where(Object.type == "Follow")))
    assert len(follows) == 1
    # When she unfollows, twice
    for _ in range(2):
        gone = await act(client, alice, "unfollow", bob_actor)
        assert gone.status_code == 200 and gone.json()["following"] is False
    assert (await relationship(client, bob, alice_actor))["followed_by"] is False
    # and oneself cannot be followed; unknown accounts are 404
    assert (await act(client, alice, "follow", alice_actor)).status_code == 404
    assert (await client.post(f"{API}/987654/follow", headers=alice.auth)).status_code == 404
    assert (await client.post(f"{API}/nobody/follow", headers=alice.auth)).status_code == 404


async def test_follows_need_a_token_with_a_follow_scope(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    reader = await person(context, "alice", scope="read")
    await person(context, "bob")
    bob = await actor_of(context, "bob")
    for action in ("follow", "unfollow", "block", "unblock", "mute", "unmute",
                   "remove_from_followers"):  # fmt: skip
        assert (await act(client, reader, action, bob)).status_code == 403, action
        assert (await client.post(f"{API}/{bob.id}/{action}")).status_code == 401, action
    bad = await client.post(f"{API}/{bob.id}/follow", headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    granular = await another_token(context, reader, "write:follows")
    assert (await act(client, granular, "follow", bob)).status_code == 200
    assert (await act(client, granular, "block", bob)).status_code == 403
    blocker = await another_token(context, reader, "write:blocks")
    assert (await act(client, blocker, "block", bob)).status_code == 200
    for path in ("/api/v1/blocks", "/api/v1/mutes", "/api/v1/follow_requests",
                 f"{API}/relationships"):  # fmt: skip
        assert (await client.get(path, headers=granular.auth)).status_code == 403, path
        assert (await client.get(path, headers=reader.auth)).status_code == 200, path
        assert (await client.get(path)).status_code == 401, path


async def test_a_locked_account_authorizes_and_rejects_follow_requests(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write follow")
    bob = await person(context, "bob", scope="read write follow")
    carol = await person(context, "carol", scope="read write follow")
    await set_locked(context, "alice")
    alice_actor = await actor_of(context, "alice")
    bob_actor, carol_actor = await actor_of(context, "bob"), await actor_of(context, "carol")
    # When bob and carol ask to follow alice
    asked = await act(client, bob, "follow", alice_actor)
    assert asked.json()["requested"] is True and asked.json()["following"] is False
    await act(client, carol, "follow", alice_actor)
    # Then alice sees their requests, newest first, paged
    first = await client.get("/api/v1/follow_requests", params={"limit": "1"},
                             headers=alice.auth)  # fmt: skip
    assert [a["acct"] for a in first.json()] == ["carol"]
    rest = await client.get(first.links["next"]["url"].removeprefix(BASE), headers=alice.auth)
    assert [a["acct"] for a in rest.json()] == ["bob"]
    assert (await relationship(client, alice, bob_actor))["requested_by"] is True
    me = (await client.get(f"{API}/verify_credentials", headers=alice.auth)).json()
    assert me["source"]["follow_requests_count"] == 2
    # When she authorizes bob and rejects carol
    yes = await client.post(f"/api/v1/follow_requests/{bob_actor.id}/authorize",
                            headers=alice.auth)  # fmt: skip
    assert yes.status_code == 200 and yes.json()["followed_by"] is True
    no = await client.post(f"/api/v1/follow_requests/{carol_actor.id}/reject", headers=alice.auth)
    assert no.status_code == 200 and no.json()["requested_by"] is False
    # Then bob follows her, carol does not, and no request is left
    assert (await relationship(client, bob, alice_actor))["following"] is True
    assert (await relationship(client, carol, alice_actor))["requested"] is False
    assert (await client.get("/api/v1/follow_requests", headers=alice.auth)).json() == []
    again = await client.post(f"/api/v1/follow_requests/{bob_actor.id}/authorize",
                              headers=alice.auth)  # fmt: skip
    assert again.status_code == 404
    # and someone else cannot answer her requests
    await act(client, carol, "follow", alice_actor)
    theft = await client.post(f"/api/v1/follow_requests/{carol_actor.id}/authorize",
                              headers=bob.auth)  # fmt: skip
    assert theft.status_code == 404
    assert (await relationship(client, carol, alice_actor))["requested"] is True


async def test_remove_from_followers_rejects_their_follow(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write follow")
    await person(context, "bob")
    bob_actor, alice_actor = await actor_of(context, "bob"), await actor_of(context, "alice")
    await context.outbox.follow(bob_actor, "alice")
    answer = await act(client, alice, "remove_from_followers", bob_actor)
    assert answer.status_code == 200 and answer.json()["followed_by"] is False
    async with context.db.session() as session:
        rejects = list(await session.scalars(select(Object).where(Object.type == "Reject")))
        left = list(await session.scalars(select(Follow)))
    assert len(rejects) == 1 and rejects[0].data["to"] == [bob_actor.uri] and left == []
    assert (await act(client, alice, "remove_from_followers", bob_actor)).status_code == 200
    assert alice_actor.id != bob_actor.id


# -- blocks -----------------------------------------------------------------------------------


async def test_block_ends_follows_both_ways_and_forbids_following(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write follow")
    bob = await person(context, "bob", scope="read write follow")
    alice_actor, bob_actor = await actor_of(context, "alice"), await actor_of(context, "bob")
    await act(client, alice, "follow", bob_actor)
    await act(client, bob, "follow", alice_actor)
    # When alice blocks bob, twice
    for _ in range(2):
        blocked = await act(client, alice, "block", bob_actor)
        assert blocked.status_code == 200
    # Then neither follows the other, and each sees the block from their side
    mine = blocked.json()
    assert mine["blocking"] is True and mine["following"] is False and mine["followed_by"] is False
    assert (await relationship(client, bob, alice_actor))["blocked_by"] is True
    # and neither may follow the other (Mastodon's 403)
    assert (await act(client, bob, "follow", alice_actor)).status_code == 403
    assert (await act(client, alice, "follow", bob_actor)).status_code == 403
    listed = await client.get("/api/v1/blocks", headers=alice.auth)
    assert [a["acct"] for a in listed.json()] == ["bob"]
    assert (await client.get("/api/v1/blocks", headers=bob.auth)).json() == []
    # When she unblocks him, twice
    for _ in range(2):
        freed = await act(client, alice, "unblock", bob_actor)
        assert freed.status_code == 200 and freed.json()["blocking"] is False
    assert (await client.get("/api/v1/blocks", headers=alice.auth)).json() == []
    assert (await act(client, bob, "follow", alice_actor)).json()["following"] is True


async def test_blocks_and_mutes_are_paged_with_links(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write follow")
    others = []
    for name in ("bob", "carol", "dave"):
        await person(context, name)
        others.append(await actor_of(context, name))
        await act(client, alice, "block", others[-1])
        await act(client, alice, "mute", others[-1])
    for path in ("/api/v1/blocks", "/api/v1/mutes"):
        first = await client.get(path, params={"limit": "2"}, headers=alice.auth)
        assert [a["acct"] for a in first.json()] == ["dave", "carol"], path
        rest = await client.get(first.links["next"]["url"].removeprefix(BASE), headers=alice.auth)
        assert [a["acct"] for a in rest.json()] == ["bob"], path
        assert "next" not in rest.links
        back = await client.get(rest.links["prev"]["url"].removeprefix(BASE), headers=alice.auth)
        assert [a["acct"] for a in back.json()] == ["dave", "carol"], path


# -- mutes ------------------------------------------------------------------------------------


async def test_a_mute_hides_posts_and_boosts_from_the_home_feed_until_unmuted(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write follow")
    bob = await person(context, "bob", scope="read")
    await person(context, "carol")
    await person(context, "dave")
    alice_actor = await actor_of(context, "alice")
    bob_actor, carol_actor = await actor_of(context, "bob"), await actor_of(context, "carol")
    # Given alice follows carol, who boosts a post of bob's; then alice follows bob too, who
    # posts and boosts a post of dave's (boosts of posts her feed has would be left out)
    await context.outbox.follow(alice_actor, "carol")
    by_bob = await context.outbox.post(bob_actor, "bob speaks")
    await context.outbox.boost(carol_actor, by_bob.uri)
    await context.outbox.follow(alice_actor, "bob")
    await context.outbox.post(bob_actor, "bob again")
    await context.outbox.post(carol_actor, "carol speaks")
    by_dave = await context.outbox.post(await actor_of(context, "dave"), "dave speaks")
    await context.outbox.boost(bob_actor, by_dave.uri)
    assert len((await home_feed(context.db, alice_actor.id)).items) == 4
    # When alice mutes bob (notifications too, by default)
    muted = await act(client, alice, "mute", bob_actor)
    assert muted.status_code == 200
    assert muted.json()["muting"] is True and muted.json()["muting_notifications"] is True
    # Then his posts, his boosts and boosts of his posts leave her home feed
    assert await feed_texts(context, alice_actor) == ["<p>carol speaks</p>"]
    # and he does not know: his side says nothing of it, and he still follows nobody's mute
    seen = await relationship(client, bob, alice_actor)
    assert seen["muting"] is False and seen["followed_by"] is True
    # When she mutes him again without notifications, then unmutes him
    assert await hidden(context, alice_actor, bob_actor) == (True, True)
    quiet = await act(client, alice, "mute", bob_actor, notifications="false")
    assert quiet.json()["muting"] is True and quiet.json()["muting_notifications"] is False
    assert await hidden(context, alice_actor, bob_actor) == (True, False)
    assert await hidden(context, alice_actor, carol_actor) == (False, False)
    listed = (await client.get("/api/v1/mutes", headers=alice.auth)).json()
    assert [a["acct"] for a in listed] == ["bob"] and listed[0]["mute_expires_at"] is None
    freed = await act(client, alice, "unmute", bob_actor)
    assert freed.status_code == 200 and freed.json()["muting"] is False
    assert len((await home_feed(context.db, alice_actor.id)).items) == 4
    assert (await act(client, alice, "unmute", bob_actor)).status_code == 200
    assert (await act(client, alice, "mute", alice_actor)).status_code == 400


async def test_a_mute_with_a_duration_ends_by_itself(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write follow")
    await person(context, "bob")
    alice_actor, bob_actor = await actor_of(context, "alice"), await actor_of(context, "bob")
    await context.outbox.follow(alice_actor, "bob")
    await context.outbox.post(bob_actor, "bob speaks")
    answer = await act(client, alice, "mute", bob_actor, duration="3600")
    assert answer.json()["muting"] is True
    listed = (await client.get("/api/v1/mutes", headers=alice.auth)).json()
    assert listed[0]["mute_expires_at"].endswith("Z")
    assert await feed_texts(context, alice_actor) == []
    assert (await act(client, alice, "mute", bob_actor, duration="-5")).status_code == 400
    # When the hour has passed
    async with context.db.transaction() as session:
        await session.execute(update(Mute).values(expires_at=utcnow() - timedelta(seconds=1)))
    # Then the mute is over at once, for every read, and expire() removes it
    assert await feed_texts(context, alice_actor) == ["<p>bob speaks</p>"]
    assert (await relationship(client, alice, bob_actor))["muting"] is False
    assert (await client.get("/api/v1/mutes", headers=alice.auth)).json() == []
    assert await mutes.expire(context.db) == 1
    async with context.db.session() as session:
        assert list(await session.scalars(select(Mute))) == []


# -- relationships and familiar followers -------------------------------------------------------


async def test_relationships_of_many_ids_in_the_order_asked(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write follow")
    await person(context, "bob")
    await person(context, "carol")
    bob_actor, carol_actor = await actor_of(context, "bob"), await actor_of(context, "carol")
    await act(client, alice, "follow", carol_actor)
    query = [("id[]", str(carol_actor.id)), ("id[]", "999999"), ("id[]", "x"),
             ("id[]", str(bob_actor.id)), ("id[]", str(carol_actor.id))]  # fmt: skip
    answer = await client.get(f"{API}/relationships", params=query, headers=alice.auth)
    assert answer.status_code == 200
    found = answer.json()
    assert [r["id"] for r in found] == [str(carol_actor.id), str(bob_actor.id)]
    assert [r["following"] for r in found] == [True, False]
    single = await client.get(f"{API}/relationships", params={"id": str(bob_actor.id)},
                              headers=alice.auth)  # fmt: skip
    assert [r["id"] for r in single.json()] == [str(bob_actor.id)]
    empty = await client.get(f"{API}/relationships", headers=alice.auth)
    assert empty.status_code == 200 and empty.json() == []


async def test_familiar_followers_are_the_followers_one_follows(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    context: Context = app.state.context
    alice = await person(context, "alice", scope="read write follow")
    for name in ("bob", "carol", "dave"):
        await person(context, name)
    alice_actor = await actor_of(context, "alice")
    bob, carol, dave = [await actor_of(context, n) for n in ("bob", "carol", "dave")]
    await context.outbox.follow(alice_actor, "bob")
    await context.outbox.follow(bob, "dave")
    await context.outbox.follow(carol, "dave")
    answer = await client.get(f"{API}/familiar_followers",
                              params=[("id[]", str(dave.id)), ("id[]", str(carol.id))],
                              headers=alice.auth)  # fmt: skip
    assert answer.status_code == 200
    assert answer.json() == [
        {"id": str(dave.id), "accounts": [answer.json()[0]["accounts"][0]]},
        {"id": str(carol.id), "accounts": []},
    ]
    assert answer.json()[0]["accounts"][0]["acct"] == "bob"


# -- a follow of an account on another instance -------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    with alice_and_bob(tmp_path) as instances:
        yield instances


def test_following_a_remote_account_federates_and_is_requested_until_accepted(
    pair: tuple[Instance, Instance],
) -> None:
    one, two = pair
    # Given alice's app on one has a token, and one knows bob (on two), locked
    assert two.cli("user", "set", "bob", "--locked").returncode == 0
    token = run(one, "token", "create", "alice", "--scopes", "read,write,follow").splitlines()[1]
    auth = {"Authorization": f"Bearer {token}"}
    run(one, "lookup", f"@bob@{two.netloc}")
    with httpx.Client(base_url=one.base_url, headers=auth, timeout=20) as app:
        bob = app.get(f"{API}/lookup", params={"acct": f"bob@{two.netloc}"})
        assert bob.status_code == 200, bob.text
        bob_id = bob.json()["id"]
        assert bob.json()["acct"] == f"bob@{two.netloc}" and bob.json()["locked"] is True
        # When the app follows him
        asked = app.post(f"{API}/{bob_id}/follow")
        # Then it is requested, and the Follow reaches two
        assert asked.status_code == 200, asked.text
        assert asked.json()["requested"] is True and asked.json()["following"] is False
        eventually(lambda: rows(two, "SELECT 1 FROM follows WHERE state='pending'"),
                   "two has alice's follow request")  # fmt: skip
        # When bob accepts it on two
        follow_id = rows(two, "SELECT activity_uri FROM follows")[0][0]
        run(two, "accept", "bob", follow_id)

        # Then the Accept comes back and the app sees the follow
        def following() -> bool:
            found = app.get(f"{API}/relationships", params={"id[]": bob_id}).json()
            return bool(found and found[0]["following"])

        eventually(following, "alice's follow of bob is accepted on one")
        listed = app.get(f"{API}/{bob_id}/followers")
        assert [a["acct"] for a in listed.json()] == ["alice"]
        mine = app.get(f"{API}/verify_credentials").json()
        assert mine["following_count"] == 1
        # When she unfollows, two hears of it
        assert app.post(f"{API}/{bob_id}/unfollow").json()["following"] is False
        eventually(lambda: not rows(two, "SELECT 1 FROM follows"), "two drops the follow")
    assert json.loads(run(one, "lookup", f"@bob@{two.netloc}"))["preferredUsername"] == "bob"
