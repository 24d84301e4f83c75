"""Who may read a post, and whose home feed it reaches (fedisocial.social.access).

Each test runs on SQLite and on PostgreSQL. The read rule is Mastodon's
(``StatusPolicy#show?``): followers-only posts are for the author, her accepted
followers and whom the post addresses, each as themselves (not their server);
direct posts for the author and the addressees; blocks hide everything. Remote
servers are played by stored actors whose keys sign the GETs and deliveries.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from fedisocial.ap.vocab import AS_PUBLIC
from fedisocial.app import Context
from fedisocial.federation.inbox import PROCESS
from fedisocial.federation.remote import store_actor
from fedisocial.social.collections import count
from fedisocial.social.timeline import home, home_feed
from fedisocial.store.models import Actor, Engagement, Follow, Job, Object, TimelineEntry
from tests.test_inbox import BOB, activity, actor_doc, deliver, follows, note, remote_key, run_jobs
from tests.test_objects import AS2, BROWSER, Remote, basic, local_user, path, remote

pytestmark = pytest.mark.usefixtures("app")


async def feed_uris(context: Context, actor: Actor) -> list[str]:
    return [i.object.uri for i in (await home_feed(context.db, actor.id)).items]


async def failed_jobs(context: Context) -> list[str]:
    async with context.db.session() as session:
        query = select(Job.last_error).where(Job.kind == PROCESS, Job.status == "failed")
        return [str(e) for e in await session.scalars(query)]


@pytest.fixture
async def bob(context: Context) -> Actor:
    """A remote actor (remote.example) whose key we have: he delivers and signs."""
    return await store_actor(context.db, actor_doc(BOB, remote_key()))


# -- 1. boosts do not carry private posts ---------------------------------------------------


async def test_a_boost_of_someone_elses_private_post_is_refused(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given alice's followers-only and direct posts, and dan, who follows the remote bob
    alice, dan = await local_user(context, "alice"), await local_user(context, "dan")
    await follows(context, dan.uri, BOB)
    friends = await context.outbox.post(alice, "friends only", visibility="followers")
    secret = await context.outbox.post(alice, "psst @dan", visibility="direct")
    # When bob announces them to his followers
    for name, post in (("1", friends), ("2", secret)):
        boost = activity("Announce", post.uri, name=name, to=[AS_PUBLIC],
                         cc=[f"{BOB}/followers"])  # fmt: skip
        assert (await deliver(client, boost)).status_code == 202
    await run_jobs(context)
    # Then both are refused with the reason, nothing is counted, and dan's feed has
    # only the direct message alice sent him
    errors = await failed_jobs(context)
    assert len(errors) == 2 and all("cannot be boosted" in e for e in errors)
    async with context.db.session() as session:
        assert list(await session.scalars(select(Engagement))) == []
    assert await feed_uris(context, dan) == [secret.uri]


async def test_an_author_may_boost_her_own_followers_only_post(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given alice follows bob, dan does not; bob posts for his followers; then erin
    # follows him too
    alice, dan = await local_user(context, "alice"), await local_user(context, "dan")
    erin = await local_user(context, "erin")
    await follows(context, alice.uri, BOB)
    post = note(f"{BOB}/notes/1", to=[f"{BOB}/followers"], cc=[])
    await deliver(client, activity("Create", post))
    await run_jobs(context)
    await follows(context, erin.uri, BOB)
    # When bob boosts his own post
    boost = activity("Announce", post, to=[f"{BOB}/followers"])
    await deliver(client, boost)
    await run_jobs(context)
    # Then the boost is taken and reaches erin, a follower, and nobody else; alice's feed,
    # which has the post, leaves the boost out (as Mastodon's home feed does)
    assert await failed_jobs(context) == []
    assert await feed_uris(context, erin) == [boost["id"]]
    assert await feed_uris(context, alice) == [post["id"]]
    assert await feed_uris(context, dan) == []


async def test_feed_rows_of_posts_the_owner_may_not_read_are_not_shown(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given dan's feed holds rows the old code wrote: bob's boost of alice's
    # followers-only post, and alice's direct message to someone else
    alice, dan = await local_user(context, "alice"), await local_user(context, "dan")
    friends = await context.outbox.post(alice, "friends only", visibility="followers")
    secret = await context.outbox.post(alice, "psst", visibility="direct")
    async with context.db.transaction() as session:
        boost = Object(uri=f"{BOB}/boosts/1", type="Announce", actor_uri=BOB, local=False,
                       visibility="public", object_uri=friends.uri,
                       data=activity("Announce", friends.uri))  # fmt: skip
        session.add(boost)
        await session.flush()
        session.add_all(TimelineEntry(owner_id=dan.id, object_id=row.id, published=row.published)
                        for row in (boost, friends, secret))  # fmt: skip
    # When dan reads his feed: as a page, its size, and his inbox collection over HTTP
    feed = await feed_uris(context, dan)
    total = await count(context.db, home(dan.id))
    inbox = (await client.get(path(f"{dan.inbox}?page=true"), headers=basic("dan"))).json()
    # Then none of them is there
    assert feed == [] and total == 0 and inbox["orderedItems"] == []


# -- 2. followers-only posts are for followers, each as themselves ----------------------------


@pytest.fixture
async def signers(context: Context) -> dict[str, Remote]:
    """carol follows alice from remote.example; dave lives there too, and its instance actor."""
    carol = await remote(context, "https://remote.example/users/carol")
    dave = await remote(context, "https://remote.example/users/dave")
    instance = await remote(context, "https://remote.example/actor", "Application")
    return {"carol": carol, "dave": dave, "instance": instance}


async def test_a_followers_only_post_is_for_followers_not_their_servers(
    client: httpx.AsyncClient, context: Context, signers: dict[str, Remote]
) -> None:
    # Given alice's followers-only post, liked, replied to privately and pinned;
    # carol (remote) and bob (local) follow alice
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    carol = signers["carol"]
    async with context.db.transaction() as session:
        session.add(Follow(follower_uri=carol.uri, followee_uri=alice.uri,
                           activity_uri=f"{carol.uri}/follow", state="accepted"))  # fmt: skip
    await context.outbox.follow(bob, "alice")
    post = await context.outbox.post(alice, "friends only", visibility="followers")
    reply = await context.outbox.post(alice, "me too", visibility="followers", in_reply_to=post.uri)
    await context.outbox.like(bob, post.uri)
    await context.outbox.pin(alice, post.uri)
    documents = [post.uri, f"{post.uri}/replies?page=true", f"{post.uri}/likes",
                 f"{post.uri}/shares"]  # fmt: skip
    # When the follower, a neighbour of hers and her server's instance actor fetch it
    for url in documents:
        assert (await client.get(path(url), headers=carol.get(url))).status_code == 200, url
        for name in ("dave", "instance"):
            response = await client.get(path(url), headers=signers[name].get(url))
            # Then only the follower reads it: the others get 403
            assert response.status_code == 403, (name, url)
    replies = (
        await client.get(
            path(f"{post.uri}/replies?page=true"),
            headers=carol.get(f"{post.uri}/replies?page=true"),
        )
    ).json()
    assert replies["orderedItems"] == [reply.uri]
    # and the outbox and the featured collection list it for her only
    for url in (f"{alice.uri}/outbox?page=true", f"{alice.uri}/collections/featured"):
        seen = {}
        for name, signer in signers.items():
            doc = (await client.get(path(url), headers=signer.get(url))).json()
            items = doc.get("orderedItems", [])
            seen[name] = [i["object"]["id"] if i["type"] == "Create" else i["id"] for i in items]
        assert post.uri in seen["carol"] and post.uri not in seen["dave"] + seen["instance"]
    # and the HTML page is for bob, signed in, not for a browser asking anonymously
    signed_in = await client.get(path(post.uri), headers={**basic("bob"), "Accept": BROWSER})
    assert signed_in.status_code == 200 and "friends only" in signed_in.text
    assert (await client.get(path(post.uri), headers={"Accept": BROWSER})).status_code == 401


async def test_the_profile_page_shows_each_reader_what_they_may_read(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given bob follows alice, who posts publicly, for her followers and to carol
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    await local_user(context, "carol")
    await context.outbox.follow(bob, "alice")
    await context.outbox.post(alice, "for everyone")
    await context.outbox.post(alice, "for friends", visibility="followers")
    await context.outbox.post(alice, "for carol @carol", visibility="direct")
    profile = path(f"{alice.uri}")

    async def shown(**headers: str) -> list[str]:
        html = (await client.get(profile, headers={"Accept": BROWSER, **headers})).text
        return [t for t in ("for everyone", "for friends", "for carol") if t in html]

    # When anyone, bob and carol open her profile, signed in or not
    # Then each sees what the read rule gives them
    assert await shown() == ["for everyone"]
    assert await shown(Authorization=basic("bob")["Authorization"]) == [
        "for everyone", "for friends"
    ]  # fmt: skip
    assert await shown(Authorization=basic("carol")["Authorization"]) == [
        "for everyone", "for carol"
    ]  # fmt: skip


async def test_a_blocked_reader_sees_nothing_of_the_blocker(
    client: httpx.AsyncClient, context: Context, signers: dict[str, Remote]
) -> None:
    # Given alice blocks carol, after a public post and a pin
    alice, carol = await local_user(context, "alice"), signers["carol"]
    post = await context.outbox.post(alice, "hello world")
    await context.outbox.pin(alice, post.uri)
    await context.outbox.block(alice, carol.uri)
    # When carol fetches the post, its replies, the outbox or the featured collection, signed
    for url in (post.uri, f"{post.uri}/replies", f"{alice.uri}/outbox",
                f"{alice.uri}/collections/featured"):  # fmt: skip
        response = await client.get(path(url), headers=carol.get(url))
        # Then it is 404, as if there were nothing
        assert response.status_code == 404, url
    # while anyone else still reads them
    dave = signers["dave"]
    assert (await client.get(path(post.uri), headers=dave.get(post.uri))).status_code == 200
    anonymous = await client.get(path(post.uri), headers={"Accept": AS2})
    assert anonymous.status_code == 200


# -- 3. blocks keep posts out of feeds, local or remote ------------------------------------------


async def test_a_local_post_does_not_reach_who_blocks_its_author_or_is_blocked(
    context: Context,
) -> None:
    # Given alice blocks bob, and bob blocks carol; dan follows bob
    alice, bob, carol, dan = [
        await local_user(context, n) for n in ("alice", "bob", "carol", "dan")
    ]
    await context.outbox.follow(dan, "bob")
    await context.outbox.block(alice, bob.uri)
    await context.outbox.block(bob, carol.uri)
    # When bob mentions alice and carol, publicly and directly
    public = await context.outbox.post(bob, "hey @alice @carol @dan")
    direct = await context.outbox.post(bob, "psst @alice @carol @dan", visibility="direct")
    # Then neither reaches alice (she blocks him) nor carol (he blocks her); dan gets both
    assert await feed_uris(context, alice) == []
    assert await feed_uris(context, carol) == []
    assert await feed_uris(context, dan) == [direct.uri, public.uri]


async def test_a_boost_of_a_blocked_authors_post_stays_out_of_the_feed(
    context: Context,
) -> None:
    # Given alice follows dan and blocks bob; carol blocks alice
    alice, bob, carol, dan = [
        await local_user(context, n) for n in ("alice", "bob", "carol", "dan")
    ]
    await context.outbox.follow(alice, "dan")
    await context.outbox.block(alice, bob.uri)
    await context.outbox.block(carol, alice.uri)
    bobs = await context.outbox.post(bob, "bob's")
    carols = await context.outbox.post(carol, "carol's")
    # When dan boosts both posts
    await context.outbox.boost(dan, bobs.uri)
    await context.outbox.boost(dan, carols.uri)
    # Then neither boost is in alice's feed
    assert await feed_uris(context, alice) == []


async def test_a_remote_post_does_not_reach_who_blocks_its_author(
    client: httpx.AsyncClient, context: Context, bob: Actor
) -> None:
    # Given alice and dan follow the remote bob; alice then blocks him
    alice, dan = await local_user(context, "alice"), await local_user(context, "dan")
    await follows(context, alice.uri, BOB)
    await follows(context, dan.uri, BOB)
    await context.outbox.block(alice, BOB)
    # When bob posts, mentioning alice
    post = note(f"{BOB}/notes/1", cc=[f"{BOB}/followers", alice.uri])
    await deliver(client, activity("Create", post))
    await run_jobs(context)
    # Then dan sees it, alice does not
    assert await feed_uris(context, dan) == [post["id"]]
    assert await feed_uris(context, alice) == []
