"""Notifications and markers of the Mastodon client API, on SQLite and PostgreSQL.

https://docs.joinmastodon.org/methods/notifications/ and /methods/markers/. Who is
notified of what: local actions (the outbox), received activities (the inbox's
batches), a finished image; never of oneself, of a blocked or muted account, twice
for one activity, nor of a post the owner may not read. The last test runs two real
instances: a reply and a like from the second arrive in the first's notifications.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from fedisocial.app import Context
from fedisocial.federation.remote import store_actor
from fedisocial.store.models import Actor, Mute, Notification, Object
from tests.c2s_helpers import AS_PUBLIC, Person, person, post
from tests.instances import Instance, alice_and_bob, eventually
from tests.test_inbox import BOB, activity, actor_doc, deliver, note, remote_key, run_jobs
from tests.test_roundtrip import run


@pytest.fixture
async def bob(context: Context) -> Actor:
    """A remote account whose key we have."""
    return await store_actor(context.db, actor_doc(BOB, remote_key()))


async def actor(context: Context, name: str) -> Actor:
    return await context.outbox.actor_of(name)


async def told(client: httpx.AsyncClient, who: Person, query: str = "") -> list[dict[str, Any]]:
    answer = await client.get(f"/api/v1/notifications{query}", headers=who.auth)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def kinds(found: list[dict[str, Any]]) -> list[str]:
    return [n["type"] for n in found]


async def rows(context: Context) -> list[Notification]:
    async with context.db.session() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.id)))


# -- local actions ------------------------------------------------------------------------


async def test_local_follows_likes_boosts_mentions_replies_and_edits_notify(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    mine = await context.outbox.post(me, "my post")
    # When carol follows, likes, boosts, mentions and answers alice
    await context.outbox.follow(her, "alice")
    await context.outbox.like(her, mine.uri)
    await context.outbox.boost(her, mine.uri)
    mention = await context.outbox.post(her, "hi @alice")
    reply = await context.outbox.post(her, "an answer", in_reply_to=mine.uri)
    # and alice boosts a post of carol's that carol then edits
    edited = await context.outbox.post(her, "first version")
    await context.outbox.boost(me, edited.uri)
    await context.outbox.edit(her, edited.uri, "second version")
    # Then alice is told each, newest first, with the account and the status
    found = await told(client, alice)
    assert kinds(found) == ["update", "mention", "mention", "reblog", "favourite", "follow"]
    assert {n["account"]["acct"] for n in found} == {"carol"}
    update, replied, mentioned, reblog, favourite, follow = found
    assert update["status"]["id"] == str(edited.id)
    assert "second version" in update["status"]["content"]
    assert replied["status"]["id"] == str(reply.id)
    assert mentioned["status"]["id"] == str(mention.id)
    assert reblog["status"]["id"] == favourite["status"]["id"] == str(mine.id)
    assert "status" not in follow
    assert favourite["group_key"].startswith(f"favourite-{mine.id}-")
    assert follow["group_key"].startswith("follow-")
    assert mentioned["group_key"] == f"ungrouped-{mentioned['id']}"
    assert all(n["created_at"].endswith("Z") for n in found)
    # carol was told nothing of her own doing, alice's boost aside (and no update: hers)
    assert kinds(await told(client, carol)) == ["reblog"]
    # When carol takes back her like, boost and follow, their notifications go
    await context.outbox.unlike(her, mine.uri)
    await context.outbox.unboost(her, mine.uri)
    await context.outbox.unfollow(her, "alice")
    assert kinds(await told(client, alice)) == ["update", "mention", "mention"]
    # and a deleted post's notifications go with it
    await context.outbox.delete(her, reply.uri)
    assert kinds(await told(client, alice)) == ["update", "mention"]


async def test_a_locked_account_is_told_of_follow_requests(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    async with context.db.transaction() as session:
        locked = await session.get(Actor, me.id)
        assert locked is not None
        locked.manually_approves_followers = True
    await context.outbox.follow(her, "alice")
    assert kinds(await told(client, alice)) == ["follow_request"]


async def test_no_notification_from_oneself_the_blocked_or_the_muted(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    dave = await person(context, "dave")
    him = await actor(context, "dave")
    mine = await context.outbox.post(me, "my post")
    await context.outbox.like(me, mine.uri)  # oneself
    await context.outbox.block(me, "carol")
    await context.outbox.post(her, "hey @alice")  # blocked
    async with context.db.transaction() as session:
        session.add(Mute(owner_id=me.id, muted_uri=him.uri))
    await context.outbox.like(him, mine.uri)  # muted, with notifications
    assert await told(client, alice) == []
    # A mute that keeps notifications lets them through
    async with context.db.transaction() as session:
        mute = await session.scalar(select(Mute).where(Mute.owner_id == me.id))
        assert mute is not None
        mute.notifications = False
    await context.outbox.boost(him, mine.uri)
    assert kinds(await told(client, alice)) == ["reblog"]
    assert dave.name == "dave"


# -- received activities -------------------------------------------------------------------


async def test_remote_activities_notify_once_and_their_undo_withdraws(
    context: Context, client: httpx.AsyncClient, alice: Person, bob: Actor
) -> None:
    me = await actor(context, "alice")
    mine = await context.outbox.post(me, "my post")
    # When bob follows, likes, boosts and mentions alice
    mention = note(f"{BOB}/statuses/m", tag=[{"type": "Mention", "href": me.uri}],
                   to=[AS_PUBLIC, me.uri])  # fmt: skip
    like = activity("Like", mine.uri, name="like")
    for sent in (activity("Follow", me.uri, name="follow"), like,
                 activity("Announce", mine.uri, name="boost", to=[AS_PUBLIC]),
                 activity("Create", mention, name="mention")):  # fmt: skip
        assert (await deliver(client, sent)).status_code == 202
    await run_jobs(context)
    found = await told(client, alice)
    assert kinds(found) == ["mention", "reblog", "favourite", "follow"]
    assert {n["account"]["acct"] for n in found} == {"bob@remote.example"}
    # Processing the Like again (a job run twice) does not notify twice
    async with context.db.session() as session:
        row = await session.scalar(select(Object).where(Object.uri == like["id"]))
    assert row is not None
    await context.inbox.process({"object_id": row.id})
    assert kinds(await told(client, alice)) == ["mention", "reblog", "favourite", "follow"]
    # When bob edits the post that mentions alice, she is told of the update
    edit = activity("Update", {**mention, "content": "<p>edited</p>"}, name="edit")
    assert (await deliver(client, edit)).status_code == 202
    await run_jobs(context)
    assert kinds(await told(client, alice))[0] == "update"
    # When he takes back the like and the follow, and deletes the post
    for sent in (activity("Undo", like, name="unlike"),
                 activity("Undo", activity("Follow", me.uri, name="follow"), name="unfollow"),
                 activity("Delete", mention["id"], name="delete")):  # fmt: skip
        assert (await deliver(client, sent)).status_code == 202
    await run_jobs(context)
    assert kinds(await told(client, alice)) == ["reblog"]


async def test_a_like_and_its_undo_in_one_batch_leave_no_notification(
    context: Context, client: httpx.AsyncClient, alice: Person, bob: Actor
) -> None:
    me = await actor(context, "alice")
    mine = await context.outbox.post(me, "my post")
    like = activity("Like", mine.uri, name="quick")
    for sent in (like, activity("Undo", like, name="quick-undo")):
        assert (await deliver(client, sent)).status_code == 202
    await run_jobs(context)  # (one batch: both jobs are due)
    assert await told(client, alice) == []
    assert await rows(context) == []


async def test_a_mention_in_a_post_she_may_not_read_is_not_shown(
    context: Context, client: httpx.AsyncClient, alice: Person, bob: Actor
) -> None:
    # Given bob's followers-only post tags alice but is not addressed to her
    me = await actor(context, "alice")
    hidden = note(f"{BOB}/statuses/hidden", tag=[{"type": "Mention", "href": me.uri}],
                  to=[f"{BOB}/followers"], cc=[])  # fmt: skip
    assert (await deliver(client, activity("Create", hidden, name="hidden"))).status_code == 202
    await run_jobs(context)
    # Then she is not shown it, nor counted it, nor can she open it
    assert await told(client, alice) == []
    count = await client.get("/api/v1/notifications/unread_count", headers=alice.auth)
    assert count.json() == {"count": 0}
    for row in await rows(context):
        answer = await client.get(f"/api/v1/notifications/{row.id}", headers=alice.auth)
        assert answer.status_code == 404


# -- the methods -----------------------------------------------------------------------------


async def test_filters_paging_one_dismiss_and_clear(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    dave = await person(context, "dave")
    him = await actor(context, "dave")
    mine = await context.outbox.post(me, "my post")
    await context.outbox.follow(her, "alice")
    await context.outbox.like(her, mine.uri)
    await context.outbox.like(him, mine.uri)
    await context.outbox.post(him, "hi @alice")
    everything = await told(client, alice)
    assert kinds(everything) == ["mention", "favourite", "favourite", "follow"]
    every_id = [n["id"] for n in everything]
    # types[], exclude_types[], account_id
    assert kinds(await told(client, alice, "?types[]=favourite&types[]=follow")) == [
        "favourite", "favourite", "follow"]  # fmt: skip
    assert kinds(await told(client, alice, "?exclude_types[]=favourite")) == ["mention", "follow"]
    by_carol = await told(client, alice, f"?account_id={her.id}")
    assert kinds(by_carol) == ["favourite", "follow"]
    # paging with Link, and past the end
    page = await client.get("/api/v1/notifications?limit=3", headers=alice.auth)
    assert [n["id"] for n in page.json()] == every_id[:3]
    assert f"max_id={every_id[2]}" in page.headers["link"]
    assert f"min_id={every_id[0]}" in page.headers["link"]
    rest = await client.get(f"/api/v1/notifications?limit=3&max_id={every_id[2]}",
                            headers=alice.auth)  # fmt: skip
    assert [n["id"] for n in rest.json()] == every_id[3:]
    newer = await client.get(f"/api/v1/notifications?since_id={every_id[1]}", headers=alice.auth)
    assert [n["id"] for n in newer.json()] == every_id[:1]
    past = await client.get(f"/api/v1/notifications?max_id={every_id[-1]}", headers=alice.auth)
    assert past.json() == [] and "link" not in past.headers
    # one notification: hers; not someone else's, not a made-up id
    one = await client.get(f"/api/v1/notifications/{every_id[0]}", headers=alice.auth)
    assert one.status_code == 200 and one.json() == everything[0]
    assert (await client.get(f"/api/v1/notifications/{every_id[0]}",
                             headers=carol.auth)).status_code == 404  # fmt: skip
    assert (await client.get("/api/v1/notifications/999999", headers=alice.auth)).status_code == 404
    assert (await client.get("/api/v1/notifications/abc", headers=alice.auth)).status_code == 404
    # dismiss one (someone else's: 404), then clear the rest
    assert (await client.post(f"/api/v1/notifications/{every_id[0]}/dismiss",
                              headers=carol.auth)).status_code == 404  # fmt: skip
    done = await client.post(f"/api/v1/notifications/{every_id[0]}/dismiss", headers=alice.auth)
    assert done.status_code == 200 and done.json() == {}
    assert [n["id"] for n in await told(client, alice)] == every_id[1:]
    assert (await client.get(f"/api/v1/notifications/{every_id[0]}",
                             headers=alice.auth)).status_code == 404  # fmt: skip
    legacy = await client.post("/api/v1/notifications/dismiss", data={"id": every_id[1]},
                               headers=alice.auth)  # fmt: skip
    assert legacy.status_code == 200
    cleared = await client.post("/api/v1/notifications/clear", headers=alice.auth)
    assert cleared.status_code == 200 and cleared.json() == {}
    assert await told(client, alice) == []
    # a dismissed like that is delivered again (the same activity) does not come back
    assert len(await rows(context)) == 4
    assert dave.name == "dave"


async def test_notifications_ask_for_their_scopes(
    context: Context, client: httpx.AsyncClient, alice: Person
) -> None:
    assert (await client.get("/api/v1/notifications")).status_code == 401
    bad = await client.get("/api/v1/notifications", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    reader = await person(context, "reader", scope="read:notifications")
    assert (await client.get("/api/v1/notifications", headers=reader.auth)).status_code == 200
    refused = await client.post("/api/v1/notifications/clear", headers=reader.auth)
    assert refused.status_code == 403 and "error" in refused.json()
    statuses = await person(context, "other", scope="read:statuses")
    assert (await client.get("/api/v1/notifications", headers=statuses.auth)).status_code == 403


async def test_unread_count_counts_past_the_notifications_marker(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    posts = [await context.outbox.post(me, f"post {n}") for n in range(3)]
    for item in posts:
        await context.outbox.like(her, item.uri)

    async def unread(query: str = "") -> int:
        answer = await client.get(f"/api/v1/notifications/unread_count{query}",
                                  headers=alice.auth)  # fmt: skip
        assert answer.status_code == 200, answer.text
        count: int = answer.json()["count"]
        return count

    assert await unread() == 3 and await unread("?limit=2") == 2
    assert await unread("?types[]=follow") == 0
    newest = (await told(client, alice))[1]["id"]
    saved = await client.post("/api/v1/markers", json={"notifications": {"last_read_id": newest}},
                              headers=alice.auth)  # fmt: skip
    assert saved.status_code == 200, saved.text
    assert await unread() == 1


# -- markers ----------------------------------------------------------------------------------


async def test_markers_are_saved_and_their_version_grows(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    get = "/api/v1/markers?timeline[]=home&timeline[]=notifications"
    assert (await client.get(get, headers=alice.auth)).json() == {}
    # a form as toot sends it, then JSON as masto.js does
    first = await client.post("/api/v1/markers", data={"home[last_read_id]": "103"},
                              headers=alice.auth)  # fmt: skip
    assert first.status_code == 200, first.text
    assert first.json()["home"]["last_read_id"] == "103" and first.json()["home"]["version"] == 0
    both = await client.post("/api/v1/markers", headers=alice.auth, json={
        "home": {"last_read_id": "105"}, "notifications": {"last_read_id": "7"}})  # fmt: skip
    assert both.json()["home"]["version"] == 1 and both.json()["notifications"]["version"] == 0
    same = await client.post("/api/v1/markers", headers=alice.auth,
                             json={"home": {"last_read_id": "105"}})  # fmt: skip
    assert same.json()["home"]["version"] == 1  # nothing changed
    read = (await client.get(get, headers=alice.auth)).json()
    assert set(read) == {"home", "notifications"} and read["home"]["last_read_id"] == "105"
    assert read["home"]["updated_at"].endswith("Z")
    only = (await client.get("/api/v1/markers?timeline[]=home", headers=alice.auth)).json()
    assert set(only) == {"home"}
    # hers are hers; a bad id is refused; scopes are checked
    assert (await client.get(get, headers=carol.auth)).json() == {}
    bad = await client.post("/api/v1/markers", headers=alice.auth,
                            json={"home": {"last_read_id": "x"}})  # fmt: skip
    assert bad.status_code == 400
    notifier = await person(context, "notifier", scope="read:notifications")
    assert (await client.get(get, headers=notifier.auth)).status_code == 403
    assert (await client.post("/api/v1/markers", headers=notifier.auth,
                              json={"home": {"last_read_id": "1"}})).status_code == 403  # fmt: skip
    assert (await client.get(get)).status_code == 401


# -- images ------------------------------------------------------------------------------------


async def test_a_finished_image_notifies_its_owner(
    context: Context, client: httpx.AsyncClient, alice: Person
) -> None:
    me = await actor(context, "alice")
    # An image asked for alone: our own type, listed when asked for by name
    generation = await context.studio.request(me, "a lighthouse at dawn")
    await run_jobs(context)
    assert await told(client, alice) == []
    (made,) = await told(client, alice, "?types[]=fedisocial:generation")
    assert made["generation_id"] == str(generation.id) and "status" not in made
    assert made["account"]["acct"] == "alice"
    # A post that waited for its image: ``status``, with the post now published
    posted = await post(client, alice, {
        "type": "Note", "content": "Made for you", "to": [AS_PUBLIC],
        "attachment": [{"type": "Image",
                        "https://fedisocial.github.io/ns#prompt": "a red fox in the snow"}],
    })  # fmt: skip
    assert posted.status_code == 201, posted.text
    await run_jobs(context)
    (published,) = await told(client, alice)
    assert published["type"] == "status"
    assert published["status"]["uri"] == posted.json()["object"]["id"]
    assert published["status"]["media_attachments"]


# -- two real instances --------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Instance, Instance]]:
    with alice_and_bob(tmp_path) as instances:
        yield instances


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_reply_and_a_like_from_another_instance_arrive_in_notifications(
    db: Any, pair: tuple[Instance, Instance]
) -> None:
    one, two = pair
    # Given alice (on one) posted, and her app has a token
    uri = run(one, "post", "alice", "Hello from one").split()[1]
    token = run(one, "token", "create", "alice", "--scopes", "read").splitlines()[1]
    auth = {"Authorization": f"Bearer {token}"}
    # When bob (on two) replies and likes it
    run(two, "post", "bob", f"@alice@{one.netloc} hello back", "--reply-to", uri)
    run(two, "like", "bob", uri)

    def notified() -> list[dict[str, Any]] | None:
        found = httpx.get(f"{one.base_url}/api/v1/notifications", headers=auth).json()
        return found if {n["type"] for n in found} >= {"mention", "favourite"} else None

    # Then both arrive in alice's notifications, from bob@two
    found = eventually(notified, "alice is told of bob's reply and like")
    assert {n["account"]["acct"] for n in found} == {f"bob@{two.netloc}"}
    mention = next(n for n in found if n["type"] == "mention")
    assert "hello back" in mention["status"]["content"]
    assert mention["status"]["in_reply_to_id"] is not None
    favourite = next(n for n in found if n["type"] == "favourite")
    assert favourite["status"]["uri"] == uri
