"""HTML pages for browsers at our URIs: posts, profiles with their posts, deleted posts.

They are the web app's pages (tests/test_web_threads.py and test_web_profiles.py test
those further). The pages add no query of their own: SQLite only.
"""

from __future__ import annotations

import re

import httpx
import pytest

from fedisocial.app import Context
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.store.models import Actor, Object, utcnow

pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
BASE = "http://127.0.0.1:8000"
IMAGE = {
    "type": "Image",
    "mediaType": "image/png",
    "url": "https://media.example/cat.png",
    "name": "A cat asleep on a keyboard",
    "width": 640,
    "height": 480,
}


async def local_user(context: Context, name: str) -> Actor:
    await create_user(context.db, context.urls, name, "long enough password",
                      display_name=name.title())  # fmt: skip
    return await find_local_actor(context.db, context.urls, name)


async def page(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.get(url.removeprefix(BASE), headers={"Accept": BROWSER})


async def test_a_post_page_shows_the_post_and_what_resonated(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given alice's post with a content warning and an image, replied to, liked and boosted
    alice, bob = await local_user(context, "alice"), await local_user(context, "bob")
    post = await context.outbox.post(alice, "Look at #cats", summary="cat pictures",
                                     attachments=[IMAGE])  # fmt: skip
    await context.outbox.post(bob, "cute!", in_reply_to=post.uri)
    await context.outbox.like(bob, post.uri)
    await context.outbox.boost(bob, post.uri)
    # When a browser opens it
    response = await page(client, post.uri)
    html = response.text
    # Then it shows the author, the warning as a disclosure over the content and the image
    assert response.status_code == 200
    assert "Alice" in html and "@alice@127.0.0.1:8000" in html
    assert re.search(r'<details class="cw">\s*<summary><span class="cw-label">Content warning:'
                     r"</span> cat pictures", html)  # fmt: skip
    assert 'class="mention hashtag"' in html and "#<span>cats</span>" in html
    assert 'src="https://media.example/cat.png" alt="A cat asleep on a keyboard"' in html
    # and when it was posted, its counts and the reply below it
    assert f'<time datetime="{post.data["published"]}"' in html
    assert re.search(r"> 1<span class=\"sr-only\"> boosts", html)
    assert re.search(r"> 1<span class=\"sr-only\"> likes", html)
    assert "1 reply</h2>" in html and "cute!" in html
    # and link previews say only the warning, with the avatar rather than the hidden image
    assert '<meta property="og:description" content="Content warning: cat pictures">' in html
    assert '<meta property="og:image" content="http://127.0.0.1:8000/users/alice/avatar.png">' in (
        html
    )
    assert "Look at" not in html.split("</head>")[0]


async def test_a_reply_shows_what_it_answers(client: httpx.AsyncClient, context: Context) -> None:
    alice = await local_user(context, "alice")
    post = await context.outbox.post(alice, "question")
    reply = await context.outbox.post(alice, "answer", in_reply_to=post.uri)
    html = (await page(client, reply.uri)).text.split('<main id="main">')[1]
    # the post it answers is above it, and the reply says whom it answers
    assert html.index("question") < html.index("answer")
    assert 'Replying to <a href="/@alice">@alice</a>' in html and "No replies yet" in html


async def test_post_content_is_sanitized_when_shown(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given a post whose stored HTML carries a script (as a buggy client might store it)
    alice = await local_user(context, "alice")
    uri = context.urls.note("alice", "1")
    async with context.db.transaction() as session:
        session.add(Object(uri=uri, type="Note", actor_uri=alice.uri, local=True, data={
            "id": uri, "type": "Note", "attributedTo": alice.uri, "summary": "<b>cw</b>",
            "content": '<p>hi<script>alert(1)</script><img src="x" onerror="alert(2)"></p>',
        }))  # fmt: skip
    # When a browser opens it, the markup that could run is gone
    html = (await page(client, uri)).text
    assert "<p>hi</p>" in html
    assert "<script>alert" not in html and "onerror" not in html
    assert "<b>cw</b>" not in html and "Content warning:</span> cw" in html


async def test_deleted_posts_get_a_friendly_page(
    client: httpx.AsyncClient, context: Context
) -> None:
    alice = await local_user(context, "alice")
    post = await context.outbox.post(alice, "gone soon")
    await context.outbox.delete(alice, post.uri)
    response = await page(client, f"{BASE}/@alice/{post.uri.rsplit('/', 1)[-1]}")
    assert response.status_code == 410
    assert "This post was deleted" in response.text and "gone soon" not in response.text
    assert utcnow().strftime("%Y") in response.text
    assert 'aria-label="Main"' in response.text  # the app's navigation


async def test_private_posts_are_not_shown_to_anonymous_browsers(
    client: httpx.AsyncClient, context: Context
) -> None:
    alice = await local_user(context, "alice")
    friends = await context.outbox.post(alice, "for friends", visibility="followers")
    direct = await context.outbox.post(alice, "for nobody", visibility="direct")
    followers_only = await page(client, friends.uri)
    assert followers_only.status_code == 401 and "followers only" in followers_only.text
    assert "for friends" not in followers_only.text
    missing = await page(client, direct.uri)
    assert missing.status_code == 404 and "for nobody" not in missing.text


async def test_the_profile_lists_recent_public_posts(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given alice's 21 public posts (the oldest pinned), an unlisted one and private ones
    alice = await local_user(context, "alice")
    posts = [await context.outbox.post(alice, f"post number {i}.") for i in range(21)]
    await context.outbox.pin(alice, posts[0].uri)
    await context.outbox.post(alice, "quietly", visibility="unlisted")
    await context.outbox.post(alice, "friends only", visibility="followers")
    await context.outbox.post(alice, "secret", visibility="direct")
    # When a browser opens her profile
    response = await page(client, f"{BASE}/@alice")
    html = response.text
    # Then it shows the pinned post first, then the newest public and unlisted posts
    assert response.status_code == 200
    shown = re.findall(r"post number (\d+)\.|(quietly)", html)
    assert [n or q for n, q in shown] == ["0", "quietly", *[str(i) for i in range(20, 1, -1)]]
    assert "Pinned" in html and "friends only" not in html and "secret" not in html
    # and a link to older posts, which pages back (the pinned post stays above, once)
    older = re.search(r'href="(/@alice\?max_id=\d+)"', html)
    assert older is not None
    second = (await page(client, older.group(1))).text
    assert re.findall(r"post number (\d+)\.", second) == ["1"]
    assert "Back to the newest" in second and "Pinned" not in second


async def test_a_profile_without_posts_says_so(client: httpx.AsyncClient, context: Context) -> None:
    await local_user(context, "alice")
    assert "No posts yet." in (await page(client, f"{BASE}/users/alice")).text
    bad = await page(client, f"{BASE}/@alice?max_id=abc")
    assert bad.status_code == 400
