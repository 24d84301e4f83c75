"""Mastodon's ``since_id``, ``min_id`` and ``max_id`` in every listing, on SQLite and PostgreSQL.

Mastodon's ``Paginable`` (app/models/concerns/paginable.rb): ``since_id`` gives the newest
``limit`` items newer than it (newest first), ``min_id`` the ``limit`` items immediately
newer than it (the oldest of them, shown newest first); ``max_id`` bounds either from
above. They differ once more than ``limit`` items are newer.
https://docs.joinmastodon.org/api/guidelines/#pagination
"""

from __future__ import annotations

import re

import httpx
from sqlalchemy import func, select

from fedisocial.app import Context
from fedisocial.social.collections import Cursor, profile_posts, read_page
from fedisocial.store.models import Actor, Follow
from tests.c2s_helpers import Person, person


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()]


def links(answer: httpx.Response) -> dict[str, str]:
    found = re.findall(r'<([^>]+)>; rel="(\w+)"', answer.headers.get("link", ""))
    return {rel: url.partition("?")[2] for url, rel in found}


async def actor(context: Context, name: str) -> Actor:
    return await context.outbox.actor_of(name)


async def test_read_page_tells_since_id_from_min_id_and_bounds_both_with_max_id(
    context: Context, alice: Person
) -> None:
    # Given alice posted six times (p0 oldest … p5 newest)
    me = await actor(context, "alice")
    posts = [(await context.outbox.post(me, f"post {n}")).id for n in range(6)]
    listing = profile_posts(me.uri)

    async def page(cursor: Cursor) -> list[int]:
        return [post.id for post in (await read_page(context.db, listing, cursor, 2)).items]

    # since_id: the newest two newer than p1; min_id: the two just after p1
    assert await page(Cursor(since_id=posts[1])) == [posts[5], posts[4]]
    assert await page(Cursor(min_id=posts[1])) == [posts[3], posts[2]]
    # max_id bounds both sides
    assert await page(Cursor(max_id=posts[4], since_id=posts[1])) == [posts[3], posts[2]]
    assert await page(Cursor(max_id=posts[3], min_id=posts[0])) == [posts[2], posts[1]]
    assert await page(Cursor(max_id=posts[3], min_id=posts[2])) == []
    # since_id is ignored beside min_id, as Mastodon does
    assert await page(Cursor(min_id=posts[2], since_id=posts[4])) == [posts[4], posts[3]]
    # and the neighbours: more newer than a min_id page, more older than a since_id one
    upward = await read_page(context.db, listing, Cursor(min_id=posts[1]), 2)
    assert (upward.prev_min_id, upward.next_max_id) == (posts[3], posts[2])
    newest = await read_page(context.db, listing, Cursor(since_id=posts[1]), 2)
    assert (newest.prev_min_id, newest.next_max_id) == (None, posts[4])


async def test_account_statuses_and_followers_read_since_id_as_mastodon(
    context: Context, client: httpx.AsyncClient, alice: Person
) -> None:
    me = await actor(context, "alice")
    posts = [str((await context.outbox.post(me, f"post {n}")).id) for n in range(5)]
    path = f"/api/v1/accounts/{me.id}/statuses"
    # since_id is the newest page, min_id the page just newer
    assert ids(await client.get(f"{path}?limit=2&since_id={posts[0]}")) == [posts[4], posts[3]]
    assert ids(await client.get(f"{path}?limit=2&min_id={posts[0]}")) == [posts[2], posts[1]]
    # max_id with since_id: between the two
    between = await client.get(f"{path}?max_id={posts[3]}&since_id={posts[0]}")
    assert ids(between) == [posts[2], posts[1]]
    # followers: rows of follows, paged the same way
    for name in ("f1", "f2", "f3", "f4"):
        await person(context, name)
        await context.outbox.follow(await actor(context, name), "alice")
    everyone = ids(await client.get(f"/api/v1/accounts/{me.id}/followers"))
    assert len(everyone) == 4
    async with context.db.session() as session:  # the follows' row ids: what they page by
        oldest = await session.scalar(
            select(func.min(Follow.id)).where(Follow.followee_uri == me.uri)
        )
    since = await client.get(f"/api/v1/accounts/{me.id}/followers?limit=2&since_id={oldest}")
    assert ids(since) == everyone[:2]
    just_newer = await client.get(f"/api/v1/accounts/{me.id}/followers?limit=2&min_id={oldest}")
    assert ids(just_newer) == everyone[1:3]


async def test_home_bounds_min_id_and_since_id_with_max_id(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    await context.outbox.follow(me, "carol")
    posts = [str((await context.outbox.post(her, f"post {n}")).id) for n in range(6)]
    home = "/api/v1/timelines/home?limit=2"
    assert ids(await client.get(f"{home}&since_id={posts[0]}", headers=alice.auth)) == [
        posts[5], posts[4]]  # fmt: skip
    assert ids(await client.get(f"{home}&min_id={posts[0]}", headers=alice.auth)) == [
        posts[2], posts[1]]  # fmt: skip
    bounded = await client.get(f"{home}&min_id={posts[1]}&max_id={posts[3]}", headers=alice.auth)
    assert ids(bounded) == [posts[2]]
    assert links(bounded)["prev"] == f"limit=2&min_id={posts[2]}"
    since = await client.get(f"{home}&since_id={posts[0]}&max_id={posts[4]}", headers=alice.auth)
    assert ids(since) == [posts[3], posts[2]]
    # past either end: empty
    assert ids(await client.get(f"{home}&since_id={posts[5]}", headers=alice.auth)) == []
    assert ids(await client.get(f"{home}&min_id={posts[5]}", headers=alice.auth)) == []


async def test_notifications_and_public_timeline_page_as_mastodon(
    context: Context, client: httpx.AsyncClient, alice: Person
) -> None:
    me = await actor(context, "alice")
    for name in ("n1", "n2", "n3", "n4", "n5"):
        await person(context, name)
        await context.outbox.follow(await actor(context, name), "alice")
    every = ids(await client.get("/api/v1/notifications", headers=alice.auth))
    assert len(every) == 5
    oldest = every[-1]
    path = "/api/v1/notifications?limit=2"
    assert ids(await client.get(f"{path}&since_id={oldest}", headers=alice.auth)) == every[:2]
    newer = await client.get(f"{path}&min_id={oldest}", headers=alice.auth)
    assert ids(newer) == every[2:4]
    assert links(newer)["prev"] == f"limit=2&min_id={every[2]}"
    assert ids(await client.get(f"{path}&min_id={oldest}&max_id={every[2]}",
                                headers=alice.auth)) == [every[3]]  # fmt: skip
    # the public timeline: the same rule, for anyone
    posts = [str((await context.outbox.post(me, f"public {n}")).id) for n in range(4)]
    public = "/api/v1/timelines/public?limit=2"
    assert ids(await client.get(f"{public}&since_id={posts[0]}")) == [posts[3], posts[2]]
    assert ids(await client.get(f"{public}&min_id={posts[0]}")) == [posts[2], posts[1]]
    assert ids(await client.get(f"{public}&since_id={posts[0]}&max_id={posts[2]}")) == [posts[1]]
