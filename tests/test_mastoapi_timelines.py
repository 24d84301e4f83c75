"""Timelines, favourites and bookmarks of the Mastodon client API, on SQLite and PostgreSQL.

https://docs.joinmastodon.org/methods/timelines/, /methods/favourites/, /methods/bookmarks/:
``max_id``/``since_id``/``min_id``/``limit`` are status ids as apps send them, the
``Link`` header names the neighbours; nothing is listed that the viewer may not read.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import text

from fedisocial.app import Context
from fedisocial.social import timeline
from fedisocial.social.collections import Cursor
from fedisocial.store.models import Actor, Bookmark
from tests.c2s_helpers import Person, person
from tests.test_inbox import BOB, activity, actor_doc, deliver, note, remote_key, run_jobs

AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [status["id"] for status in answer.json()]


def links(answer: httpx.Response) -> dict[str, str]:
    """rel → the link's query string."""
    found = re.findall(r'<([^>]+)>; rel="(\w+)"', answer.headers.get("link", ""))
    return {rel: url.partition("?")[2] for url, rel in found}


async def actor(context: Context, name: str) -> Actor:
    return await context.outbox.actor_of(name)


async def remote_post(client: httpx.AsyncClient, context: Context, name: str,
                      **extra: Any) -> str:  # fmt: skip
    """A public post of the remote bob, delivered to our inbox and processed; its id."""
    from fedisocial.federation.remote import store_actor

    await store_actor(context.db, actor_doc(BOB, remote_key()))
    uri = f"{BOB}/statuses/{name}"
    answer = await deliver(client, activity("Create", note(uri, **extra), name=name))
    assert answer.status_code == 202, answer.text
    await run_jobs(context)
    return uri


# -- home ----------------------------------------------------------------------------------


