"""The search page as a browser uses it: local accounts, hashtags and posts; a remote
handle and post resolved from a fake remote server on a loopback port (in this event
loop); addresses the guarded client refuses; hostile remote names and HTML shown harmless."""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import AsyncIterator

import pytest
from markupsafe import escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fedisocial.app import Context, create_app
from fedisocial.config import Settings
from fedisocial.social import notifications
from fedisocial.social.accounts import create_user, find_local_actor
from fedisocial.store.db import Database
from fedisocial.web.pages.base import profile_path
from tests.loopback import serve
from tests.oauthflow import PASSWORD
from tests.webapp import browser, csrf_of, signed_in_browser

pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

AS2 = "application/activity+json"
#: what a hostile server puts in a name, a bio and a post
HOSTILE_NAME = '<script>alert("name")</script><img src=x onerror=alert(1)>Bob'
HOSTILE_HTML = ('<p>look <script>alert("post")</script><a href="javascript:alert(2)" '
                'onclick="steal()">here</a><img src=x onerror=alert(3)> #Faraway</p>')  # fmt: skip


def fake_remote() -> Starlette:
    """A server with one account, bob (hostile name and bio), and one public post of his."""

    def base(request: Request) -> str:
        return f"http://{request.headers['host']}"

    async def webfinger(request: Request) -> Response:
        resource = request.query_params.get("resource", "")
        if not resource.startswith("acct:bob@"):
            return JSONResponse({"error": "not found"}, 404)
        return JSONResponse({"subject": resource, "links": [
            {"rel": "self", "type": AS2, "href": f"{base(request)}/users/bob"}]})  # fmt: skip

    async def actor(request: Request) -> Response:
        me = f"{base(request)}/users/bob"
        return JSONResponse({
            "@context": "https://www.w3.org/ns/activitystreams", "id": me, "type": "Person",
            "preferredUsername": "bob", "name": HOSTILE_NAME, "inbox": f"{me}/inbox",
            "summary": '<p onclick="x()">bio<script>alert(4)</script></p>',
            "url": "javascript:alert(5)", "icon": {"type": "Image", "url": "javascript:alert(6)"},
            "indexable": True,
        }, media_type=AS2)  # fmt: skip

    async def note(request: Request) -> Response:
        me = f"{base(request)}/users/bob"
        return JSONResponse({
            "@context": "https://www.w3.org/ns/activitystreams", "id": str(request.url),
            "type": "Note", "attributedTo": me, "content": HOSTILE_HTML,
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "published": "2025-01-02T03:04:05Z",
            "tag": [{"type": "Hashtag", "name": "#faraway", "href": f"{base(request)}/tags/x"}],
        }, media_type=AS2)  # fmt: skip

    return Starlette(routes=[
        Route("/.well-known/webfinger", webfinger),
        Route("/users/bob", actor),
        Route("/notes/{id}", note),
    ])  # fmt: skip


@pytest.fixture
async def remote_base() -> AsyncIterator[str]:
    async with serve(fake_remote()) as url:
        yield url


def _text(page: str, css: str) -> list[str]:
    return [html.unescape(" ".join(re.sub(r"<[^>]+>", " ", m).split()))
            for m in re.findall(rf'class="{css}"[^>]*>(.*?)</', page, re.S)]  # fmt: skip


async def test_search_finds_people_hashtags_and_posts_here(
    app: Starlette, context: Context
) -> None:
    async with signed_in_browser(app, context, "alice") as alice:
        me = await find_local_actor(context.db, context.urls, "alice")
        await context.outbox.post(me, "Tending the #Gardening beds today")
        # An empty search is the form with its hints
        empty = await alice.get("/search")
        assert empty.status_code == 200
        assert '<label for="search-q">' in empty.text and 'type="search"' in empty.text
        assert "@bob@example.org" in empty.text and "Search</button>" in empty.text
        await create_user(context.db, context.urls, "gardener", PASSWORD)
        # When alice searches for a name's start
        found = await alice.get("/search", params={"q": "garden"})
        # Then the account is there with a Follow form, the hashtag links to its feed,
        # and her post is a card
        assert 'href="/@gardener"' in found.text
        assert 'action="/@gardener/follow"' in found.text
        assert csrf_of(found.text)
        assert 'href="/tags/gardening">#gardening</a>' in found.text
        assert "Tending the" in found.text and '<article class="post"' in found.text
        assert "Nothing found" not in found.text
        # her own account says so instead of a form
        mine = await alice.get("/search", params={"q": "alice"})
        assert "That's you" in mine.text and 'action="/@alice/follow"' not in mine.text
        nothing = await alice.get("/search", params={"q": "zzzqqq"})
        assert "Nothing found for “zzzqqq”" in nothing.text
        assert (await alice.get("/search", params={"q": "x" * 501})).status_code == 400
    # A visitor finds people and hashtags too, with no forms and no posts
    async with browser(app) as visitor:
        seen = await visitor.get("/search", params={"q": "garden"})
        assert seen.status_code == 200
        assert 'href="/@gardener"' in seen.text and "/follow" not in seen.text
        assert 'href="/tags/gardening"' in seen.text and "Tending the" not in seen.text


