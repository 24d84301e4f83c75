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
from fedisocial.store.models import Actor, Engagement, Job, Object, TimelineEntry
from tests.test_inbox import BOB, activity, actor_doc, deliver, follows, note, remote_key, run_jobs
from tests.test_objects import basic, local_user, path
from tests.test_objects import context as context

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
    # Given alice follows bob, dan does not; bob posts for his followers
    alice, dan = await local_user(context, "alice"), await local_user(context, "dan")
    await follows(context, alice.uri, BOB)
    post = note(f"{BOB}/notes/1", to=[f"{BOB}/followers"], cc=[])
    await deliver(client, activity("Create", post))
    await run_jobs(context)
    # When bob boosts his own post
    boost = activity("Announce", post, to=[f"{BOB}/followers"])
    await deliver(client, boost)
    await run_jobs(context)
    # Then the boost is taken and reaches alice, a follower, and nobody else
    assert await failed_jobs(context) == []
    assert await feed_uris(context, alice) == [boost["id"], post["id"]]
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
