"""Grouped notifications (Mastodon 4.3's /api/v2/notifications), on SQLite and PostgreSQL.

https://docs.joinmastodon.org/methods/grouped_notifications/ and Mastodon's
``Api::V2::NotificationsController``, ``NotificationGroup``,
``REST::NotificationGroupSerializer``: likes and boosts of one post, and follows, within
an hour share a group (the same ``group_key`` as the v1 entity's); pages go by
notification id; only what the owner may read. The last test runs masto.js 7.10.2's
``v2.notifications.list()`` against a live instance.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from fedisocial.app import Context
from fedisocial.social import notifications
from fedisocial.social.notifications import GENERATION, Notice
from fedisocial.store.models import Actor, Notification, Object, utcnow
from tests.c2s_helpers import Person, another_token, person
from tests.instances import Instance, make_instance
from tests.interop.packages import INTEROP, node_for

V2 = "/api/v2/notifications"


async def actor(context: Context, name: str) -> Actor:
    return await context.outbox.actor_of(name)


async def grouped(client: httpx.AsyncClient, who: Person, query: str = "") -> dict[str, Any]:
    answer = await client.get(f"{V2}{query}", headers=who.auth)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def summary(results: dict[str, Any]) -> list[tuple[str, int]]:
    return [(g["type"], g["notifications_count"]) for g in results["notification_groups"]]


async def backdate(context: Context, notification_id: int, hours: int) -> None:
    async with context.db.transaction() as session:
        await session.execute(update(Notification).where(Notification.id == notification_id)
                              .values(created_at=utcnow() - timedelta(hours=hours)))  # fmt: skip


async def ids(context: Context, kind: str) -> list[int]:
    async with context.db.session() as session:
        found = await session.scalars(select(Notification.id).where(Notification.type == kind)
                                      .order_by(Notification.id))  # fmt: skip
        return list(found)


@pytest.fixture
async def dave(context: Context) -> Person:
    return await person(context, "dave", scope="read write follow")


@pytest.fixture
async def busy(context: Context, alice: Person, carol: Person, dave: Person) -> Object:
    """alice's post, liked by carol then dave; both follow alice; carol mentions her."""
    me, her, him = [await actor(context, n) for n in ("alice", "carol", "dave")]
    mine = await context.outbox.post(me, "my post")
    await context.outbox.like(her, mine.uri)
    await context.outbox.follow(her, "alice")
    await context.outbox.like(him, mine.uri)
    await context.outbox.follow(him, "alice")
    await context.outbox.post(her, "hi @alice")
    return mine


# -- listing ---------------------------------------------------------------------------------


async def test_likes_and_follows_come_grouped_with_their_accounts_and_status_once(
    context: Context, client: httpx.AsyncClient, alice: Person, busy: Object
) -> None:
    her, him = await actor(context, "carol"), await actor(context, "dave")
    # When alice lists her grouped notifications
    answer = await client.get(V2, headers=alice.auth)
    assert answer.status_code == 200, answer.text
    results = answer.json()
    # Then the mention is alone, the follows and the likes are a group each, newest first
    assert summary(results) == [("mention", 1), ("follow", 2), ("favourite", 2)]
    mention, follows, likes = results["notification_groups"]
    assert mention["group_key"] == f"ungrouped-{mention['most_recent_notification_id']}"
    assert follows["sample_account_ids"] == [str(him.id), str(her.id)]  # newest first
    assert likes["sample_account_ids"] == [str(him.id), str(her.id)]
    assert likes["status_id"] == str(busy.id) and "status_id" not in follows
    like_ids = await ids(context, "favourite")
    assert likes["most_recent_notification_id"] == like_ids[-1]  # a number, as Mastodon's
    assert (likes["page_min_id"], likes["page_max_id"]) == (str(like_ids[0]), str(like_ids[-1]))
    assert likes["latest_page_notification_at"].endswith("Z")
    # each account and status once: the samples, the post's author
    assert sorted(a["acct"] for a in results["accounts"]) == ["alice", "carol", "dave"]
    statuses = {s["id"] for s in results["statuses"]}
    assert statuses == {str(busy.id), mention["status_id"]}
    assert len(results["statuses"]) == 2
    assert "partial_accounts" not in results
    # And the group keys are the v1 entity's (one rule, in Python and in SQL)
    v1 = (await client.get("/api/v1/notifications", headers=alice.auth)).json()
    assert {n["group_key"] for n in v1} == {g["group_key"] for g in results["notification_groups"]}
    # And Link pages by notification id: next below the oldest group, prev above the newest
    link = answer.headers["link"]
    assert f"max_id={like_ids[-1]}" in link and 'rel="next"' in link
    assert f"min_id={mention['most_recent_notification_id']}" in link and 'rel="prev"' in link


