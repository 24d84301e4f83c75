"""Profiles in the web app, local and remote, as a browser uses them (no script).

The follow, block and mute buttons call the domain's relations and mutes (tested on
both backends with the Mastodon API); the outbox's first page is read from a fake
remote server on a loopback port, in-process. SQLite only.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fedisocial.ap.vocab import AS_PUBLIC
from fedisocial.app import Context
from fedisocial.social.accounts import create_user, find_local_actor, set_locked
from fedisocial.store.models import Actor, utcnow
from tests.loopback import serve
from tests.oauthflow import PASSWORD
from tests.webapp import browser, csrf_of, signed_in_browser

pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def _main(html: str) -> str:
    return html.split('<main id="main">', 1)[1].split("</main>", 1)[0]


def _ids(html: str) -> list[str]:
    return re.findall(r'<article class="post" id="post-(\d+)"', html)


def _buttons(html: str) -> list[str]:
    return re.findall(r'<button type="submit" class="profile-button[^"]*"[^>]*>([^<]+)</button>',
                      _main(html))  # fmt: skip


async def _user(context: Context, name: str) -> Actor:
    await create_user(context.db, context.urls, name, PASSWORD, display_name=name.title())
    return await find_local_actor(context.db, context.urls, name)


async def test_following_muting_and_blocking_from_a_profile(
    app: Starlette, context: Context
) -> None:
    # Given alice, with a bio and fields, posts and a boost, and bob signed in
    alice = await _user(context, "alice")
    async with context.db.transaction() as session:
        row = await session.get_one(Actor, alice.id)
        row.summary = "<p>Sea <em>lover</em><script>alert(1)</script></p>"
        row.fields = [
            {"name": "Site", "value": '<a href="https://alice.example">alice.example</a>'}
        ]
    mine = await context.outbox.post(alice, "my own words")
    async with signed_in_browser(app, context, "bob") as bob:
        bob_actor = await find_local_actor(context.db, context.urls, "bob")
        theirs = await context.outbox.post(bob_actor, "bob's words")
        await context.outbox.boost(alice, theirs.uri)
        # When bob opens her profile
        page = await bob.get("/@alice")
        # Then he sees who she is, what she posted and boosted, and a Follow button
        assert page.status_code == 200
        main = _main(page.text)
        assert '<h1 id="profile-name">Alice</h1>' in main and "@alice@127.0.0.1:8000" in main
        assert "Sea <em>lover</em>" in main and "<script>alert" not in main
        assert '<dt>Site</dt><dd><a href="https://alice.example"' in main
        assert "my own words" in main and "bob's words" in main and "boosted" in main
        assert _buttons(page.text) == ["Follow", "Mute", "Block"]
        assert "<strong>0</strong> followers" in main
        # and /users/alice is the same page
        assert _main((await bob.get("/users/alice")).text) == main

        # When he follows her (a plain form)
        csrf = csrf_of(page.text)
        followed = await bob.post("/@alice/follow", data={"csrf_token": csrf})
        assert followed.status_code == 303 and followed.headers["location"] == "/@alice"
        page = await bob.get("/@alice")
        assert _buttons(page.text) == ["Unfollow", "Mute", "Block"]
        assert "<strong>1</strong> follower" in page.text
        # and she sees that he follows her on his profile
        async with signed_in_browser(app, context, "alice", create=False) as alice_browser:
            his = await alice_browser.get("/@bob")
            assert "Follows you" in his.text and _buttons(his.text)[0] == "Follow back"
            assert _buttons((await alice_browser.get("/@alice")).text) == []
        # and the followers page lists him, the following page nobody
        followers = _main((await bob.get("/@alice/followers")).text)
        assert 'href="/@bob"' in followers and "Followers of Alice" in followers
        assert "Nobody yet." in (await bob.get("/@alice/following")).text

        # When he mutes her, asking for JSON as the script does
        muted = await bob.post("/@alice/mute", data={"csrf_token": csrf},
                               headers={"Accept": "application/json"})  # fmt: skip
        assert muted.status_code == 200
        assert muted.json() == {"following": True, "requested": False, "followed_by": False,
                                "blocking": False, "muting": True}  # fmt: skip
        assert _buttons((await bob.get("/@alice")).text) == ["Unfollow", "Unmute", "Block"]
        # and then blocks her: the follow ends, her posts are hidden, and he can unblock
        await bob.post("/@alice/block", data={"csrf_token": csrf})
        page = await bob.get("/@alice")
        assert _buttons(page.text) == ["Unblock"]
        assert "my own words" not in page.text and "You blocked this account" in page.text
        await bob.post("/@alice/unblock", data={"csrf_token": csrf})
        await bob.post("/@alice/unmute", data={"csrf_token": csrf})
        assert _buttons((await bob.get("/@alice")).text) == ["Follow", "Mute", "Block"]

        # A form without its CSRF value, an unknown action or account, or oneself: refused
        assert (await bob.post("/@alice/follow")).status_code == 403
        assert (await bob.post("/@alice/poke", data={"csrf_token": csrf})).status_code == 404
        assert (await bob.post("/@nobody/follow", data={"csrf_token": csrf})).status_code == 404
        assert (await bob.post("/@bob/block", data={"csrf_token": csrf})).status_code == 400

        # A locked account: he asks, the button says Requested, and it withdraws the request
        await _user(context, "carol")
        await set_locked(context.db, context.urls, "carol", locked=True)
        assert _buttons((await bob.get("/@carol")).text)[0] == "Request to follow"
        await bob.post("/@carol/follow", data={"csrf_token": csrf})
        assert _buttons((await bob.get("/@carol")).text)[0] == "Requested"
        await bob.post("/@carol/unfollow", data={"csrf_token": csrf})
        assert _buttons((await bob.get("/@carol")).text)[0] == "Request to follow"

    # Someone she blocks does not see whom she follows or who follows her
    await context.outbox.block(alice, bob_actor.uri)
    async with signed_in_browser(app, context, "bob", create=False) as bob:
        assert "This list is not shown to you." in (await bob.get("/@alice/followers")).text
    # A visitor gets no buttons, and a sign-in page for a button's form
    async with browser(app) as visitor:
        page = await visitor.get("/@alice")
        assert _buttons(page.text) == [] and "from any fediverse server" in page.text
        asked = await visitor.post("/@alice/follow", data={"csrf_token": "x"},
                                   follow_redirects=False)  # fmt: skip
        assert asked.status_code == 303 and "/auth/sign_in" in asked.headers["location"]
        # and link previews and feed readers find what they need
        head = page.text.split("</head>")[0]
        assert '<link rel="alternate" type="application/atom+xml" href="/users/alice.atom"' in head
        assert f'type="application/activity+json" href="{alice.uri}"' in head
        assert (
            '<meta property="og:image" content="http://127.0.0.1:8000/users/alice/avatar.png">'
            in (head)
        )
        assert '<meta property="og:description" content="Sea lover">' in head
        assert mine.uri  # (her post is public: the visitor saw it above)


async def test_a_profile_s_tabs_and_load_more(app: Starlette, context: Context) -> None:
    # Given alice's 23 posts, a reply of hers to bob and a post with an image
    alice, bob = await _user(context, "alice"), await _user(context, "bob")
    for number in range(23):
        await context.outbox.post(alice, f"post number {number}")
    question = await context.outbox.post(bob, "a question")
    await context.outbox.post(alice, "an answer", in_reply_to=question.uri)
    await context.outbox.post(alice, "a picture", attachments=[{
        "type": "Image", "mediaType": "image/png", "url": "https://media.example/a.png",
        "name": "A picture"}])  # fmt: skip
    async with browser(app) as visitor:
        # When a visitor opens her profile: her posts, not her replies, 20 at a time
        first = await visitor.get("/@alice")
        assert len(_ids(first.text)) == 20
        assert "a picture" in first.text and "an answer" not in first.text
        assert '<a href="/@alice" aria-current="page">Posts</a>' in first.text
        more = re.search(r'href="(/@alice\?max_id=\d+)" data-load-more', first.text)
        assert more is not None
        # and "Load more" brings the rest, as cards only for the script
        rest = await visitor.get(more.group(1) + "&fragment=1")
        assert "<html" not in rest.text and len(_ids(rest.text)) == 4
        assert not set(_ids(rest.text)) & set(_ids(first.text))
        # The other tabs: with her replies, and only what has media
        replies = await visitor.get("/@alice/with_replies")
        assert "an answer" in replies.text and "Posts and replies</a>" in replies.text
        assert re.search(r'href="/@alice/with_replies\?max_id=\d+" data-load-more', replies.text)
        media = await visitor.get("/@alice/media")
        assert "a picture" in media.text and len(_ids(media.text)) == 1
        # Bad cursors and unknown accounts
        assert (await visitor.get("/@alice?max_id=x")).status_code == 400
        assert (await visitor.get("/@nobody")).status_code == 404
        assert (await visitor.get("/@nobody/media")).status_code == 404


# -- remote profiles --------------------------------------------------------------------------

HOSTILE_NAME = '<img src=x onerror="alert(1)">Bob'


def _remote_app(hits: list[str]) -> Starlette:
    """A server with bob: WebFinger, his actor (hostile in every field) and his outbox."""

    def base(request: Request) -> str:
        return f"http://{request.headers['host']}"

    def actor(request: Request) -> dict[str, Any]:
        uri = f"{base(request)}/users/bob"
        return {
            "@context": "https://www.w3.org/ns/activitystreams", "id": uri, "type": "Person",
            "preferredUsername": "bob", "name": HOSTILE_NAME, "inbox": f"{uri}/inbox",
            "outbox": f"{uri}/outbox", "followers": f"{uri}/followers",
            "url": "javascript:alert(2)", "xRobotsTag": "noai",
            "summary": "<p>Hello <script>alert(3)</script>" + "long bio " * 5000 + "</p>",
            "icon": {"type": "Image", "url": "javascript:alert(4)"},
            "image": {"type": "Image", "url": "data:image/png;base64,AAAA"},
            "attachment": [
                {"type": "PropertyValue", "name": "<b>Web</b>",
                 "value": '<a href="javascript:alert(5)">click</a> <a href="https://bob.example">bob.example</a>'},
                {"type": "PropertyValue", "name": "Pronouns", "value": "they/them"},
            ],
            "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": "x"},
        }  # fmt: skip

    def note(request: Request, number: int, author: str, text: str) -> dict[str, Any]:
        uri = f"{base(request)}/users/bob/statuses/{number}"
        return {"type": "Create", "id": f"{uri}/activity", "actor": author, "object": {
            "id": uri, "type": "Note", "attributedTo": author, "to": [AS_PUBLIC],
            "published": f"2026-01-0{number}T10:00:00Z", "content": text,
        }}  # fmt: skip

    async def route(request: Request) -> Response:
        hits.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
        path, me = request.url.path, f"{base(request)}/users/bob"
        if path == "/.well-known/webfinger" and request.query_params["resource"].startswith(
            "acct:bob@"
        ):
            return JSONResponse({"subject": request.query_params["resource"], "links": [
                {"rel": "self", "type": "application/activity+json", "href": me}]})  # fmt: skip
        if path == "/users/bob":
            return JSONResponse(actor(request), media_type="application/activity+json")
        if path == "/users/bob/outbox" and not request.query_params.get("page"):
            return JSONResponse({"id": f"{me}/outbox", "type": "OrderedCollection",
                                 "totalItems": 3, "first": f"{me}/outbox?page=true"},
                                media_type="application/activity+json")  # fmt: skip
        if path == "/users/bob/outbox":
            items = [
                note(request, 1, me, '<p>first <a href="javascript:alert(6)">post</a></p>'),
                note(request, 2, "https://elsewhere.example/users/eve", "<p>not his</p>"),
                note(request, 3, me, "<p>latest post<script>alert(7)</script></p>"),
            ]
            return JSONResponse(
                {"type": "OrderedCollectionPage", "partOf": f"{me}/outbox", "orderedItems": items},
                media_type="application/activity+json",
            )
        return JSONResponse({"error": "not found"}, status_code=404)

    return Starlette(routes=[Route("/{path:path}", route)])


@asynccontextmanager
async def _remote(hits: list[str]) -> AsyncIterator[str]:
    async with serve(_remote_app(hits)) as base:
        yield base.removeprefix("http://")


async def test_a_remote_profile_is_fetched_on_a_first_visit_and_shown_harmless(
    app: Starlette, context: Context
) -> None:
    hits: list[str] = []
    async with _remote(hits) as host:
        acct = f"bob@{host}"
        # Given bob on another server, whom this server does not know: a visitor finds nothing
        async with browser(app) as visitor:
            unknown = await visitor.get(f"/@{acct}")
            assert unknown.status_code == 404 and "sign in to look them up" in unknown.text
        assert hits == []
        async with signed_in_browser(app, context, "alice") as alice:
            # When alice, signed in, opens his profile
            page = await alice.get(f"/@{acct}")
            # Then it was looked up (WebFinger, his actor, his outbox's first page)
            assert page.status_code == 200, page.text
            assert "/users/bob/outbox?page=true" in hits and hits.count("/users/bob") == 1
            main = _main(page.text)
            # and shows his posts from there, his own only, newest first
            assert "latest post" in main and "first" in main and "not his" not in main
            assert main.index("latest post") < main.index("first")
            assert len(_ids(main)) == 2
            # and nothing of what he sent can run or load: name, bio, fields, links, images
            for bad in ("<script>", "<img src=x", 'onerror="', "javascript:", "data:image",
                        "<b>Web</b>"):  # fmt: skip
                assert bad not in page.text, bad
            assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Bob" in main
            assert "<dt>&lt;b&gt;Web&lt;/b&gt;</dt>" in main
            assert '<a href="https://bob.example"' in main and "they/them" in main
            assert "Hello" in main and len(main) < 120_000  # the bio is cut, not the page
            assert f"@bob@{host}" in main and _buttons(page.text) == ["Follow", "Mute", "Block"]
            # (his url being no web address, the link to his server is his actor's id)
            assert (
                f'<a href="http://{host}/users/bob" rel="nofollow noopener noreferrer">See the'
                in (main)
            )
            # and, his server saying he opts out of AI use (FEP-5e53), crawlers are told so
            assert '<meta name="robots" content="noindex, noai, noimageai">' in page.text
            assert page.text.count('name="robots"') == 1
            assert page.headers["x-robots-tag"] == "noai, noimageai"

            # When she opens it again, nothing is fetched: we know him and his posts now
            before = len(hits)
            assert (await alice.get(f"/@{acct}")).status_code == 200
            media = await alice.get(f"/@{acct}/media")  # (none of his posts has media)
            assert media.status_code == 200 and "No posts with images" in media.text
            assert len(hits) == before
            # and she can follow him: the request waits for his server
            followed = await alice.post(f"/@{acct}/follow", data={"csrf_token": csrf_of(page.text)})
            assert followed.status_code == 303
            assert _buttons((await alice.get(f"/@{acct}")).text)[0] == "Requested"
            # and his followers page lists those we know of, pointing to his server for all
            listed = await alice.get(f"/@{acct}/followers")
            assert listed.status_code == 200 and "Only the accounts this server knows of" in (
                listed.text
            )
            # Once our copy of him is old, her next visit fetches his actor again
            async with context.db.transaction() as session:
                row = await session.scalar(select(Actor).where(Actor.uri.like("%/users/bob")))
                assert row is not None and not row.local
                row.fetched_at = utcnow() - timedelta(days=30)
            assert (await alice.get(f"/@{acct}")).status_code == 200
            assert hits.count("/users/bob") == 2
            # An account its server does not have is not found; other spellings lead to his
            assert (await alice.get(f"/@carol@{host}")).status_code == 404
            moved = await alice.get(f"/@Bob@{host.upper()}?max_id=5", follow_redirects=False)
            assert moved.status_code == 302
            assert moved.headers["location"] == f"/@bob@{host.replace(':', '%3A')}?max_id=5"
        # and now that we know him, a visitor sees his profile from the store (at /@, not
        # at /users/, which is for our own accounts)
        async with browser(app) as visitor:
            known = await visitor.get(f"/@{acct}")
            assert known.status_code == 200 and "latest post" in known.text
            assert (await visitor.get(f"/users/{acct}")).status_code == 404
