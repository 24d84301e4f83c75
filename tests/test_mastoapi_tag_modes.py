"""The tag timeline's ``any[]``, ``all[]`` and ``none[]``, on SQLite and PostgreSQL.

Mastodon's TagFeed (app/models/tag_feed.rb): the posts tagged with the path's tag or one
of ``any[]``, with every tag of ``all[]`` and none of ``none[]``, each post once, at most
4 tags a mode. https://docs.joinmastodon.org/methods/timelines/#tag
"""

from __future__ import annotations

import re

import httpx

from fedisocial.app import Context
from fedisocial.social import timeline
from tests.c2s_helpers import Person
from tests.test_mastoapi_timelines import ids, links, plan_of


async def test_any_all_and_none_choose_among_tagged_posts(
    context: Context, client: httpx.AsyncClient, alice: Person
) -> None:
    me = await context.outbox.actor_of("alice")
    cats = await context.outbox.post(me, "#cats")
    both = await context.outbox.post(me, "#cats and #dogs")
    dogs = await context.outbox.post(me, "#dogs")
    three = await context.outbox.post(me, "#cats #dogs #birds")
    hidden = await context.outbox.post(me, "#birds for followers", visibility="followers")
    tag = "/api/v1/timelines/tag"
    # any[]: the path's tag or these, each post once, newest first
    assert ids(await client.get(f"{tag}/cats?any[]=dogs")) == [
        str(three.id), str(dogs.id), str(both.id), str(cats.id)]  # fmt: skip
    assert ids(await client.get(f"{tag}/cats?any[]=Birds&limit=2")) == [
        str(three.id), str(both.id)]  # fmt: skip
    # all[]: also each of these
    assert ids(await client.get(f"{tag}/cats?all[]=dogs")) == [str(three.id), str(both.id)]
    assert ids(await client.get(f"{tag}/cats?all[]=dogs&all[]=birds")) == [str(three.id)]
    # none[]: not these
    assert ids(await client.get(f"{tag}/cats?none[]=dogs")) == [str(cats.id)]
    assert ids(await client.get(f"{tag}/dogs?none[]=cats&none[]=birds")) == [str(dogs.id)]
    # together, as JSON arrays too
    mixed = await client.request("GET", f"{tag}/cats", json={"any": ["dogs"], "none": ["birds"]})
    assert ids(mixed) == [str(dogs.id), str(both.id), str(cats.id)]
    # paging through an any[] page: the Link's next, each post once
    first = await client.get(f"{tag}/cats?any[]=dogs&limit=3")
    rest = await client.get(f"{tag}/cats?{links(first)['next']}")
    assert ids(rest) == [str(cats.id)] and "any%5B%5D=dogs" in links(first)["next"]
    # nothing the reader may not read: the followers-only #birds post never shows
    assert str(hidden.id) not in ids(await client.get(f"{tag}/birds?any[]=cats"))
    assert ids(await client.get(f"{tag}/nothing?all[]=cats")) == []


async def test_tag_modes_stay_index_scans(context: Context) -> None:
    listing = timeline.tagged("cats", None, all_of=["dogs"], none_of=["birds"])
    dialect, plan = await plan_of(context, listing)
    if dialect == "sqlite":
        assert re.search(r"SEARCH post_tags USING (COVERING |PRIMARY )?(INDEX|KEY)", plan), plan
        assert "TEMP B-TREE" not in plan and "SCAN post_tags" not in plan, plan
    else:
        assert re.search(r"Index (Only )?Scan Backward using post_tags_pkey", plan), plan
        assert "Sort" not in plan and "Seq Scan" not in plan, plan
    dialect, plan = await plan_of(context, timeline.tagged("cats", None, any_of=["dogs"]))
    assert "SCAN post_tags" not in plan and "Seq Scan" not in plan, plan
