"""A post's page in the web app: the thread around it, as a browser uses it (no script).

The page reads with the domain's thread queries (tested on both backends in the
Mastodon API's context tests), so these run on SQLite only.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fedisocial.ap.vocab import AS_PUBLIC, normalize
from fedisocial.app import Context
from fedisocial.federation.remote import store_actor
from fedisocial.social import mutes
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.social.content import clean_remote_post
from fedisocial.store.models import Actor, Object
from fedisocial.store.rows import object_columns
from tests.loopback import serve
from tests.oauthflow import PASSWORD
from tests.webapp import browser, csrf_of, signed_in_browser

pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

IMAGE = {"type": "Image", "mediaType": "image/png", "url": "https://media.example/sea.png",
         "name": "The sea at dawn", "width": 800, "height": 600}  # fmt: skip
REMOTE = "https://remote.example"


def _ids(html: str) -> list[str]:
    return re.findall(r'<article class="post" id="post-(\d+)"', html)


def _main(html: str) -> str:
    return html.split('<main id="main">', 1)[1].split("</main>", 1)[0]


async def _actor(context: Context, name: str) -> Actor:
    return await find_local_actor(context.db, context.urls, name)


async def _user(context: Context, name: str) -> Actor:
    await create_user(context.db, context.urls, name, PASSWORD, display_name=name.title())
    return await _actor(context, name)


async def test_a_thread_shows_what_it_answers_and_its_replies_and_takes_a_reply(
    app: Starlette, context: Context
) -> None:
    # Given alice's post with an image, bob's reply, carol's answer to bob, and replies of
    # alice's that not everyone may read: one for her followers and one to carol only
    alice, carol = await _user(context, "alice"), await _user(context, "carol")
    async with signed_in_browser(app, context, "bob") as bob_browser:
        bob = await _actor(context, "bob")
        first = await context.outbox.post(alice, "Where is the sea? #travel", attachments=[IMAGE])
        reply = await context.outbox.post(bob, "@alice over there", in_reply_to=first.uri)
        answer = await context.outbox.post(carol, "@bob thanks!", in_reply_to=reply.uri)
        hidden = await context.outbox.post(alice, "for my friends", visibility="followers",
                                           in_reply_to=first.uri)  # fmt: skip
        await context.outbox.post(alice, "just for carol @carol", visibility="direct",
                                  in_reply_to=first.uri)  # fmt: skip

        # When bob opens his reply's page
        thread = await bob_browser.get(f"/statuses/{reply.id}")
        assert thread.status_code == 200
        main = _main(thread.text)
        # Then alice's post is above it, his is in focus with a reply composer, carol's below
        assert _ids(main) == [str(first.id), str(reply.id), str(answer.id)]
        above, focus = main.split('class="thread-focus"')
        assert "Where is the sea?" in above and "over there" not in above
        assert f'name="in_reply_to" value="{reply.id}"' in focus
        assert re.search(r'<textarea[^>]*name="text"[^>]*>@alice </textarea>', focus)
        assert 'Replying to <a href="/@alice">@alice</a>' in focus
        assert "thread-reply depth-1" in main and "1 reply</h2>" in main
        # and, on alice's post's page, nothing he may not read: neither the followers-only
        # reply nor the direct one
        top = await bob_browser.get(f"/statuses/{first.id}")
        assert "over there" in top.text and "thanks!" in top.text
        assert "for my friends" not in top.text and "just for carol" not in top.text

        # When he replies from the thread's composer (no script)
        posted = await bob_browser.post("/compose", data={
            "csrf_token": csrf_of(thread.text), "text": "@alice and bring a towel",
            "visibility": "public", "in_reply_to": str(reply.id),
            "from": f"/statuses/{reply.id}",
        })  # fmt: skip
        # Then he is back on the thread, at his new reply, which is listed under his post
        assert posted.status_code == 303
        location = posted.headers["location"]
        assert location.startswith(f"/statuses/{reply.id}#post-")
        again = _main((await bob_browser.get(f"/statuses/{reply.id}")).text)
        assert "bring a towel" in again and "2 replies</h2>" in again
        # and once he mutes carol, her answer is no longer in his threads (as on Mastodon)
        await mutes.mute(context.db, bob, carol)
        muted = _main((await bob_browser.get(f"/statuses/{reply.id}")).text)
        assert "thanks!" not in muted and "bring a towel" in muted
        await mutes.unmute(context.db, bob, carol)

    # A visitor reads the public thread, without a composer, and is told how to reply
    async with browser(app) as visitor:
        public = await visitor.get(f"/statuses/{first.id}")
        assert public.status_code == 200
        main = _main(public.text)
        assert "over there" in main and "bring a towel" in main and "for my friends" not in main
        assert 'action="/compose"' not in main and "from any fediverse server" in main
        assert "thread-reply depth-2" in main  # carol's answer, under bob's reply
        # and link previews get the post, its image and where it lives
        head = public.text.split("</head>")[0]
        assert f'<link rel="alternate" type="application/activity+json" href="{first.uri}">' in (
            head
        )
        assert f'<meta property="og:url" content="{first.uri}">' in head
        assert '<meta property="og:title" content="Alice (@alice@127.0.0.1:8000)">' in head
        assert '<meta property="og:description" content="Where is the sea? #travel">' in head
        assert '<meta property="og:image" content="https://media.example/sea.png">' in head
        assert '<meta name="twitter:card" content="summary_large_image">' in head
        assert 'name="robots"' not in head  # (alice is indexable; remote posts are not)
        # A post the visitor may not read is not there at all, nor a post we do not have
        for missing in (f"/statuses/{reply.id + 100}", "/statuses/abc", "/statuses/9" * 3):
            assert (await visitor.get(missing)).status_code == 404, missing
        assert (await visitor.get(f"/statuses/{hidden.id}")).status_code == 404

        # A boost's page is its post's
        boost = await context.outbox.boost(carol, first.uri)
        moved = await visitor.get(f"/statuses/{boost.id}", follow_redirects=False)
        assert moved.status_code == 302 and moved.headers["location"] == f"/statuses/{first.id}"


async def test_a_local_post_s_own_uri_is_its_thread_page_for_whoever_may_read_it(
    app: Starlette, context: Context
) -> None:
    # Given bob follows alice, who posts for her followers and publicly
    alice = await _user(context, "alice")
    async with signed_in_browser(app, context, "bob") as bob_browser:
        bob = await _actor(context, "bob")
        await context.outbox.follow(bob, "alice")
        friends = await context.outbox.post(alice, "for friends", visibility="followers")
        hello = await context.outbox.post(alice, "hello world")
        # When bob, signed in, opens the followers-only post at its URI
        page = await bob_browser.get(friends.uri)
        # Then he reads it on the thread page, with the app's navigation and a composer
        assert page.status_code == 200 and page.headers["vary"] == "Accept"
        assert "for friends" in _main(page.text) and 'action="/compose"' in page.text
        assert 'aria-label="Main"' in page.text and "@bob" in page.text
    async with browser(app) as visitor:
        # and anyone sees the same page at a public post's URI and at /statuses/ID
        at_uri = await visitor.get(hello.uri)
        in_app = await visitor.get(f"/statuses/{hello.id}")
        assert _main(at_uri.text) == _main(in_app.text)
        short = await visitor.get(f"/@alice/{hello.uri.rsplit('/', 1)[1]}")
        assert _main(short.text) == _main(in_app.text)
        # and a visitor is asked to sign in for the followers-only one
        asked = await visitor.get(friends.uri)
        assert asked.status_code == 401 and "for friends" not in asked.text


async def test_a_remote_thread_shows_what_we_have_and_nothing_that_could_run(
    app: Starlette, context: Context
) -> None:
    # Given a remote reply, with hostile markup, to a post we never received, and a remote
    # post by an author whose account we do not have
    author = f"{REMOTE}/users/mallory"
    await store_actor(context.db, {
        "id": author, "type": "Person", "preferredUsername": "mallory",
        "name": '<img src=x onerror="alert(1)">Mallory', "inbox": f"{author}/inbox",
        "url": "javascript:alert(2)",
        "publicKey": {"id": f"{author}#main-key", "owner": author, "publicKeyPem": "x"},
    })  # fmt: skip
    reply = await _remote_post(context, f"{author}/notes/2", author, {
        "inReplyTo": f"{REMOTE}/users/other/notes/1", "url": "javascript:alert(3)",
        "content": '<p>hi<script>alert(4)</script><a href="javascript:alert(5)">link</a></p>',
        "summary": "<b>spoilers</b>",
    })  # fmt: skip
    nobody = f"{REMOTE}/users/nobody"
    orphan = await _remote_post(context, f"{nobody}/notes/3", nobody,
                                {"content": "<p>from afar</p>"})  # fmt: skip
    async with browser(app) as visitor:
        # When a visitor opens the reply
        page = await visitor.get(f"/statuses/{reply.id}")
        # Then it shows, with a link to the post it answers on its own server
        assert page.status_code == 200
        main = _main(page.text)
        assert "<p>hi" in main and "spoilers" in main
        assert "open it on its server" in main and f'href="{REMOTE}/users/other/notes/1"' in main
        assert "Open the original on its server" in main
        assert '<meta name="robots" content="noindex">' in page.text
        # and none of the markup or addresses that could run
        for bad in ("<script>", "<img src=x", 'onerror="', "javascript:", "<b>spoilers"):
            assert bad not in page.text, bad
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Mallory" in page.text  # as text
        # A post whose author we do not have shows its text, and where to read all of it
        partial = await visitor.get(f"/statuses/{orphan.id}")
        assert partial.status_code == 200
        assert "from afar" in partial.text and "only part of this post" in partial.text
        assert f'href="{REMOTE}/users/nobody/notes/3"' in partial.text


async def _remote_post(context: Context, uri: str, author: str, extra: dict[str, object]) -> Object:
    doc = normalize({"id": uri, "type": "Note", "attributedTo": author, "to": [AS_PUBLIC],
                     "published": "2026-01-02T03:04:05Z", **extra})  # fmt: skip
    row = Object(uri=uri, local=False, data=clean_remote_post(doc, author), original=doc,
                 **object_columns(doc))  # fmt: skip
    async with context.db.transaction() as session:
        session.add(row)
    return row


def _thread_server(hits: list[str]) -> Starlette:
    """carl's server: his actor, the first post of his thread and his reply to it."""

    async def route(request: Request) -> Response:
        hits.append(request.url.path)
        base = f"http://{request.headers['host']}"
        carl = f"{base}/users/carl"
        docs: dict[str, dict[str, Any]] = {
            "/users/carl": {
                "id": carl, "type": "Person", "preferredUsername": "carl", "name": "Carl",
                "inbox": f"{carl}/inbox",
                "publicKey": {"id": f"{carl}#main-key", "owner": carl, "publicKeyPem": "x"},
            },
            "/users/carl/notes/1": {
                "id": f"{carl}/notes/1", "type": "Note", "attributedTo": carl,
                "to": [AS_PUBLIC], "published": "2026-01-01T10:00:00Z",
                "content": "<p>the beginning<script>alert(1)</script></p>",
            },
            "/users/carl/notes/2": {
                "id": f"{carl}/notes/2", "type": "Note", "attributedTo": carl,
                "to": [AS_PUBLIC], "published": "2026-01-01T11:00:00Z",
                "inReplyTo": f"{carl}/notes/1", "content": "<p>the middle</p>",
            },
        }  # fmt: skip
        doc = docs.get(request.url.path)
        if doc is None:
            return JSONResponse({"error": "gone"}, status_code=404)
        return JSONResponse(doc, media_type="application/activity+json")

    return Starlette(routes=[Route("/{path:path}", route)])


