"""Atom feeds of a profile and of a hashtag (RFC 4287), read by a real feed parser.

feedparser (what many readers build on) and ElementTree both read every feed: valid
Atom 1.0, with the posts anyone may read, their images as enclosures and links to their
pages; hostile remote HTML, names and URLs come out harmless. Mastodon's own feeds are
the model: ``/@name.rss`` (public and unlisted posts, no boosts, no replies to others) and
``/tags/name.rss`` (public posts).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import feedparser
import httpx
import pytest
from sqlalchemy import update

from fedisocial.app import Context
from fedisocial.federation.remote import store_actor
from fedisocial.social.accounts import create_user
from fedisocial.store.models import Actor
from tests.c2s_helpers import png
from tests.test_inbox import BOB, activity, actor_doc, deliver, note, remote_key, run_jobs

ATOM = "{http://www.w3.org/2005/Atom}"
AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
sqlite_only = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def parsed(answer: httpx.Response) -> Any:
    """The feed as feedparser reads it, after checking it is well-formed Atom 1.0."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(answer.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    return feed


def checked_tree(answer: httpx.Response) -> ET.Element:
    """The feed's XML, each element RFC 4287 requires present (§4.1.1, §4.1.2)."""
    root = ET.fromstring(answer.content)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        assert len(root.findall(f"{ATOM}{name}")) == 1, name
    feed_author = root.find(f"{ATOM}author") is not None
    for entry in root.findall(f"{ATOM}entry"):
        for name in ("id", "title", "updated", "published", "content"):
            assert len(entry.findall(f"{ATOM}{name}")) == 1, name
        assert feed_author or entry.find(f"{ATOM}author/{ATOM}name") is not None
        assert entry.find(f"{ATOM}link[@rel='alternate']") is not None
        assert entry.find(f"{ATOM}content").get("type") == "html"
    return root