async def test_home_pages_by_status_id_with_links_and_the_ids_apps_send(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    # Given alice follows carol, who posted five times, and boosted one of dave's (whom
    # alice does not follow; a boost of a post her feed has would be left out)
    me, her = await actor(context, "alice"), await actor(context, "carol")
    await context.outbox.follow(me, "carol")
    mine = await context.outbox.post(me, "mine")
    posts = [await context.outbox.post(her, f"post {n}") for n in range(5)]
    await person(context, "dave")
    daves = await context.outbox.post(await actor(context, "dave"), "dave's")
    boost = await context.outbox.boost(her, daves.uri)
    everything = [str(boost.id), *(str(p.id) for p in reversed(posts)), str(mine.id)]
    # When alice reads her home timeline two at a time, following the Link header
    first = await client.get("/api/v1/timelines/home?limit=2", headers=alice.auth)
    assert ids(first) == everything[:2]
    assert first.json()[0]["reblog"]["id"] == str(daves.id)
    assert links(first) == {"next": f"limit=2&max_id={everything[1]}",
                            "prev": f"limit=2&min_id={everything[0]}"}  # fmt: skip
    second = await client.get(f"/api/v1/timelines/home?{links(first)['next']}", headers=alice.auth)
    assert ids(second) == everything[2:4]
    # Then an app building max_id from the last status it holds gets the same pages
    built = await client.get(f"/api/v1/timelines/home?limit=3&max_id={everything[3]}",
                             headers=alice.auth)  # fmt: skip
    assert ids(built) == everything[4:7]
    assert "next" not in links(built)
    # min_id: the statuses just newer; since_id: the newest, down to it
    newer = await client.get(f"/api/v1/timelines/home?limit=2&min_id={everything[4]}",
                             headers=alice.auth)  # fmt: skip
    assert ids(newer) == everything[2:4]
    since = await client.get(f"/api/v1/timelines/home?limit=2&since_id={everything[4]}",
                             headers=alice.auth)  # fmt: skip
    assert ids(since) == everything[:2]
    # Paging past the end: an empty page without links
    past = await client.get(f"/api/v1/timelines/home?max_id={mine.id}", headers=alice.auth)
    assert ids(past) == [] and "link" not in past.headers


async def test_home_asks_for_a_token_with_read_statuses(
    context: Context, client: httpx.AsyncClient, alice: Person
) -> None:
    assert (await client.get("/api/v1/timelines/home")).status_code == 401
    bad = await client.get("/api/v1/timelines/home", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    writer = await person(context, "wren", scope="write")
    refused = await client.get("/api/v1/timelines/home", headers=writer.auth)
    assert refused.status_code == 403 and "error" in refused.json()
    granular = await person(context, "gran", scope="read:statuses")
    assert (await client.get("/api/v1/timelines/home", headers=granular.auth)).status_code == 200


async def plan_of(context: Context, listing: Any) -> tuple[str, str]:
    """The dialect and the plan of a listing's page query (PostgreSQL: as it plans once the
    tables are big, where a scan and a sort cost more than the index)."""
    model = listing.model
    order = [getattr(model, listing.sort).desc()] if listing.sort else []
    query = listing.query(model.id, *listing.values)
    query = query.order_by(*order, model.id.desc()).limit(21)
    async with context.db.session() as session:
        dialect = session.bind.dialect
        sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "sqlite":
            rows = await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
            return "sqlite", " ".join(str(row[-1]) for row in rows)
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            await session.execute(text(f"SET LOCAL {setting} = off"))
        rows = await session.execute(text(f"EXPLAIN {sql}"))
        return "postgresql", "\n".join(str(row[0]) for row in rows)


async def test_the_home_query_is_an_index_range_scan(context: Context, alice: Person) -> None:
    me = await actor(context, "alice")
    dialect, plan = await plan_of(context, timeline.home(me.id))
    if dialect == "sqlite":
        assert re.search(r"SEARCH timeline_entries USING INDEX ix_timeline_owner_published "
                         r"\(owner_id=\?", plan), plan  # fmt: skip
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert re.search(r"Index Scan Backward using ix_timeline_owner_published", plan), plan
        # ties of one time are put in id order as they come (no sort of the whole feed)
        assert not re.search(r"(?<!Incremental )Sort  \(", plan), plan


# -- public and tag -----------------------------------------------------------------------


async def test_the_public_timeline_shows_public_posts_only(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    # Given posts of every visibility, a reply to someone else, a thread, a boost
    me, her = await actor(context, "alice"), await actor(context, "carol")
    public = await context.outbox.post(her, "for everyone")
    await context.outbox.post(her, "unlisted", visibility="unlisted")
    await context.outbox.post(her, "followers", visibility="followers")
    await context.outbox.post(her, "direct @alice", visibility="direct")
    await context.outbox.post(me, "a reply", in_reply_to=public.uri)
    thread = await context.outbox.post(her, "more of it", in_reply_to=public.uri)
    await context.outbox.boost(me, public.uri)
    far = await remote_post(client, context, "far")
    # When anyone reads the public timeline
    anyone = await client.get("/api/v1/timelines/public")
    remote_id = next(s["id"] for s in anyone.json() if s["uri"] == far)
    # Then: public posts, the thread's own reply, no boosts, no replies to others
    assert ids(anyone) == [remote_id, str(thread.id), str(public.id)]
    assert ids(await client.get("/api/v1/timelines/public?local=true")) == [
        str(thread.id), str(public.id)]  # fmt: skip
    assert ids(await client.get("/api/v1/timelines/public?remote=1")) == [remote_id]
    assert ids(await client.get("/api/v1/timelines/public?only_media=true")) == []
    # A signed-in reader who blocks carol sees none of hers
    await context.outbox.block(me, "carol")
    assert ids(await client.get("/api/v1/timelines/public", headers=alice.auth)) == [remote_id]
    # A bad token is refused, not read as anonymous
    bad = await client.get("/api/v1/timelines/public", headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401


async def test_only_media_lists_posts_with_attachments(
    context: Context, client: httpx.AsyncClient
) -> None:
    image = {"type": "Image", "mediaType": "image/png", "url": "https://remote.example/a.png",
             "name": "A red square"}  # fmt: skip
    pictured = await remote_post(client, context, "pic", attachment=[image])
    await remote_post(client, context, "words")
    found = (await client.get("/api/v1/timelines/public?only_media=true")).json()
    assert [s["uri"] for s in found] == [pictured]
    assert found[0]["media_attachments"][0]["description"] == "A red square"


async def test_the_tag_timeline_reads_the_tag_index(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    # Given tagged posts, local and remote, public and not
    me, her = await actor(context, "alice"), await actor(context, "carol")
    cats = await context.outbox.post(me, "I like #Cats")
    await context.outbox.post(her, "secret #cats", visibility="followers")
    await context.outbox.post(her, "#dogs only")
    tag = {"type": "Hashtag", "name": "#CATS", "href": "https://remote.example/tags/cats"}
    far = await remote_post(client, context, "cat", tag=[tag])
    # When anyone reads the tag's timeline, in any case
    found = await client.get("/api/v1/timelines/tag/cAtS")
    remote_id = next(s["id"] for s in found.json() if s["uri"] == far)
    # Then the public posts tagged so, newest first
    assert ids(found) == [remote_id, str(cats.id)]
    assert ids(await client.get("/api/v1/timelines/tag/cats?local=true")) == [str(cats.id)]
    assert ids(await client.get("/api/v1/timelines/tag/cats?remote=true")) == [remote_id]
    page = await client.get("/api/v1/timelines/tag/cats?limit=1")
    assert ids(page) == [remote_id]
    assert ids(await client.get(f"/api/v1/timelines/tag/cats?{links(page)['next']}")) == [
        str(cats.id)]  # fmt: skip
    # An edit that drops the tag takes the post out; a deleted post goes too
    await context.outbox.edit(me, cats.uri, "I like #dogs now")
    assert ids(await client.get("/api/v1/timelines/tag/cats")) == [remote_id]
    dogs = await client.get("/api/v1/timelines/tag/dogs")
    assert len(ids(dogs)) == 2
    await context.outbox.delete(me, cats.uri)
    assert len(ids(await client.get("/api/v1/timelines/tag/dogs"))) == 1
    assert ids(await client.get("/api/v1/timelines/tag/nothing")) == []


async def test_the_tag_query_is_an_index_range_scan(context: Context) -> None:
    dialect, plan = await plan_of(context, timeline.tagged("cats", None))
    if dialect == "sqlite":
        assert re.search(r"SEARCH post_tags USING (COVERING |PRIMARY )?(INDEX|KEY)", plan), plan
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert re.search(r"Index (Only )?Scan Backward using post_tags_pkey", plan), plan
        assert "Sort" not in plan, plan


# -- favourites, bookmarks, lists -------------------------------------------------------------


async def test_favourites_list_what_the_viewer_liked_and_may_still_read(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    await context.outbox.follow(me, "carol")
    first = await context.outbox.post(her, "first")
    private = await context.outbox.post(her, "for followers", visibility="followers")
    last = await context.outbox.post(her, "last")
    for post in (first, private, last):
        await context.outbox.like(me, post.uri)
    # Then the latest like first, paged by the like (Link), each favourited
    page = await client.get("/api/v1/favourites?limit=2", headers=alice.auth)
    assert ids(page) == [str(last.id), str(private.id)]
    assert all(status["favourited"] for status in page.json())
    following = await client.get(f"/api/v1/favourites?{links(page)['next']}", headers=alice.auth)
    assert ids(following) == [str(first.id)]
    assert "next" not in links(following)
    # Once she no longer follows carol, the followers-only post is not listed
    await context.outbox.unfollow(me, "carol")
    assert ids(await client.get("/api/v1/favourites", headers=alice.auth)) == [
        str(last.id), str(first.id)]  # fmt: skip
    # carol's favourites are hers; scopes are checked
    assert ids(await client.get("/api/v1/favourites", headers=carol.auth)) == []
    reader = await person(context, "reader", scope="read:bookmarks")
    assert (await client.get("/api/v1/favourites", headers=reader.auth)).status_code == 403
    assert (await client.get("/api/v1/favourites")).status_code == 401


async def test_bookmarks_list_the_viewers_bookmarks(
    context: Context, client: httpx.AsyncClient, alice: Person, carol: Person
) -> None:
    me, her = await actor(context, "alice"), await actor(context, "carol")
    posts = [await context.outbox.post(her, f"keep {n}") for n in range(3)]
    direct = await context.outbox.post(her, "only for @carol", visibility="direct")
    async with context.db.transaction() as session:  # (the statuses methods write them)
        for post in [posts[1], posts[0], posts[2], direct]:
            session.add(Bookmark(owner_id=me.id, object_id=post.id))
    page = await client.get("/api/v1/bookmarks?limit=2", headers=alice.auth)
    # Then the latest bookmark first; the direct post alice may not read is left out
    assert ids(page) == [str(posts[2].id), str(posts[0].id)]
    rest = await client.get(f"/api/v1/bookmarks?{links(page)['next']}", headers=alice.auth)
    assert ids(rest) == [str(posts[1].id)]
    await context.outbox.delete(her, posts[2].uri)
    assert ids(await client.get("/api/v1/bookmarks", headers=alice.auth)) == [
        str(posts[0].id), str(posts[1].id)]  # fmt: skip
    assert ids(await client.get("/api/v1/bookmarks", headers=carol.auth)) == []
    writer = await person(context, "writer", scope="write")
    assert (await client.get("/api/v1/bookmarks", headers=writer.auth)).status_code == 403


async def test_list_timelines_are_not_found(client: httpx.AsyncClient, alice: Person) -> None:
    answer = await client.get("/api/v1/timelines/list/1", headers=alice.auth)
    assert answer.status_code == 404 and answer.json() == {"error": "Record not found"}


async def test_home_cursors_are_post_ids(context: Context, alice: Person) -> None:
    me = await actor(context, "alice")
    post = await context.outbox.post(me, "hello")
    other = await context.outbox.post(me, "again")
    page = await timeline.home_page(context.db, me.id, Cursor(max_id=other.id), limit=20)
    assert [item.object.id for item in page.items] == [post.id]
    # an id that is in no feed pages as the ids around it
    gone = await timeline.home_page(context.db, me.id, Cursor(max_id=other.id + 1000))
    assert [item.object.id for item in gone.items] == [other.id, post.id]
    newer = await timeline.home_page(context.db, me.id, Cursor(min_id=0))
    assert [item.object.id for item in newer.items] == [other.id, post.id]