async def test_a_signed_in_visit_fetches_the_beginning_of_a_remote_thread(
    app: Starlette, context: Context
) -> None:
    hits: list[str] = []
    async with serve(_thread_server(hits)) as base:
        # Given carl's reply to the middle of his thread, whose beginning we never received,
        # and another reply of his to a post his server no longer has
        carl = f"{base}/users/carl"
        await store_actor(context.db, {
            "id": carl, "type": "Person", "preferredUsername": "carl", "inbox": f"{carl}/inbox",
            "publicKey": {"id": f"{carl}#main-key", "owner": carl, "publicKeyPem": "x"},
        })  # fmt: skip
        end = await _remote_post(context, f"{carl}/notes/3", carl, {
            "inReplyTo": f"{carl}/notes/2", "content": "<p>the end</p>"})  # fmt: skip
        lost = await _remote_post(context, f"{carl}/notes/5", carl, {
            "inReplyTo": f"{carl}/notes/4", "content": "<p>an answer to nothing</p>"})  # fmt: skip
        # When a visitor opens the end: nothing is fetched, it links to what it answers
        async with browser(app) as visitor:
            page = _main((await visitor.get(f"/statuses/{end.id}")).text)
            assert f'href="{carl}/notes/2"' in page and "the middle" not in page
        assert hits == []
        # When alice, signed in, opens it
        async with signed_in_browser(app, context, "alice") as alice:
            page = _main((await alice.get(f"/statuses/{end.id}")).text)
            # Then the thread's beginning is fetched, stored and shown above, harmless
            assert hits == ["/users/carl/notes/2", "/users/carl/notes/1"]
            assert page.index("the beginning") < page.index("the middle") < page.index("the end")
            assert "<script>" not in page and "open it on its server" not in page
            assert len(_ids(page)) == 3
            # and it is not fetched again
            await alice.get(f"/statuses/{end.id}")
            assert len(hits) == 2
            # A parent its server does not have: the post shows, with the link to it
            orphan = await alice.get(f"/statuses/{lost.id}")
            assert orphan.status_code == 200 and "an answer to nothing" in orphan.text
            assert f'href="{carl}/notes/4"' in orphan.text and hits[-1] == "/users/carl/notes/4"
