"""Collections, the home feed and who may read what (fedisocial.social.collections).

Each test runs on SQLite and on PostgreSQL. Posts, follows and boosts are made
through the Outbox, as people make them; large numbers of followers, likes or
replies are inserted as rows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from fedisocial.ap.httpsig import generate_rsa_key, public_key_to_pem
from fedisocial.app import Context
from fedisocial.errors import Forbidden, NotFound, Unauthorized
from fedisocial.federation.remote import store_actor
from fedisocial.social.access import ensure_readable
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.social.collections import (
    Cursor,
    Listing,
    Page,
    count,
    counts,
    featured,
    followers,
    following,
    likes,
    outbox,
    profile_posts,
    read_page,
    replies,
    shares,
)
from fedisocial.social.timeline import REBLOG_FALLOFF, home, home_feed
from fedisocial.store.models import Actor, Block, Engagement, Follow, Object, utcnow

T = TypeVar("T")
REMOTE = "https://remote.example"


async def local_user(context: Context, name: str) -> Actor:
    await create_user(context.db, context.urls, name, "long enough password")
    return await find_local_actor(context.db, context.urls, name)


async def remote_actor(context: Context, path: str, kind: str = "Person") -> Actor:
    uri = f"{REMOTE}{path}"
    key = generate_rsa_key()
    return await store_actor(context.db, {
        "@context": "https://www.w3.org/ns/activitystreams", "id": uri, "type": kind,
        "preferredUsername": path.rsplit("/", 1)[-1], "inbox": f"{uri}/inbox",
        "publicKey": {"id": f"{uri}#main-key", "owner": uri,
                      "publicKeyPem": public_key_to_pem(key)},
    })  # fmt: skip


async def walk(context: Context, listing: Listing[T]) -> list[Page[T]]:
    """Every page of ``listing``, following ``next`` from the first."""
    pages = [await read_page(context.db, listing)]
    while pages[-1].next_max_id is not None:
        pages.append(await read_page(context.db, listing, Cursor(max_id=pages[-1].next_max_id)))
    return pages


async def add_rows(context: Context, rows: list[Any]) -> None:
    async with context.db.transaction() as session:
        session.add_all(rows)


# -- outbox -------------------------------------------------------------------------------------


async def test_outbox_pages_public_activities_newest_first(context: Context) -> None:
    # Given alice's 26 public posts, one of them deleted and one edited, a followers-only
    # and a direct post, and a boost of her own first post
    alice = await local_user(context, "alice")
    posts = [await context.outbox.post(alice, f"post {i}") for i in range(26)]
    await context.outbox.post(alice, "for followers", visibility="followers")
    await context.outbox.post(alice, "for nobody", visibility="direct")
    await context.outbox.delete(alice, posts[3].uri)
    await context.outbox.edit(alice, posts[25].uri, "post 25, edited")
    boost = await context.outbox.boost(alice, posts[0].uri)
    # When the outbox is read page by page
    listing = outbox(alice.uri)
    pages = await walk(context, listing)
    # Then 25 Creates and the boost come newest first, 20 to a page, and nothing else
    assert await count(context.db, listing) == 26
    assert [len(p.items) for p in pages] == [20, 6]
    items = [item for page in pages for item in page.items]
    assert items[0]["id"] == boost.uri and items[0]["type"] == "Announce"
    created = [item["object"]["id"] for item in items[1:]]
    assert created == [p.uri for p in reversed(posts) if p is not posts[3]]
    # and a Create shows its post as it is now, embedded without its own @context
    assert items[1]["object"]["content"] == "<p>post 25, edited</p>"
    assert all("@context" not in item and "@context" not in item["object"] for item in items[1:])
    # and paging back from the second page gives the first one again
    back = await read_page(context.db, listing, Cursor(min_id=pages[1].prev_min_id or 0))
    assert back == pages[0]
    assert pages[0].prev_min_id is None and pages[1].next_max_id is None


async def test_an_empty_outbox_has_no_pages_around(context: Context) -> None:
    alice = await local_user(context, "alice")
    page = await read_page(context.db, outbox(alice.uri))
    assert page == Page(items=[])
    assert await count(context.db, outbox(alice.uri)) == 0


# -- followers and following ---------------------------------------------------------------------


async def test_followers_are_accepted_follows_newest_first(context: Context) -> None:
    # Given 23 remote followers, a local one, a pending request, and someone alice follows
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    await add_rows(context, [
        Follow(follower_uri=f"{REMOTE}/users/f{i}", followee_uri=alice.uri,
               activity_uri=f"{REMOTE}/follows/{i}", state="accepted", accepted_at=utcnow())
        for i in range(23)
    ] + [Follow(follower_uri=f"{REMOTE}/users/pending", followee_uri=alice.uri,
                activity_uri=f"{REMOTE}/follows/pending")])  # fmt: skip
    await context.outbox.follow(bob, "alice")
    await context.outbox.follow(alice, "bob")
    # When both collections are read
    pages = await walk(context, followers(alice.uri))
    # Then followers lists the 24 accepted followers, local and remote, newest first
    assert await count(context.db, followers(alice.uri)) == 24
    assert [len(p.items) for p in pages] == [20, 4]
    ids = [i for p in pages for i in p.items]
    assert ids[0] == bob.uri and ids[-1] == f"{REMOTE}/users/f0"
    assert f"{REMOTE}/users/pending" not in ids
    # and following lists whom alice follows
    assert (await read_page(context.db, following(alice.uri))).items == [bob.uri]
    assert await count(context.db, following(bob.uri)) == 1


# -- replies, likes and shares --------------------------------------------------------------------


async def test_replies_list_public_and_unlisted_replies(context: Context) -> None:
    # Given a post with 21 public replies from elsewhere, an unlisted one of alice's,
    # and replies that are followers-only, direct or deleted
    alice = await local_user(context, "alice")
    post = await context.outbox.post(alice, "what do you think?")
    rows = [
        Object(uri=f"{REMOTE}/notes/{i}", type="Note", actor_uri=f"{REMOTE}/users/r",
               in_reply_to=post.uri, visibility="public", data={"id": f"{REMOTE}/notes/{i}"},
               published=utcnow() - timedelta(minutes=30 - i))
        for i in range(21)
    ]  # fmt: skip
    for hidden in ("followers", "direct"):
        rows.append(Object(uri=f"{REMOTE}/notes/{hidden}", type="Note", in_reply_to=post.uri,
                           visibility=hidden, data={}))  # fmt: skip
    rows.append(Object(uri=f"{REMOTE}/notes/gone", type="Note", in_reply_to=post.uri,
                       data={}, deleted_at=utcnow()))  # fmt: skip
    await add_rows(context, rows)
    own = await context.outbox.post(alice, "me", visibility="unlisted", in_reply_to=post.uri)
    # When the replies are read
    pages = await walk(context, replies(post.uri))
    # Then the 22 visible replies are listed by id, newest first
    ids = [i for p in pages for i in p.items]
    assert await count(context.db, replies(post.uri)) == 22
    assert [len(p.items) for p in pages] == [20, 2]
    assert ids[0] == own.uri and ids[1:] == [f"{REMOTE}/notes/{i}" for i in reversed(range(21))]


async def test_likes_and_shares_list_activity_ids(context: Context) -> None:
    # Given a post liked 21 times from elsewhere and by bob, and boosted by bob
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    post = await context.outbox.post(alice, "like me")
    await add_rows(context, [
        Engagement(kind="like", actor_uri=f"{REMOTE}/users/u{i}", object_uri=post.uri,
                   activity_uri=f"{REMOTE}/likes/{i}")
        for i in range(21)
    ])  # fmt: skip
    like = await context.outbox.like(bob, post.uri)
    boost = await context.outbox.boost(bob, post.uri)
    # When the likes and shares are read
    like_pages = await walk(context, likes(post.uri))
    # Then each lists its activities, newest first, with the right total
    assert await count(context.db, likes(post.uri)) == 22
    assert [len(p.items) for p in like_pages] == [20, 2]
    assert like_pages[0].items[0] == like.uri and like_pages[1].items[-1] == f"{REMOTE}/likes/0"
    assert (await read_page(context.db, shares(post.uri))).items == [boost.uri]
    # and an undone like leaves the collection
    await context.outbox.unlike(bob, post.uri)
    assert await count(context.db, likes(post.uri)) == 21


async def test_counts_come_for_many_posts_at_once(context: Context) -> None:
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    first = await context.outbox.post(alice, "one")
    second = await context.outbox.post(alice, "two")
    await context.outbox.like(bob, first.uri)
    await context.outbox.boost(bob, first.uri)
    await context.outbox.post(bob, "reply", in_reply_to=first.uri)
    await context.outbox.post(bob, "secret reply", in_reply_to=first.uri, visibility="direct")
    tally = await counts(context.db, [first.uri, second.uri, first.uri])
    assert (tally[first.uri].replies, tally[first.uri].likes, tally[first.uri].shares) == (1, 1, 1)
    assert tally[second.uri] == type(tally[second.uri])()
    assert await counts(context.db, []) == {}


# -- featured and profile posts ------------------------------------------------------------------


async def test_featured_lists_pinned_posts_last_pinned_first(context: Context) -> None:
    alice = await local_user(context, "alice")
    one, two, three = [await context.outbox.post(alice, text) for text in ("1", "2", "3")]
    for post in (two, one, three):
        await context.outbox.pin(alice, post.uri)
    await context.outbox.pin(alice, three.uri, pinned=False)
    gone = await context.outbox.post(alice, "pinned, then deleted")
    await context.outbox.pin(alice, gone.uri)
    await context.outbox.delete(alice, gone.uri)
    assert [p.uri for p in await featured(context.db, alice.uri)] == [one.uri, two.uri]


async def test_profile_posts_leave_out_private_ones(context: Context) -> None:
    alice = await local_user(context, "alice")
    public = await context.outbox.post(alice, "hello")
    unlisted = await context.outbox.post(alice, "quiet", visibility="unlisted")
    await context.outbox.post(alice, "friends", visibility="followers")
    await context.outbox.post(alice, "nobody", visibility="direct")
    page = await read_page(context.db, profile_posts(alice.uri))
    assert [p.uri for p in page.items] == [unlisted.uri, public.uri]


# -- the home feed -------------------------------------------------------------------------------


async def test_home_feed_has_own_followed_and_boosted_posts(context: Context) -> None:
    # Given alice follows bob; bob posts, boosts carol's post and writes to alice directly;
    # carol (not followed) and alice post too
    alice, bob, carol = [await local_user(context, n) for n in ("alice", "bob", "carol")]
    await context.outbox.follow(alice, "bob")
    mine = await context.outbox.post(alice, "mine")
    bobs = await context.outbox.post(bob, "bob's")
    deleted = await context.outbox.post(bob, "oops")
    carols = await context.outbox.post(carol, "carol's")
    boost = await context.outbox.boost(bob, carols.uri)
    direct = await context.outbox.post(bob, "hi @alice", visibility="direct")
    await context.outbox.delete(bob, deleted.uri)
    # When alice reads her home feed
    page = await home_feed(context.db, alice.id)
    # Then she sees her post, bob's, the boost with carol's post in it, and the direct
    # message, newest first; not carol's own post, nor the deleted one
    assert [i.object.uri for i in page.items] == [direct.uri, boost.uri, bobs.uri, mine.uri]
    assert page.items[1].boosted is not None and page.items[1].boosted.uri == carols.uri
    assert page.items[0].boosted is None
    assert await count(context.db, home(alice.id)) == 4
    # and carol's feed is hers alone (bob's boost is not for her)
    assert [i.object.uri for i in (await home_feed(context.db, carol.id)).items] == [carols.uri]
    # and once carol deletes her post, bob's boost of it leaves alice's feed
    await context.outbox.delete(carol, carols.uri)
    assert boost.uri not in [i.object.uri for i in (await home_feed(context.db, alice.id)).items]
    assert await count(context.db, home(alice.id)) == 3


async def test_a_boost_of_a_post_the_feed_already_shows_is_left_out(context: Context) -> None:
    # Given alice follows bob and carol; dave follows carol and erin; bob posts
    names = ("alice", "bob", "carol", "dave", "erin")
    alice, bob, carol, dave, erin = [await local_user(context, n) for n in names]
    for follower, followee in ((alice, "bob"), (alice, "carol"), (dave, "carol"), (dave, "erin")):
        await context.outbox.follow(follower, followee)
    post = await context.outbox.post(bob, "worth sharing")
    # When carol boosts it, and then alice herself does
    carols = await context.outbox.boost(carol, post.uri)
    await context.outbox.boost(alice, post.uri)
    # Then alice's feed shows bob's post once (Mastodon leaves out the reblog of a status
    # the home feed has), while carol's and dave's feeds have carol's boost
    assert [i.object.uri for i in (await home_feed(context.db, alice.id)).items] == [post.uri]
    assert [i.object.uri for i in (await home_feed(context.db, carol.id)).items] == [carols.uri]
    assert [i.object.uri for i in (await home_feed(context.db, dave.id)).items] == [carols.uri]
    # and when erin boosts it too, dave's feed still shows it once, as carol's boost
    await context.outbox.boost(erin, post.uri)
    assert [i.object.uri for i in (await home_feed(context.db, dave.id)).items] == [carols.uri]
    # but once 40 newer posts push it down alice's feed (Mastodon's REBLOG_FALLOFF), the
    # boost of someone she then follows shows again, on top
    for n in range(REBLOG_FALLOFF):
        await context.outbox.post(carol, f"more {n}")
    await context.outbox.follow(alice, "dave")
    again = await context.outbox.boost(dave, post.uri)
    assert (await home_feed(context.db, alice.id)).items[0].object.uri == again.uri


async def test_home_feed_pages(context: Context) -> None:
    alice = await local_user(context, "alice")
    posts = [await context.outbox.post(alice, f"post {i}") for i in range(23)]
    first = await home_feed(context.db, alice.id)
    second = await home_feed(context.db, alice.id, Cursor(max_id=first.next_max_id))
    assert [i.object.uri for i in first.items + second.items] == [p.uri for p in reversed(posts)]
    assert second.next_max_id is None and second.prev_min_id is not None
    newer = await home_feed(context.db, alice.id, Cursor(min_id=second.prev_min_id))
    assert [i.object.uri for i in newer.items] == [i.object.uri for i in first.items]


# -- who may read what -----------------------------------------------------------------------------


async def test_who_may_read_what(context: Context) -> None:
    # Given alice's posts of each visibility; carol follows her from remote.example,
    # where erin and the instance actor live too; dave is a stranger elsewhere
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    carol = await remote_actor(context, "/users/carol")
    erin = await remote_actor(context, "/users/erin")
    instance = await remote_actor(context, "/actor", "Application")
    dave = await store_actor(context.db, {
        "id": "https://elsewhere.example/users/dave", "type": "Person", "inbox": "https://elsewhere.example/i",
        "preferredUsername": "dave",
        "publicKey": {"id": "https://elsewhere.example/users/dave#main-key",
                      "publicKeyPem": public_key_to_pem(generate_rsa_key())},
    })  # fmt: skip
    await add_rows(context, [Follow(follower_uri=carol.uri, followee_uri=alice.uri,
                                    activity_uri=f"{REMOTE}/f/1", state="accepted")])  # fmt: skip
    public = await context.outbox.post(alice, "hello")
    unlisted = await context.outbox.post(alice, "quiet", visibility="unlisted")
    friends = await context.outbox.post(alice, "friends", visibility="followers")
    direct = await context.outbox.post(alice, "hi @bob", visibility="direct")

    async def verdict(obj: Object, viewer: Actor | None) -> str:
        try:
            await ensure_readable(context.db, obj, viewer)
        except (Unauthorized, Forbidden, NotFound) as exc:
            return str(exc.status)
        return "ok"

    # Then public and unlisted posts are for anyone
    for obj in (public, unlisted):
        assert [await verdict(obj, v) for v in (None, dave, carol)] == ["ok"] * 3
    # and followers-only: 401 anonymously, ok for a follower and for the author, 403 for
    # anyone else, the follower's neighbour and her server's instance actor included
    # (Mastodon's StatusPolicy#show?: the reader itself follows, not its server)
    readers = (None, carol, alice, instance, erin, dave, bob)
    assert [await verdict(friends, v) for v in readers] == [
        "401", "ok", "ok", "403", "403", "403", "403"
    ]  # fmt: skip
    # and direct: the author and addressees only, 404 for anyone else
    assert [await verdict(direct, v) for v in (None, bob, alice, carol)] == [
        "404", "ok", "ok", "404"
    ]  # fmt: skip
    # and someone alice blocks reads nothing of hers
    await add_rows(context, [Block(blocker_uri=alice.uri, blocked_uri=carol.uri,
                                   activity_uri=f"{REMOTE}/b/1")])  # fmt: skip
    assert await verdict(public, carol) == "404"
