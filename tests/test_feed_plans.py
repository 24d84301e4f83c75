"""Feed writes stay index searches however big the feeds grow: the fan-out of a batch of
received posts (``local_audiences``) reads the batch's posts by key and their authors'
followers by index, and a boost's fall-off check reads a feed's newest entries in order."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

from fedisocial.social.access import Reach, local_audiences
from fedisocial.social.timeline import add_all_to_feeds
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Follow, Object, TimelineEntry, utcnow
from tests.conftest import analyze, query_plan, sql_sent

LOCAL = "https://local.test/users/alice"


def _actor(uri: str, *, local: bool) -> dict[str, object]:
    return {"uri": uri, "type": "Person", "username": uri.rsplit("/", 1)[-1],
            "domain": uri.split("/")[2], "local": local, "inbox": f"{uri}/inbox",
            "public_key_id": f"{uri}#main-key", "public_key_pem": "-"}  # fmt: skip


def _post(author: str, n: int, published: object) -> dict[str, object]:
    uri = f"{author}/statuses/{n}"
    return {"uri": uri, "type": "Note", "actor_uri": author, "published": published,
            "visibility": "public", "data": {"id": uri, "type": "Note"}}  # fmt: skip


async def test_a_batch_reads_its_posts_not_their_authors_histories(db: Database) -> None:
    # Given a local account following 400 remote accounts with 25 posts each
    authors = [f"https://remote{i % 20}.test/users/u{i}" for i in range(400)]
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(insert(Actor), [_actor(LOCAL, local=True)]
                              + [_actor(uri, local=False) for uri in authors])  # fmt: skip
        await session.execute(insert(Follow), [
            {"follower_uri": LOCAL, "followee_uri": uri, "activity_uri": f"{uri}#follow",
             "state": "accepted"} for uri in authors])  # fmt: skip
        await session.execute(
            insert(Object),
            [_post(uri, n, now - timedelta(hours=n)) for uri in authors for n in range(1, 26)],
        )
        # and a batch of 100 new posts by a quarter of them
        await session.execute(insert(Object), [_post(uri, 0, now) for uri in authors[::4]])
    await analyze(db)  # as autovacuum leaves PostgreSQL after such a load
    # When the batch's local audiences are looked up
    async with db.session() as session:
        batch = list(await session.scalars(select(Object).where(Object.uri.like("%/statuses/0"))))
        with sql_sent(db) as sent:
            audiences = await local_audiences(session, [Reach(post) for post in batch])
    # Then each post reaches its one local follower
    owner = await _id(db, LOCAL)
    assert sorted(audiences) == sorted((post.id, owner) for post in batch)
    # And the lookup reads the posts by key: no walk through each author's posts (which
    # grows with every post an author makes, read again for every batch)
    (statement, parameters) = next((s, p) for s, p in sent if "follows" in s)
    plan = await query_plan(db, statement, parameters)
    assert "ix_objects_actor_published" not in plan, plan
    assert "SCAN objects" not in plan and "Seq Scan on objects" not in plan, plan


async def _id(db: Database, uri: str) -> int:
    async with db.session() as session:
        found = await session.scalar(select(Actor.id).where(Actor.uri == uri))
    assert found is not None
    return found


async def test_a_boosts_fall_off_check_reads_the_newest_entries_of_a_feed(db: Database) -> None:
    # Given a local feed of 3,000 entries published in the same second (a busy relay's posts
    # render their time to the second) and a boost of its newest post
    author = "https://remote.test/users/bob"
    now = utcnow().replace(microsecond=0)
    async with db.transaction() as session:
        await session.execute(insert(Actor), [_actor(LOCAL, local=True),
                                              _actor(author, local=False)])  # fmt: skip
        await session.execute(insert(Object), [_post(author, n, now) for n in range(3_000)])
    owner = await _id(db, LOCAL)
    async with db.transaction() as session:
        posts = list(await session.scalars(select(Object).order_by(Object.id)))
        await session.execute(
            insert(TimelineEntry),
            [{"owner_id": owner, "object_id": post.id, "published": now} for post in posts],
        )
    await analyze(db)
    boost_uri = "https://remote.test/users/carol/statuses/boost"
    async with db.transaction() as session:
        boost = Object(
            uri=boost_uri,
            type="Announce",
            actor_uri="https://remote.test/users/carol",
            object_uri=posts[-1].uri,
            published=now,
            data={"id": boost_uri},
        )
        session.add(boost)
        # When the boost is added to feeds
        with sql_sent(db) as sent:
            await add_all_to_feeds(session, [Reach(boost, boosted=posts[-1])])
    # Then the feed's fall-off entry (its 40th newest) is read from the feed's index in
    # order, without sorting the 3,000 entries that share its time
    (statement, parameters) = next((s, p) for s, p in sent if "OFFSET" in s)
    assert "FROM timeline_entries" in statement
    plan = await query_plan(db, statement, parameters)
    assert "ix_timeline_owner_published" in plan, plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
