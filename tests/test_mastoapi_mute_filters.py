"""Mutes hide replies to and mentions of the muted account, on SQLite and PostgreSQL.

Mastodon's FeedManager#filter_from_home drops a status from the muter's home when its
author, the author of what it boosts, or anyone it mentions is muted; replies to a
muted account go with it. The muter's own posts always stay. We apply the same to the
public and tag timelines the muter reads.
https://docs.joinmastodon.org/methods/accounts/#mute
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import update

from fedisocial.app import Context
from fedisocial.social import mutes, timeline
from fedisocial.store.models import Mute, utcnow
from tests.c2s_helpers import Person, person
from tests.test_mastoapi_timelines import ids, plan_of


async def test_home_and_public_drop_replies_to_and_mentions_of_a_muted_account(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    # Given alice follows carol and bob, and mutes bob
    await person(context, "bob")
    me, her = await context.outbox.actor_of("alice"), await context.outbox.actor_of("carol")
    bob = await context.outbox.actor_of("bob")
    await context.outbox.follow(me, "carol")
    await context.outbox.follow(me, "bob")
    his = await context.outbox.post(bob, "bob speaks")
    reply = await context.outbox.post(her, "answering bob", in_reply_to=his.uri)
    mention = await context.outbox.post(her, "hey @bob")
    plain = await context.outbox.post(her, "just carol")
    mine = await context.outbox.post(me, "my own answer", in_reply_to=his.uri)
    talked = await context.outbox.post(me, "a post about @carol")
    boost_of_mention = await context.outbox.boost(her, mention.uri)
    home = "/api/v1/timelines/home"
    before = ids(await client.get(home, headers=alice.auth))
    assert str(reply.id) in before and str(mention.id) in before
    await mutes.mute(context.db, me, bob)
    # When alice reads her home timeline
    shown = ids(await client.get(home, headers=alice.auth))
    # Then bob's post, the reply to him, the mention of him and its boost are gone;
    # her own reply to bob stays
    assert shown == [str(talked.id), str(mine.id), str(plain.id)]
    assert str(boost_of_mention.id) not in shown
    # the public timeline she reads drops them too; anyone else still sees them
    public = ids(await client.get("/api/v1/timelines/public?local=true", headers=alice.auth))
    assert public == [str(talked.id), str(plain.id)]
    anyone = ids(await client.get("/api/v1/timelines/public?local=true"))
    assert str(mention.id) in anyone and str(his.id) in anyone
    # carol, who mutes no one, sees all of it
    assert str(mention.id) in ids(await client.get(home, headers=carol.auth))
    # a mute that has ended hides nothing
    async with context.db.transaction() as session:
        await session.execute(update(Mute).values(expires_at=utcnow() - timedelta(seconds=1)))
    again = ids(await client.get(home, headers=alice.auth))
    assert str(reply.id) in again and str(mention.id) in again and str(his.id) in again


async def test_a_tag_timeline_drops_mentions_of_a_muted_account(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await context.outbox.actor_of("alice"), await context.outbox.actor_of("carol")
    await mutes.mute(context.db, me, her)
    await person(context, "dave")
    dave = await context.outbox.actor_of("dave")
    about = await context.outbox.post(dave, "#cats with @carol")
    other = await context.outbox.post(dave, "#cats alone")
    assert ids(await client.get("/api/v1/timelines/tag/cats", headers=alice.auth)) == [
        str(other.id)]  # fmt: skip
    assert ids(await client.get("/api/v1/timelines/tag/cats")) == [str(other.id), str(about.id)]


async def test_the_home_query_with_mutes_is_still_an_index_range_scan(
    context: Context, alice: Person
) -> None:
    me = await context.outbox.actor_of("alice")
    dialect, plan = await plan_of(context, timeline.home(me.id))
    if dialect == "sqlite":
        assert re.search(r"SEARCH timeline_entries USING INDEX ix_timeline_owner_published "
                         r"\(owner_id=\?", plan), plan  # fmt: skip
        assert "TEMP B-TREE" not in plan and "SCAN mutes" not in plan, plan
    else:
        assert re.search(r"Index Scan Backward using ix_timeline_owner_published", plan), plan
        assert not re.search(r"(?<!Incremental )Sort  \(", plan), plan
        assert "Seq Scan on mutes" not in plan, plan
