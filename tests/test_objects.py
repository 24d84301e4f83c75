"""Objects, activities and collections at their ids, over HTTP (ASGI).

Each test runs on SQLite and on PostgreSQL. Remote servers are played by
actors stored with ``remote.store_actor`` whose keys sign the GETs
(draft-cavage, as Mastodon signs); the secure-mode round trip at the end runs
two real instances on loopback.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import event
from starlette.applications import Starlette

from fedisocial.ap.httpsig import generate_rsa_key, public_key_to_pem, sign_request
from fedisocial.app import Context, create_app
from fedisocial.config import Settings
from fedisocial.federation.remote import store_actor
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.store.db import Database, migrate
from fedisocial.store.models import Actor, Engagement, Follow
from tests.conftest import free_port
from tests.loopback import serve

AS2 = "application/activity+json"
LD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
BASE = "http://127.0.0.1:8000"
PASSWORD = "long enough password"


@dataclass
class Remote:
    """An actor on another server, with the key it signs with."""

    uri: str
    key: rsa.RSAPrivateKey

    def get(self, url: str, accept: str = AS2) -> dict[str, str]:
        """Headers of a GET of ``url`` signed by this actor."""
        signed = sign_request("GET", url, {}, None, f"{self.uri}#main-key", self.key)
        return {**signed, "Accept": accept}


async def remote(context: Context, uri: str, kind: str = "Person") -> Remote:
    key = generate_rsa_key()
    await store_actor(context.db, {
        "@context": "https://www.w3.org/ns/activitystreams", "id": uri, "type": kind,
        "preferredUsername": uri.rsplit("/", 1)[-1], "inbox": f"{uri}/inbox",
        "publicKey": {"id": f"{uri}#main-key", "owner": uri,
                      "publicKeyPem": public_key_to_pem(key)},
    })  # fmt: skip
    return Remote(uri, key)


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": AS2}


async def local_user(context: Context, name: str) -> Actor:
    await create_user(context.db, context.urls, name, PASSWORD, display_name=name.title())
    return await find_local_actor(context.db, context.urls, name)


@pytest.fixture
async def alice(context: Context) -> Actor:
    return await local_user(context, "alice")


@pytest.fixture
async def bob(context: Context) -> Actor:
    return await local_user(context, "bob")


def path(uri: str) -> str:
    return uri.removeprefix(BASE)


async def get_as2(client: httpx.AsyncClient, uri: str, **headers: str) -> httpx.Response:
    return await client.get(path(uri), headers={"Accept": AS2, **headers})


# -- posts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [AS2, LD])
async def test_a_post_is_as2_for_servers(
    client: httpx.AsyncClient, context: Context, alice: Actor, accept: str
) -> None:
    # Given a public post of alice's
    post = await context.outbox.post(alice, "Hello #fediverse", summary="greeting")
    # When a server fetches its id, or its /@alice/ID alias
    for url in (post.uri, f"/@alice/{post.uri.rsplit('/', 1)[-1]}"):
        response = await client.get(path(url), headers={"Accept": accept})
        # Then it gets the Note as stored, as activity+json, cacheable, varying on Accept
        assert response.status_code == 200
        assert response.headers["content-type"] == AS2
        assert response.headers["vary"] == "Accept"
        assert "public" in response.headers["cache-control"]
        note = response.json()
        assert note == post.data
        assert note["type"] == "Note" and note["summary"] == "greeting"
        assert note["replies"] == f"{post.uri}/replies"


async def test_a_post_is_a_page_for_browsers(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    post = await context.outbox.post(alice, "Hello browsers")
    for url in (post.uri, f"/@alice/{post.uri.rsplit('/', 1)[-1]}"):
        response = await client.get(path(url), headers={"Accept": BROWSER})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["vary"] == "Accept"
        assert "Hello browsers" in response.text and "@alice@127.0.0.1:8000" in response.text
        assert f'type="application/activity+json" href="{post.uri}"' in response.text


async def test_unknown_posts_are_404(client: httpx.AsyncClient, alice: Actor) -> None:
    for url in ("/users/alice/statuses/1", "/users/nobody/statuses/1", "/@alice/12"):
        response = await client.get(url, headers={"Accept": AS2})
        assert response.status_code == 404
    html = await client.get("/users/alice/statuses/1", headers={"Accept": BROWSER})
    assert html.status_code == 404 and "<html" in html.text


async def test_the_username_case_does_not_matter(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    post = await context.outbox.post(alice, "hi")
    response = await get_as2(client, post.uri.replace("/alice/", "/ALICE/"))
    assert response.status_code == 200 and response.json()["id"] == post.uri


async def test_a_deleted_post_is_gone(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    # Given a post alice deleted
    post = await context.outbox.post(alice, "regrettable")
    await context.outbox.delete(alice, post.uri)
    # When a server fetches it, it gets 410 with a Tombstone
    response = await get_as2(client, post.uri)
    assert response.status_code == 410
    tombstone = response.json()
    assert tombstone["type"] == "Tombstone" and tombstone["id"] == post.uri
    assert tombstone["formerType"] == "Note" and "@context" in tombstone
    assert "regrettable" not in response.text
    # and a browser gets a friendly page, still 410
    page = await client.get(path(post.uri), headers={"Accept": BROWSER})
    assert page.status_code == 410 and "This post was deleted" in page.text
    assert "regrettable" not in page.text
    # and its collections are gone too
    assert (await get_as2(client, f"{post.uri}/replies")).status_code == 410


# -- who may read what ------------------------------------------------------------------------


async def test_followers_only_posts_need_a_signed_get_by_a_follower(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    # Given a followers-only post; carol follows alice from remote.example, dave does not
    post = await context.outbox.post(alice, "friends only", visibility="followers")
    carol = await remote(context, "https://remote.example/users/carol")
    instance = await remote(context, "https://remote.example/actor", "Application")
    dave = await remote(context, "https://elsewhere.example/users/dave")
    async with context.db.transaction() as session:
        session.add(Follow(follower_uri=carol.uri, followee_uri=alice.uri,
                           activity_uri=f"{carol.uri}/follow", state="accepted"))  # fmt: skip
    # When it is fetched anonymously, it is 401 with a message (HTML too)
    anonymous = await get_as2(client, post.uri)
    assert anonymous.status_code == 401 and "followers only" in anonymous.json()["error"]
    page = await client.get(path(post.uri), headers={"Accept": BROWSER})
    assert page.status_code == 401 and "friends only" not in page.text
    # and signed by the follower it is served, privately
    response = await client.get(path(post.uri), headers=carol.get(post.uri))
    assert response.status_code == 200 and response.json()["content"] == "<p>friends only</p>"
    assert response.headers["cache-control"] == "private, no-store"
    # and signed by a stranger, or by her server's instance actor (not a follower), it is
    # 403; with a signature that does not verify, 401
    for signer in (dave, instance):
        stranger = await client.get(path(post.uri), headers=signer.get(post.uri))
        assert stranger.status_code == 403
    forged = Remote(carol.uri, dave.key).get(post.uri)
    assert (await client.get(path(post.uri), headers=forged)).status_code == 401


async def test_direct_posts_are_for_their_addressees_only(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given a direct message from alice to carol (remote) and bob
    carol = await remote(context, "https://remote.example/users/carol")
    dave = await remote(context, "https://remote.example/users/dave")
    post = await context.outbox.post(alice, "psst @carol@remote.example @bob",
                                     visibility="direct")  # fmt: skip
    # Then anonymous readers and strangers get 404, as if it did not exist
    assert (await get_as2(client, post.uri)).status_code == 404
    assert (await client.get(path(post.uri), headers=dave.get(post.uri))).status_code == 404
    html = await client.get(path(post.uri), headers={"Accept": BROWSER})
    assert html.status_code == 404 and "psst" not in html.text
    # and the addressees read it: carol signed, bob signed in, alice too
    assert (await client.get(path(post.uri), headers=carol.get(post.uri))).status_code == 200
    for name in ("bob", "alice"):
        assert (await client.get(path(post.uri), headers=basic(name))).status_code == 200
    assert (await client.get(path(post.uri), headers=basic("bob", "wrong"))).status_code == 401


# -- activities ----------------------------------------------------------------------------------


async def test_activities_are_dereferenceable(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice's post (then edited), bob's like and boost of it, and bob's follow of alice
    post = await context.outbox.post(alice, "first")
    create_uri = (await get_as2(client, f"{alice.uri}/outbox?page=true")).json()[
        "orderedItems"][0]["id"]  # fmt: skip
    await context.outbox.edit(alice, post.uri, "first, edited")
    like = await context.outbox.like(bob, post.uri)
    boost = await context.outbox.boost(bob, post.uri)
    follow = await context.outbox.follow(bob, "alice")
    # When servers fetch the activities
    create = (await get_as2(client, create_uri)).json()
    # Then the Create shows the post as it is now
    assert create["type"] == "Create" and create["object"]["id"] == post.uri
    assert create["object"]["content"] == "<p>first, edited</p>" and "@context" in create
    # and the like and the boost are as public as the post
    for activity in (like, boost):
        response = await get_as2(client, activity.uri)
        assert response.status_code == 200 and response.json() == activity.data
    # and the follow is for alice (and bob) only
    assert (await get_as2(client, follow.uri)).status_code == 404
    signed_in = await client.get(path(follow.uri), headers=basic("alice"))
    assert signed_in.status_code == 200 and signed_in.json()["type"] == "Follow"
    # and browsers see the post for the Create, a page for the boost
    page = await client.get(path(create_uri), headers={"Accept": BROWSER})
    assert page.status_code == 302 and page.headers["location"] == post.uri
    boosted = await client.get(path(boost.uri), headers={"Accept": BROWSER})
    assert boosted.status_code == 200 and "boosted" in boosted.text and post.uri in boosted.text


async def test_withdrawn_and_deleted_activities_are_gone(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    post = await context.outbox.post(alice, "soon gone")
    create_uri = (await get_as2(client, f"{alice.uri}/outbox?page=true")).json()[
        "orderedItems"][0]["id"]  # fmt: skip
    boost = await context.outbox.boost(bob, post.uri)
    await context.outbox.unboost(bob, post.uri)
    await context.outbox.delete(alice, post.uri)
    for uri, former in ((boost.uri, "Announce"), (create_uri, "Create")):
        response = await get_as2(client, uri)
        assert response.status_code == 410
        assert response.json()["type"] == "Tombstone" and response.json()["formerType"] == former
    page = await client.get(path(boost.uri), headers={"Accept": BROWSER})
    assert page.status_code == 410


# -- collections ---------------------------------------------------------------------------------


async def walk(client: httpx.AsyncClient, collection: str, **headers: str) -> dict[str, Any]:
    """The collection document, with every page followed from ``first`` under ``pages``."""
    root = (await get_as2(client, collection, **headers)).json()
    assert root["type"] == "OrderedCollection" and root["id"] == collection
    pages, url = [], root["first"]
    while url:
        page = (await get_as2(client, url, **headers)).json()
        assert page["type"] == "OrderedCollectionPage" and page["partOf"] == collection
        pages.append(page)
        url = page.get("next")
    return {**root, "pages": pages}


async def test_outbox_is_paged_newest_first(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    # Given 22 public posts and a followers-only one
    posts = [await context.outbox.post(alice, f"post {i}") for i in range(22)]
    await context.outbox.post(alice, "friends", visibility="followers")
    # When a server walks alice's outbox (the URL her actor document names)
    actor = (await get_as2(client, alice.uri)).json()
    outbox = await walk(client, actor["outbox"])
    # Then it finds 22 Creates, newest first, 20 to a page, with the posts embedded
    assert outbox["totalItems"] == 22
    assert outbox["last"] == f"{actor['outbox']}?page=true&min_id=0"
    assert [len(p["orderedItems"]) for p in outbox["pages"]] == [20, 2]
    items = [i for p in outbox["pages"] for i in p["orderedItems"]]
    assert [i["object"]["id"] for i in items] == [p.uri for p in reversed(posts)]
    assert all(i["type"] == "Create" for i in items)
    # and the second page links back to the first
    second = outbox["pages"][1]
    assert "next" not in second and "prev" not in outbox["pages"][0]
    back = (await get_as2(client, second["prev"])).json()
    assert back["orderedItems"] == outbox["pages"][0]["orderedItems"]
    # and the last page is the oldest one
    last = (await get_as2(client, outbox["last"])).json()
    assert last["orderedItems"][-1]["object"]["id"] == posts[0].uri


async def test_followers_and_following_list_actor_ids(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    async with context.db.transaction() as session:
        session.add_all(
            Follow(follower_uri=f"https://remote.example/users/u{i}", followee_uri=alice.uri,
                   activity_uri=f"https://remote.example/f/{i}", state="accepted")
            for i in range(21)
        )  # fmt: skip
    await context.outbox.follow(bob, "alice")
    await context.outbox.follow(alice, "bob")
    followers = await walk(client, f"{alice.uri}/followers")
    assert followers["totalItems"] == 22
    ids = [i for p in followers["pages"] for i in p["orderedItems"]]
    assert len(ids) == 22 and ids[0] == bob.uri and [len(p["orderedItems"]) for p in
                                                       followers["pages"]] == [20, 2]  # fmt: skip
    following = await walk(client, f"{alice.uri}/following")
    assert following["totalItems"] == 1 and following["pages"][0]["orderedItems"] == [bob.uri]


async def test_featured_lists_pinned_posts(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    # Given two posts, the second pinned
    await context.outbox.post(alice, "not pinned")
    pinned = await context.outbox.post(alice, "pinned")
    empty = (await get_as2(client, f"{alice.uri}/collections/featured")).json()
    assert empty["totalItems"] == 0 and "orderedItems" not in empty  # AS2 Core: no empty arrays
    await context.outbox.pin(alice, pinned.uri)
    # When the featured collection is fetched
    featured = (await get_as2(client, f"{alice.uri}/collections/featured")).json()
    # Then it holds the pinned Note, embedded
    assert featured["type"] == "OrderedCollection" and featured["totalItems"] == 1
    (note,) = featured["orderedItems"]
    assert note["id"] == pinned.uri and note["type"] == "Note" and "@context" not in note


async def test_replies_likes_and_shares_of_a_post(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice's post with bob's reply, like and boost, and 20 more likes from elsewhere
    post = await context.outbox.post(alice, "hi")
    reply = await context.outbox.post(bob, "hello", in_reply_to=post.uri)
    await context.outbox.post(bob, "psst", in_reply_to=post.uri, visibility="direct")
    like = await context.outbox.like(bob, post.uri)
    boost = await context.outbox.boost(bob, post.uri)
    async with context.db.transaction() as session:
        session.add_all(
            Engagement(kind="like", actor_uri=f"https://remote.example/u/{i}",
                       object_uri=post.uri, activity_uri=f"https://remote.example/likes/{i}")
            for i in range(20)
        )  # fmt: skip
    # When the collections the Note names are walked
    note = (await get_as2(client, post.uri)).json()
    replies = await walk(client, note["replies"])
    likes = await walk(client, note["likes"])
    shares = await walk(client, note["shares"])
    # Then each has its total and its ids, newest first
    assert replies["totalItems"] == 1 and replies["pages"][0]["orderedItems"] == [reply.uri]
    assert likes["totalItems"] == 21 and [len(p["orderedItems"]) for p in likes["pages"]] == [
        20, 1
    ]  # fmt: skip
    assert likes["pages"][0]["orderedItems"][0] == "https://remote.example/likes/19"
    assert likes["pages"][1]["orderedItems"] == [like.uri]
    assert shares["totalItems"] == 1 and shares["pages"][0]["orderedItems"] == [boost.uri]


async def test_collections_send_browsers_to_pages(
    client: httpx.AsyncClient, context: Context, alice: Actor
) -> None:
    post = await context.outbox.post(alice, "hi")
    for url, target in ((f"{alice.uri}/outbox", f"{BASE}/@alice"),
                        (f"{post.uri}/likes", post.uri)):  # fmt: skip
        response = await client.get(path(url), headers={"Accept": BROWSER})
        assert response.status_code == 302 and response.headers["location"] == target
    # and plain JSON clients get the collection
    plain = await client.get("/users/alice/outbox?page=true", headers={"Accept": "*/*"})
    assert plain.status_code == 200 and plain.json()["type"] == "OrderedCollectionPage"


async def test_collection_errors_are_clear(client: httpx.AsyncClient, alice: Actor) -> None:
    bad = await client.get("/users/alice/outbox?page=true&max_id=x", headers={"Accept": AS2})
    assert bad.status_code == 400 and "max_id" in bad.json()["error"]
    both = await client.get("/users/alice/outbox?max_id=1&min_id=2", headers={"Accept": AS2})
    assert both.status_code == 400
    missing = await client.get("/users/nobody/followers", headers={"Accept": AS2})
    assert missing.status_code == 404
    instance = await client.get("/actor/outbox", headers={"Accept": AS2})
    assert instance.json()["totalItems"] == 0


@contextmanager
def counting_statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run inside the block."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_reads_take_as_many_queries_for_many_items_as_for_few(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    """No N+1: a page of 20 items costs the queries of a page of 2."""
    await context.outbox.follow(alice, "bob")
    reads = [
        (f"{alice.uri}/outbox?page=true", {"Accept": AS2}),
        (f"{alice.inbox}?page=true", basic("alice")),
        (f"{BASE}/@alice", {"Accept": BROWSER}),
    ]

    async def cost() -> list[int]:
        numbers = []
        for url, headers in reads:
            with counting_statements(context.db) as statements:
                assert (await client.get(path(url), headers=headers)).status_code == 200
            numbers.append(len(statements))
        return numbers

    await cost()  # the first signed-in read creates the sign-in throttle's counters
    for who in (alice, bob):
        post = await context.outbox.post(who, "few")
        await context.outbox.like(bob, post.uri)
    await context.outbox.boost(bob, post.uri)
    few = await cost()
    for i in range(20):
        post = await context.outbox.post(alice if i % 2 else bob, f"many {i}")
        await context.outbox.boost(bob, post.uri)
    assert await cost() == few


# -- the home feed (the owner's inbox) -----------------------------------------------------------


async def test_the_owner_reads_the_home_feed(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given alice follows bob, who posts 21 times and boosts one of carol's posts
    carol = await local_user(context, "carol")
    await context.outbox.follow(alice, "bob")
    posts = [await context.outbox.post(bob, f"bob {i}") for i in range(21)]
    carols = await context.outbox.post(carol, "carol's")
    boost = await context.outbox.boost(bob, carols.uri)
    # When alice reads her inbox with her password
    feed = await walk(client, alice.inbox, **basic("alice"))
    # Then she gets the boost (with carol's post) and bob's posts, newest first, paged
    assert feed["totalItems"] == 22
    items = [i for p in feed["pages"] for i in p["orderedItems"]]
    assert [len(p["orderedItems"]) for p in feed["pages"]] == [20, 2]
    assert items[0]["id"] == boost.uri and items[0]["object"]["id"] == carols.uri
    assert [i["id"] for i in items[1:]] == [p.uri for p in reversed(posts)]
    response = await client.get(path(alice.inbox), headers=basic("alice"))
    assert response.headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize("name", ["inbox", "liked", "pendingFollowers", "pendingFollowing"])
async def test_only_the_owner_reads_their_own_collections(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor, name: str
) -> None:
    carol = await remote(context, "https://remote.example/users/carol")
    url = f"{alice.uri}/{name}"
    # Anonymous, bad or unknown credentials, a signed GET: 401, saying both ways in
    for headers in (
        {"Accept": AS2},
        basic("alice", "wrong password"),
        basic("nobody"),
        {"Authorization": "Basic !!!", "Accept": AS2},
        carol.get(url),
    ):
        response = await client.get(path(url), headers=headers)
        assert response.status_code == 401, headers
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and ", Basic " in challenge
        assert response.json()["error"]
    # Another account of ours: 403
    response = await client.get(path(url), headers=basic("bob"))
    assert response.status_code == 403 and response.json()["error"].startswith("only alice ")
    # The owner: the collection
    owned = await client.get(path(url), headers=basic("alice"))
    assert owned.status_code == 200 and owned.json()["id"] == url
    assert owned.headers["cache-control"] == "private, no-store"


async def test_liked_and_pending_follows_list_what_the_owner_did(
    client: httpx.AsyncClient, context: Context, alice: Actor, bob: Actor
) -> None:
    # Given bob locked, alice asking to follow him, and alice liking a post of bob's
    async with context.db.transaction() as session:
        (await session.get(Actor, bob.id)).manually_approves_followers = True  # type: ignore[union-attr]
    follow = await context.outbox.follow(alice, bob.uri)
    post = await context.outbox.post(bob, "a post alice likes")
    await context.outbox.like(alice, post.uri)

    async def items(owner: str, url: str) -> list[Any]:
        page = await client.get(path(f"{url}?page=true"), headers=basic(owner))
        return list(page.json()["orderedItems"])

    # Then alice's liked lists the post, her pendingFollowing the Follow, bob's pendingFollowers too
    assert await items("alice", f"{alice.uri}/liked") == [post.uri]
    [sent] = await items("alice", f"{alice.uri}/pendingFollowing")
    assert sent["type"] == "Follow" and sent["id"] == follow.uri
    assert sent["actor"] == alice.uri and sent["object"] == bob.uri and sent["published"]
    assert await items("bob", f"{bob.uri}/pendingFollowers") == [sent]
    # When bob accepts, both pending collections are empty (their pages still list no items)
    await context.outbox.accept_follow(bob, follow.uri)
    assert await items("alice", f"{alice.uri}/pendingFollowing") == []
    assert await items("bob", f"{bob.uri}/pendingFollowers") == []
    # And the actor document names all three
    actor = (await client.get(path(alice.uri), headers={"Accept": AS2})).json()
    assert actor["liked"] == f"{alice.uri}/liked"
    assert actor["pendingFollowers"] == f"{alice.uri}/pendingFollowers"
    assert actor["pendingFollowing"] == f"{alice.uri}/pendingFollowing"


# -- secure mode (authorized fetch) ----------------------------------------------------------------


@dataclass
class Secure:
    """An instance in secure mode (``authorized_fetch = true``) and a client of it."""

    client: httpx.AsyncClient
    context: Context


@pytest.fixture
async def secure(settings: Settings, db: Database) -> AsyncIterator[Secure]:
    application = create_app(dataclasses.replace(settings, authorized_fetch=True), database=db)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield Secure(client, application.state.context)


async def test_secure_mode_needs_signed_gets(secure: Secure) -> None:
    # Given an instance in secure mode with a public post, and a known remote actor
    context, client = secure.context, secure.client
    alice = await local_user(context, "alice")
    post = await context.outbox.post(alice, "public, but only to signed readers")
    carol = await remote(context, "https://remote.example/users/carol")
    urls = [alice.uri, post.uri, f"{alice.uri}/outbox", f"{alice.uri}/outbox?page=true",
            f"{alice.uri}/followers", f"{alice.uri}/collections/featured",
            f"{post.uri}/replies", "http://127.0.0.1:8000/actor/outbox"]  # fmt: skip
    for url in urls:
        # When a server fetches AS2 unsigned, it gets 401
        unsigned = await get_as2(client, url)
        assert unsigned.status_code == 401, url
        assert "signed" in unsigned.json()["error"]
        # and signed by a known actor, the document, never cached for others
        signed = await client.get(path(url), headers=carol.get(url))
        assert signed.status_code == 200, url
        assert "public" not in signed.headers["cache-control"]
    # Then the instance actor stays readable, so that servers can verify our fetches
    instance = await get_as2(client, f"{BASE}/actor")
    assert instance.status_code == 200 and instance.json()["type"] == "Application"
    # and discovery and the HTML pages stay open
    finger = await client.get("/.well-known/webfinger", params={"resource": alice.uri})
    assert finger.status_code == 200
    assert (await client.get("/.well-known/nodeinfo")).status_code == 200
    page = await client.get(path(post.uri), headers={"Accept": BROWSER})
    assert page.status_code == 200 and "only to signed readers" in page.text
    # and a stale signature is refused
    stale = sign_request("GET", post.uri, {"Date": "Mon, 01 Jan 2024 00:00:00 GMT"}, None,
                         f"{carol.uri}#main-key", carol.key)  # fmt: skip
    headers = {**stale, "Date": "Mon, 01 Jan 2024 00:00:00 GMT", "Accept": AS2}
    old = await client.get(path(post.uri), headers=headers)
    assert old.status_code == 401 and "old" in old.json()["error"]


async def test_secure_mode_refuses_blocked_readers(secure: Secure) -> None:
    context, client = secure.context, secure.client
    alice = await local_user(context, "alice")
    post = await context.outbox.post(alice, "not for carol")
    carol = await remote(context, "https://remote.example/users/carol")
    await context.outbox.block(alice, carol.uri)
    for url in (post.uri, f"{alice.uri}/outbox"):
        assert (await client.get(path(url), headers=carol.get(url))).status_code == 404


@asynccontextmanager
async def served(application: Starlette, port: int) -> AsyncIterator[None]:
    """Run ``application`` (lifespan included) on 127.0.0.1:``port`` in this event loop."""
    async with application.router.lifespan_context(application), serve(application, port):
        yield


def instance_settings(settings: Settings, port: int, data: Path) -> Settings:
    return dataclasses.replace(settings, base_url=f"http://127.0.0.1:{port}",
                               data_dir=str(data), authorized_fetch=True)  # fmt: skip


async def test_two_secure_instances_fetch_from_each_other(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Our fetches are signed by the instance actor, which stays readable in secure mode."""
    # Given two instances in secure mode on loopback; the first has a post of alice's
    first_port, second_port = free_port(), free_port()
    other_db = Database(f"sqlite+aiosqlite:///{tmp_path / 'second.db'}")
    await migrate(other_db)
    first = create_app(instance_settings(settings, first_port, tmp_path / "1"), database=db)
    second = create_app(instance_settings(settings, second_port, tmp_path / "2"),
                        database=other_db)  # fmt: skip
    try:
        async with served(first, first_port), served(second, second_port):
            one: Context = first.state.context
            alice = await local_user(one, "alice")
            post = await one.outbox.post(alice, "across the fediverse")
            # When the second instance's client fetches the post and alice
            two: Context = second.state.context
            fetched = await two.client.get_json(post.uri)
            actor = await two.client.get_json(alice.uri)
            # Then both arrive: the first verified the second's instance actor's signature
            assert fetched["id"] == post.uri and actor["id"] == alice.uri
            # and an unsigned fetch is refused
            async with httpx.AsyncClient() as plain:
                refused = await plain.get(post.uri, headers={"Accept": AS2})
            assert refused.status_code == 401
    finally:
        await other_db.close()