async def test_a_remote_handle_and_post_are_resolved_and_shown_harmless(
    app: Starlette, context: Context, remote_base: str
) -> None:
    host = remote_base.removeprefix("http://")
    async with signed_in_browser(app, context, "alice") as alice:
        # When alice searches bob's handle on the other server
        found = await alice.get("/search", params={"q": f"@bob@{host}"})
        assert found.status_code == 200, found.text
        # Then his account is found there, with a Follow form, and its name is only text
        path = profile_path(f"bob@{host}")
        assert f'href="{path}"' in found.text and f'action="{path}/follow"' in found.text
        assert _text(found.text, "search-account-names") == [HOSTILE_NAME]
        assert str(escape(HOSTILE_NAME)) in found.text
        _harmless(found.text)
        assert 'src="/static/favicon.svg"' in found.text  # (his "icon" was a javascript: URL)
        # and the handle without its @ finds him too, now without asking his server
        assert f'href="{path}"' in (await alice.get("/search", params={"q": f"bob@{host}"})).text

        # When she searches the address of his post
        post = await alice.get("/search", params={"q": f"{remote_base}/notes/1"})
        # Then it is a card whose HTML is cleaned
        assert '<article class="post"' in post.text and "look" in post.text
        _harmless(post.text)
        # A handle his server does not know says so plainly
        missing = await alice.get("/search", params={"q": f"@nobody@{host}"})
        assert f"No account @nobody@{host} could be found." in missing.text

        # And a like of his shows on alice's notifications as harmless as his name here
        me = await find_local_actor(context.db, context.urls, "alice")
        mine = await context.outbox.post(me, "mine")
        async with context.db.transaction() as session:
            await notifications.record(session, [notifications.Notice(
                me.uri, "favourite", f"{remote_base}/users/bob", "like-1", mine)])  # fmt: skip
        page = await alice.get("/notifications")
        assert str(escape(HOSTILE_NAME)) in page.text
        _harmless(page.text)
        assert f'href="{path}"' in page.text
    # A visitor's search does not ask other servers, and says how to
    async with browser(app) as visitor:
        seen = await visitor.get("/search", params={"q": f"@carol@{host}"})
        assert "Sign in to look it up on its own server." in seen.text


def _harmless(page: str) -> None:
    """No script, event handler or javascript: URL of the remote's got into the markup
    (as text, escaped, it may show)."""
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/app.js" defer>']
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", page, re.I)
    assert not re.search(r"(href|src|action)\s*=\s*[\"']?\s*javascript:", page, re.I)
    assert "<img src=x" not in page


@pytest.fixture
async def guarded(settings: Settings, db: Database) -> AsyncIterator[tuple[Starlette, Context]]:
    """An instance that, as in production, does not fetch from private addresses."""
    closed = dataclasses.replace(settings, allow_private_networks=False)
    application = create_app(closed, database=db)
    async with application.router.lifespan_context(application):
        yield application, application.state.context


async def test_private_addresses_are_refused_and_the_page_says_so(
    guarded: tuple[Starlette, Context], remote_base: str
) -> None:
    app, context = guarded
    host = remote_base.removeprefix("http://")
    async with signed_in_browser(app, context, "alice") as alice:
        for query in (f"{remote_base}/notes/1", f"@bob@{host}", "https://10.1.2.3/users/x"):
            page = await alice.get("/search", params={"q": query})
            assert page.status_code == 200
            assert "couldn&#39;t be fetched" in page.text, query
            assert "does not fetch from private" in page.text, query
            assert '<article class="post"' not in page.text and "/follow" not in page.text