async def test_an_hour_apart_and_types_not_grouped_come_apart(
    context: Context, client: httpx.AsyncClient, alice: Person, busy: Object
) -> None:
    first_like = (await ids(context, "favourite"))[0]
    await backdate(context, first_like, hours=2)
    # Then carol's like is in a group of its own hour
    found = await grouped(client, alice)
    assert summary(found) == [("mention", 1), ("follow", 2), ("favourite", 1), ("favourite", 1)]
    keys = [g["group_key"] for g in found["notification_groups"]]
    assert keys[2] != keys[3] and keys[2].startswith(f"favourite-{busy.id}-")
    # grouped_types names what may group: follows not named come one by one
    apart = await grouped(client, alice, "?grouped_types[]=favourite&grouped_types[]=reblog")
    assert summary(apart) == [("mention", 1), ("follow", 1), ("favourite", 1), ("follow", 1),
                              ("favourite", 1)]  # fmt: skip
    assert all(g["group_key"].startswith("ungrouped-")
               for g in apart["notification_groups"] if g["type"] == "follow")  # fmt: skip


async def test_filters_types_exclude_types_account_and_our_own_type(
    context: Context, client: httpx.AsyncClient, alice: Person, busy: Object
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    async with context.db.transaction() as session:
        await notifications.record(session, [Notice(me.uri, GENERATION, me.uri,
                                                    "generation:7", own=True)])  # fmt: skip
    assert summary(await grouped(client, alice, "?types[]=favourite")) == [("favourite", 2)]
    assert summary(await grouped(client, alice, "?exclude_types[]=follow&exclude_types[]=mention")
                   ) == [("favourite", 2)]  # fmt: skip
    # only carol's: her follow, her like, her mention
    mine = await grouped(client, alice, f"?account_id={her.id}")
    assert summary(mine) == [("mention", 1), ("follow", 1), ("favourite", 1)]
    # our own type only when named
    assert GENERATION not in {t for t, _ in summary(await grouped(client, alice))}
    (made,) = (await grouped(client, alice, f"?types[]={GENERATION}"))["notification_groups"]
    assert made["type"] == GENERATION and made["generation_id"] == "7"
    assert made["sample_account_ids"] == [str(me.id)] and "status_id" not in made


async def test_paging_by_group_with_link_up_and_down_and_past_the_end(
    context: Context, client: httpx.AsyncClient, alice: Person, busy: Object
) -> None:
    # Given three groups, one a page, followed by their Link as apps do
    seen, url, pages = [], f"{V2}?limit=1", 0
    while pages < 8:
        answer = await client.get(url, headers=alice.auth)
        assert answer.status_code == 200, answer.text
        pages += 1
        if not answer.json()["notification_groups"]:
            break
        seen += summary(answer.json())
        links = dict(reversed(part.split("; rel=")) for part in
                     answer.headers["link"].split(", "))  # fmt: skip
        url = links['"next"'].strip("<>").replace("http://127.0.0.1:8000", "")
    # Then the groups come newest first; a group's older part comes again below a newer
    # group (Mastodon's pages: carol's follow and like are older than dave's like)
    assert seen == [("mention", 1), ("follow", 2), ("favourite", 2), ("follow", 1),
                    ("favourite", 1)]  # fmt: skip
    # and the page past the end is empty, unlinked
    assert pages == 6 and "link" not in answer.headers
    # Going up from carol's like: the two groups just newer (carol's follow, dave's like),
    # counted up to the page's top (dave's like, with carol's below it), shown newest first
    like_ids, follow_ids = await ids(context, "favourite"), await ids(context, "follow")
    up = await grouped(client, alice, f"?min_id={like_ids[0]}&limit=2")
    assert summary(up) == [("favourite", 2), ("follow", 1)]
    likes, follows = up["notification_groups"]
    assert (likes["page_min_id"], likes["page_max_id"]) == (str(like_ids[1]), str(like_ids[1]))
    assert follows["most_recent_notification_id"] == follow_ids[0]
    # since_id: the newest groups, down to it
    since = await grouped(client, alice, f"?since_id={like_ids[-1]}")
    assert summary(since) == [("mention", 1), ("follow", 2)]
    # a group across a page's edge: on both pages, its page_min_id telling which part
    older = await grouped(client, alice, f"?max_id={follow_ids[-1]}")
    assert summary(older) == [("favourite", 2), ("follow", 1)]
    # (the follows' numbers count up to the page's top: one, carol's)
    assert older["notification_groups"][1]["most_recent_notification_id"] == follow_ids[0]


async def test_only_what_she_may_read_and_not_what_she_dismissed(
    context: Context, client: httpx.AsyncClient, alice: Person, busy: Object
) -> None:
    # Given carol's mention is deleted
    mention = (await grouped(client, alice))["notification_groups"][0]
    async with context.db.transaction() as session:
        await session.execute(update(Object).where(Object.id == int(mention["status_id"]))
                              .values(deleted_at=utcnow()))  # fmt: skip
    assert summary(await grouped(client, alice)) == [("follow", 2), ("favourite", 2)]
    # And carol sees none of alice's
    carol = await another_token(context, Person("carol", ""), "read")
    assert (await grouped(client, carol))["notification_groups"] == []


# -- one group -------------------------------------------------------------------------------


async def test_a_group_is_shown_dismissed_and_its_accounts_listed(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person, busy: Object
) -> None:
    her, him = await actor(context, "carol"), await actor(context, "dave")
    results = await grouped(client, alice)
    mention, follows, likes = (g["group_key"] for g in results["notification_groups"])
    # show: the whole group, without a page's fields
    shown = (await client.get(f"{V2}/{likes}", headers=alice.auth)).json()
    (group,) = shown["notification_groups"]
    assert group["notifications_count"] == 2 and "page_min_id" not in group
    assert [s["id"] for s in shown["statuses"]] == [str(busy.id)]
    alone = (await client.get(f"{V2}/{mention}", headers=alice.auth)).json()
    assert summary(alone) == [("mention", 1)]
    # accounts: newest first, paged by notification id
    first = await client.get(f"{V2}/{follows}/accounts?limit=1", headers=alice.auth)
    assert [a["id"] for a in first.json()] == [str(him.id)]
    assert 'rel="next"' in first.headers["link"]
    everyone = (await client.get(f"{V2}/{follows}/accounts", headers=alice.auth)).json()
    assert [a["acct"] for a in everyone] == ["dave", "carol"]
    # not hers, not a key: 404 (show), nobody (accounts)
    for wrong in ("follow-1", "ungrouped-999999", "favourite-x-1", "nonsense",
                  "ungrouped-99999999999999999999"):  # fmt: skip
        assert (await client.get(f"{V2}/{wrong}", headers=alice.auth)).status_code == 404
    assert (await client.get(f"{V2}/{likes}", headers=carol.auth)).status_code == 404
    assert (await client.get(f"{V2}/{likes}/accounts", headers=carol.auth)).json() == []
    # dismiss: carol cannot touch alice's group; alice dismisses all of it
    assert (await client.post(f"{V2}/{likes}/dismiss", headers=carol.auth)).json() == {}
    assert summary(await grouped(client, alice))[-1] == ("favourite", 2)
    done = await client.post(f"{V2}/{likes}/dismiss", headers=alice.auth)
    assert done.status_code == 200 and done.json() == {}
    assert summary(await grouped(client, alice)) == [("mention", 1), ("follow", 2)]
    assert (await client.get(f"{V2}/{likes}", headers=alice.auth)).status_code == 404
    v1 = (await client.get("/api/v1/notifications", headers=alice.auth)).json()
    assert "favourite" not in {n["type"] for n in v1}
    assert her.id != him.id


async def test_unread_count_counts_groups_past_the_marker(
    context: Context, client: httpx.AsyncClient, alice: Person, busy: Object
) -> None:
    count = f"{V2}/unread_count"
    assert (await client.get(count, headers=alice.auth)).json() == {"count": 3}
    assert (await client.get(f"{count}?limit=2", headers=alice.auth)).json() == {"count": 2}
    assert (await client.get(f"{count}?grouped_types[]=reblog", headers=alice.auth)
            ).json() == {"count": 5}  # fmt: skip
    assert (await client.get(f"{count}?types[]=follow", headers=alice.auth)
            ).json() == {"count": 1}  # fmt: skip
    # read up to the second like: the follows' newest and the mention remain
    like_ids = await ids(context, "favourite")
    marker = {"notifications": {"last_read_id": str(like_ids[-1])}}
    saved = await client.post("/api/v1/markers", headers=alice.auth, json=marker)
    assert saved.status_code == 200, saved.text
    assert (await client.get(count, headers=alice.auth)).json() == {"count": 2}


# -- errors and shapes -----------------------------------------------------------------------


async def test_tokens_scopes_and_bad_parameters(
    context: Context, client: httpx.AsyncClient, alice: Person, busy: Object
) -> None:
    key = (await grouped(client, alice))["notification_groups"][0]["group_key"]
    assert (await client.get(V2)).status_code == 401
    assert (await client.get(V2, headers={"Authorization": "Bearer nope"})).status_code == 401
    writer = await another_token(context, alice, "write")
    for path in (V2, f"{V2}/{key}", f"{V2}/{key}/accounts", f"{V2}/unread_count"):
        refused = await client.get(path, headers=writer.auth)
        assert refused.status_code == 403, path
    reader = await another_token(context, alice, "read")
    assert (await client.post(f"{V2}/{key}/dismiss", headers=reader.auth)).status_code == 403
    assert (await grouped(client, reader, "?limit=1"))["notification_groups"]
    bad = await client.get(f"{V2}?expand_accounts=everything", headers=alice.auth)
    assert bad.status_code == 400 and "expand_accounts" in bad.json()["error"]
    assert (await client.get(f"{V2}?limit=many", headers=alice.auth)).status_code == 400


async def test_partial_avatars_gives_each_groups_newest_in_full(
    context: Context, client: httpx.AsyncClient, alice: Person, busy: Object
) -> None:
    found = await grouped(client, alice, "?expand_accounts=partial_avatars&types[]=favourite")
    # dave liked last: in full, as the post's author alice; carol only partly
    assert sorted(a["acct"] for a in found["accounts"]) == ["alice", "dave"]
    (partial,) = found["partial_accounts"]
    assert partial["acct"] == "carol"
    assert set(partial) == {"id", "acct", "url", "avatar", "avatar_static", "locked", "bot"}


async def test_limit_is_40_and_at_most_80(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    async with context.db.transaction() as session:
        await notifications.record(session, [Notice(me.uri, "mention", her.uri, f"k{n}")
                                             for n in range(90)])  # fmt: skip
    assert len((await grouped(client, alice))["notification_groups"]) == 40
    assert len((await grouped(client, alice, "?limit=500"))["notification_groups"]) == 80


# -- masto.js --------------------------------------------------------------------------------


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    one = make_instance(tmp_path / "one")
    for name in ("alice", "carol", "dave"):
        made = one.cli("user", "create", name, "--password-stdin", stdin="a good password\n")
        assert made.returncode == 0, made.stderr
    one.start()
    try:
        yield one
    finally:
        one.stop()


def _token(instance: Instance, name: str) -> str:
    made = instance.cli("token", "create", name, "--scopes", "read,write,follow",
                        "--name", "masto.js")  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[1].strip()


def test_masto_js_lists_grouped_notifications(instance: Instance) -> None:
    node = node_for("masto", "package.json")
    tokens = [_token(instance, name) for name in ("alice", "carol", "dave")]
    ran = subprocess.run(
        [node, str(INTEROP / "masto_grouped.mjs"), instance.base_url, *tokens],
        capture_output=True, text=True, timeout=120, check=False, cwd=INTEROP,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    # two likes of one post and a follow from each: two groups of two, camelCased by masto.js
    assert seen["groups"] == [["follow", 2, 2], ["favourite", 2, 2]]
    assert seen["statusIds"] == [seen["posted"]]
    assert sorted(seen["accounts"]) == ["alice", "carol", "dave"]
    assert seen["shown"] == 2 and seen["accountsOfGroup"] == ["dave", "carol"]
    assert seen["unread"] == 2
