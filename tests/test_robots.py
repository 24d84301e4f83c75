"""robots.txt and the AI opt-out signals (FEP-5e53 ``noai``; the noai/noimageai directives).

robots.txt is read by Protego (Scrapy's RFC 9309 parser, with ``$`` and per-crawler
groups) as a crawler would. An account that opted out is marked on its profile, its
posts' pages, its feed and its media files (``X-Robots-Tag``, and ``<meta name="robots">``
in HTML); others are not. ``ai_crawlers = "block"`` marks the whole instance.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import httpx
import pytest
from protego import Protego
from sqlalchemy import update
from starlette.applications import Starlette

from fedisocial.app import Context, create_app
from fedisocial.config import Settings, load_settings
from fedisocial.errors import ConfigError
from fedisocial.social.accounts import create_user
from fedisocial.store.db import Database
from fedisocial.store.models import Actor
from fedisocial.web.robots import AI_CRAWLERS, forget_opt_outs, robots_headers
from tests.c2s_helpers import png

BROWSER = "text/html"
NOAI = "noai, noimageai"
META = '<meta name="robots" content="noai, noimageai">'
BASE = "http://127.0.0.1:8000"


async def opt_out(app: Starlette, context: Context, username: str, *, noai: bool = True) -> None:
    """What the account's settings do: set ``actors.noai``, then forget the cached lists."""
    async with context.db.transaction() as session:
        await session.execute(update(Actor).where(Actor.local.is_(True),
                              Actor.username == username).values(noai=noai))  # fmt: skip
    forget_opt_outs(app)


async def robots(client: httpx.AsyncClient) -> Protego:
    answer = await client.get("/robots.txt")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["cache-control"].startswith("public, max-age=")
    return Protego.parse(answer.text)


def may(rules: Protego, agent: str, path: str) -> bool:
    return bool(rules.can_fetch(f"{BASE}{path}", agent))


async def test_robots_txt_keeps_crawlers_out_of_the_app_and_ai_out_of_opted_out_accounts(
    app: Starlette, client: httpx.AsyncClient, context: Context
) -> None:
    # Given alice, who opts out of AI use, and alicebob, whose name starts like hers
    for name in ("alice", "alicebob"):
        await create_user(context.db, context.urls, name, "long enough password")
    await opt_out(app, context, "alice")
    rules = await robots(client)
    # Then every crawler may read public pages, and none the app's private paths
    for agent in ("Googlebot", "GPTBot", "CCBot/2.0", "ClaudeBot"):
        for path in (
            "/settings",
            "/notifications",
            "/compose",
            "/api/v1/timelines/home",
            "/oauth/authorize",
            "/auth/sign_in",
            "/admin/sign_ups",
            "/live?feed=home",
        ):
            assert not may(rules, agent, path), (agent, path)
        for path in ("/", "/local", "/tags/cats", "/@alicebob", "/users/alicebob/statuses/1"):
            assert may(rules, agent, path), (agent, path)
    # AI crawlers may not read alice's profile, feed or posts; others may
    alices = ("/@alice", "/users/alice", "/users/alice.atom", "/@alice/123",
              "/users/alice/statuses/123")  # fmt: skip
    for agent in AI_CRAWLERS:
        for path in alices:
            assert not may(rules, agent, path), (agent, path)
    for path in alices:
        assert may(rules, "Googlebot", path), path
    # When she opts back in, the AI crawlers may read her pages again
    await opt_out(app, context, "alice", noai=False)
    rules = await robots(client)
    assert may(rules, "GPTBot", "/@alice") and may(rules, "GPTBot", "/users/alice.atom")
    assert not may(rules, "GPTBot", "/settings")


async def test_an_opted_out_account_is_marked_on_its_pages_feed_and_media(
    app: Starlette, client: httpx.AsyncClient, context: Context
) -> None:
    # Given alice posted an image and bob a text, neither opted out yet
    for name in ("alice", "bob"):
        await create_user(context.db, context.urls, name, "long enough password")
    alice, bob = await context.outbox.actor_of("alice"), await context.outbox.actor_of("bob")
    media = await context.studio.upload(alice, png(), filename="a.png", description="teal")
    post = await context.studio.publish(alice, "my picture", [media.id], visibility="public")
    bobs = await context.outbox.post(bob, "bob's words")
    post_path = post.uri.removeprefix(BASE)
    alices = ["/@alice", "/users/alice", post_path, "/users/alice.atom",
              f"/media/{media.path}", f"/media/{media.thumbnail_path}"]  # fmt: skip
    for path in alices:
        answer = await client.get(path, headers={"Accept": BROWSER})
        assert answer.status_code == 200, path
        assert "x-robots-tag" not in answer.headers, path
        assert 'name="robots"' not in answer.text, path
    # When alice opts out
    await opt_out(app, context, "alice")
    # Then her profile, post page, feed and files say noai; her pages carry the meta tag
    for path in alices:
        answer = await client.get(path, headers={"Accept": BROWSER})
        assert answer.headers["x-robots-tag"] == NOAI, path
        assert int(answer.headers["content-length"]) == len(answer.content), path
        if answer.headers["content-type"].startswith("text/html"):
            head = answer.text.split("</head>", 1)[0]
            assert head.count(META) == 1, path
    # a HEAD request has the header too
    head_only = await client.head("/@alice", headers={"Accept": BROWSER})
    assert head_only.status_code == 200 and head_only.headers["x-robots-tag"] == NOAI
    # And bob, who did not opt out, is not marked
    for path in ("/@bob", bobs.uri.removeprefix(BASE), "/users/bob.atom"):
        answer = await client.get(path, headers={"Accept": BROWSER})
        assert answer.status_code == 200 and "x-robots-tag" not in answer.headers, path
        assert META not in answer.text, path
    # handlers showing a post of someone who opted out ask for the same header
    assert robots_headers(None, await context.outbox.actor_of("alice")) == {"X-Robots-Tag": NOAI}
    assert robots_headers(bob, None) == {}


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_an_instance_that_blocks_ai_crawlers_marks_every_page_and_file(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # The setting is checked when the instance starts
    with pytest.raises(ConfigError, match="ai_crawlers"):
        load_settings(tmp_path / "none.toml", environ={"FEDISOCIAL_AI_CRAWLERS": "maybe"})
    # Given an instance whose admin blocks AI crawlers
    blocking = create_app(dataclasses.replace(settings, ai_crawlers="block"), database=db)
    async with blocking.router.lifespan_context(blocking):
        context: Context = blocking.state.context
        await create_user(context.db, context.urls, "alice", "long enough password")
        alice = await context.outbox.actor_of("alice")
        media = await context.studio.upload(alice, png(), filename="a.png", description="teal")
        await context.studio.publish(alice, "my picture", [media.id], visibility="public")
        transport = httpx.ASGITransport(app=blocking)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            # Then AI crawlers may read nothing, other crawlers the public pages
            rules = await robots(client)
            for agent in AI_CRAWLERS:
                assert not may(rules, agent, "/") and not may(rules, agent, "/@alice")
            assert may(rules, "Googlebot", "/@alice") and not may(rules, "Googlebot", "/settings")
            # and every page and file says noai, the pages in their <head> too
            for path in ("/", "/local", "/@alice", "/tags/cats.atom", f"/media/{media.path}"):
                answer = await client.get(path, headers={"Accept": BROWSER})
                assert answer.status_code == 200, path
                assert answer.headers["x-robots-tag"] == NOAI, path
                if answer.headers["content-type"].startswith("text/html"):
                    assert re.search(r"<head>\s*" + re.escape(META), answer.text), path