@sqlite_only
async def test_a_profile_feed_has_the_posts_anyone_may_read_with_images_and_links(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given alice, who posted in every visibility, replied, and published an image
    await create_user(context.db, context.urls, "alice", "long enough password",
                      display_name="Alice & <Co>")  # fmt: skip
    await create_user(context.db, context.urls, "bob", "long enough password")
    alice, bob = await context.outbox.actor_of("alice"), await context.outbox.actor_of("bob")
    first = await context.outbox.post(alice, "Hello #Cats, <b>bold</b> & more")
    quiet = await context.outbox.post(alice, "quietly", visibility="unlisted")
    await context.outbox.post(alice, "for followers", visibility="followers")
    await context.outbox.post(alice, "@bob secret", visibility="direct")
    to_bob = await context.outbox.post(bob, "bob's")
    await context.outbox.post(alice, "a reply to bob", in_reply_to=to_bob.uri)
    thread = await context.outbox.post(alice, "and a thread", in_reply_to=first.uri,
                                       summary="spoilers")  # fmt: skip
    media = await context.studio.upload(alice, png(), filename="teal.png",
                                        description="a teal rectangle")  # fmt: skip
    image = await context.studio.publish(alice, "", [media.id], visibility="public")
    # When a reader fetches her feed
    answer = await client.get("/users/alice.atom")
    feed = parsed(answer)
    checked_tree(answer)
    # Then it names her and links to itself and to her profile
    base = context.urls.base_url
    assert feed.feed.title == "Alice & <Co> (@alice@127.0.0.1:8000)"
    assert feed.feed.id == f"{base}/users/alice.atom"
    assert feed.feed.author_detail.name == "Alice & <Co>"
    links = {link.rel: link.href for link in feed.feed.links}
    assert links == {"self": f"{base}/users/alice.atom", "alternate": f"{base}/@alice"}
    # and lists what anyone may read, newest first: no followers-only or direct posts, no
    # replies to others (her own thread stays)
    assert [e.id for e in feed.entries] == [image.uri, thread.uri, quiet.uri, first.uri]
    by_id = {entry.id: entry for entry in feed.entries}
    # the text is escaped HTML, each post links to its page, hashtags are categories
    hello = by_id[first.uri]
    assert hello.content[0].type == "text/html"
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in hello.content[0].value
    assert hello.title == "Hello #Cats, <b>bold</b> & more"
    assert hello.link == first.uri and hello.published == hello.updated
    assert [tag.term for tag in hello.tags] == ["cats"]
    # a content warning is the title and comes first in the content
    assert by_id[thread.uri].title == "spoilers"
    assert by_id[thread.uri].content[0].value.startswith("<p><strong>Content warning: spoilers")
    # an image is an enclosure with its alt text, and shown in the content
    (enclosure,) = by_id[image.uri].enclosures
    assert enclosure.href == f"{base}/media/{media.path}" and enclosure.type == "image/png"
    assert enclosure.title == "a teal rectangle"
    assert 'alt="a teal rectangle"' in by_id[image.uri].content[0].value
    assert by_id[image.uri].title == "Image by Alice & <Co>"
    # And readers and caches may keep it a minute and ask again cheaply
    assert answer.headers["cache-control"] == "public, max-age=60"
    assert answer.headers["last-modified"].endswith(" GMT")
    again = await client.get("/users/alice.atom", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == answer.headers["etag"]
    # the feed changes with a new post (a new ETag), and unknown people have none
    await context.outbox.post(alice, "newest")
    newer = await client.get("/users/alice.atom", headers={"If-None-Match": answer.headers["etag"]})
    assert newer.status_code == 200 and newer.headers["etag"] != answer.headers["etag"]
    assert parsed(newer).entries[0].title == "newest"
    assert (await client.get("/users/nobody.atom")).status_code == 404
    # the profile feed's name is case-insensitive, as the profile is
    assert (await client.get("/users/ALICE.atom")).status_code == 200


async def _hostile_remote_post(client: httpx.AsyncClient, context: Context) -> str:
    """bob from another server, with a hostile name, posts hostile HTML tagged #cats."""
    hostile_name = "Bob\x07 <script>alert('name')</script>"
    await store_actor(context.db, actor_doc(BOB, remote_key(), name=hostile_name))
    uri = f"{BOB}/statuses/cats"
    doc = note(
        uri,
        content=('<p>#cats <script>alert("x")</script><a href="javascript:alert(1)" '
                 'onclick="alert(2)">click</a>\x01<img src="https://evil.example/x.png"></p>'),
        url="javascript:alert(3)",
        tag=[{"type": "Hashtag", "name": "#cats", "href": "https://remote.example/tags/cats"}],
        attachment=[{"type": "Image", "mediaType": "image/png", "url": "javascript:alert(4)"},
                    {"type": "Image", "mediaType": "image/png", "name": "a \"cat\" <b>",
                     "url": "https://remote.example/media/cat.png"}],
    )  # fmt: skip
    answer = await deliver(client, activity("Create", doc, name="cats"))
    assert answer.status_code == 202, answer.text
    await run_jobs(context)
    return uri


async def test_a_hashtag_feed_has_public_posts_from_here_and_elsewhere_made_harmless(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given a public and an unlisted #cats post here, and a hostile one from another server
    await create_user(context.db, context.urls, "alice", "long enough password")
    alice = await context.outbox.actor_of("alice")
    ours = await context.outbox.post(alice, "My #Cats")
    await context.outbox.post(alice, "quiet #cats", visibility="unlisted")
    remote = await _hostile_remote_post(client, context)
    # When a reader fetches the hashtag's feed
    answer = await client.get("/tags/Cats.atom")
    feed = parsed(answer)
    root = checked_tree(answer)
    # Then it has the public posts, each with its author (the feed has none of its own)
    assert feed.feed.title == "#cats on Test Social"
    assert feed.feed.id == f"{context.urls.base_url}/tags/cats.atom"
    assert [entry.id for entry in feed.entries] == [remote, ours.uri]
    assert feed.entries[1].author_detail.name == "alice"
    assert feed.entries[1].author_detail.href == f"{context.urls.base_url}/@alice"
    # And what the other server sent is harmless: no script, handler or javascript: URL,
    # no character XML cannot carry; the name is text
    raw = answer.text
    for bad in ("<script", "javascript:", "onclick", "\x01", "\x07"):
        assert bad not in raw, bad
    entry = root.findall(f"{ATOM}entry")[0]
    content = entry.find(f"{ATOM}content").text or ""
    assert "<script" not in content and "alert(" not in content.replace("alert('name')", "")
    assert "click</a>" in content and "evil.example" not in content
    assert entry.find(f"{ATOM}author/{ATOM}name").text == "Bob <script>alert('name')</script>"
    # a link that is not http(s) falls back to the post's id; only the http image is kept
    assert entry.find(f"{ATOM}link[@rel='alternate']").get("href") == remote
    (enclosure,) = entry.findall(f"{ATOM}link[@rel='enclosure']")
    assert enclosure.get("href") == "https://remote.example/media/cat.png"
    assert enclosure.get("title") == 'a "cat" <b>'
    assert 'alt="a &quot;cat&quot; &lt;b&gt;"' in content
    # Given bob opted out of AI use, the feed showing his post says so
    assert "x-robots-tag" not in answer.headers
    async with context.db.transaction() as session:
        await session.execute(update(Actor).where(Actor.uri == BOB).values(noai=True))
    marked = await client.get("/tags/cats.atom")
    assert marked.headers["x-robots-tag"] == "noai, noimageai"
    # A tag nobody used is an empty, valid feed; a name that is no tag is refused
    empty = parsed(await client.get("/tags/nothing_yet.atom"))
    assert empty.entries == [] and empty.feed.updated.startswith("1970-01-01")
    refused = await client.get("/tags/%23.atom")
    assert refused.status_code == 400 and "hashtag" in refused.text
