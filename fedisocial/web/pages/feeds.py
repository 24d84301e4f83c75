"""The feeds: home (with the composer), local, federated and a hashtag's.

Each is a page of cards, newest first, with "Load more" (``?max_id=``: the id of
the last card) that works as a plain link and, with the script, appends the next
page in place (``?fragment=1`` answers only the cards). What a viewer may not
read is never listed: the listings of :mod:`fedisocial.social.timeline` filter in
the query. The signed-out front page (and ``/about``) is the instance's landing page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import BadRequest
from fedisocial.social import timeline
from fedisocial.social.collections import Cursor, Listing, read_page
from fedisocial.store.models import Actor, Object
from fedisocial.web.context import get_context
from fedisocial.web.pages import public
from fedisocial.web.pages.base import max_id, page, signed_in, viewer
from fedisocial.web.pages.cards import Card, cards
from fedisocial.web.pages.compose import composer_values
from fedisocial.web.session import current_session

__all__ = ["routes"]

#: cards per page of a feed
PAGE_SIZE = 20


async def _show(request: Request, me: Actor | None, rows: Sequence[Object], older: int | None,
                *, title: str, feed: str, **values: Any) -> Response:  # fmt: skip
    context = get_context(request)
    shown: list[Card] = await cards(context.db, context.urls, me, rows)
    more = f"{request.url.path}?max_id={older}" if older is not None else None
    template = "_feed_page.html" if request.query_params.get("fragment") else "feed.html"
    return await page(request, template, cards=shown, more=more, title=title, feed=feed,
                      paged=request.query_params.get("max_id") is not None, **values)  # fmt: skip


async def _listing(request: Request, me: Actor | None, listing: Listing[Object], *,
                   title: str, feed: str, **values: object) -> Response:  # fmt: skip
    found = await read_page(get_context(request).db, listing, Cursor(max_id=max_id(request)),
                            PAGE_SIZE)  # fmt: skip
    return await _show(request, me, found.items, found.next_max_id, title=title, feed=feed,
                       **values)  # fmt: skip


async def front(request: Request) -> Response:
    """``/``: the home feed for a signed-in browser, the landing page for anyone else."""
    if await current_session(request) is None:
        return await public.home(request)
    return await home(request)


async def home(request: Request) -> Response:
    """The composer and the home feed (own posts, followed accounts, boosts)."""
    me = await signed_in(request)
    context = get_context(request)
    found = await timeline.home_page(context.db, me.id, Cursor(max_id=max_id(request)), PAGE_SIZE)
    return await _show(request, me, [item.object for item in found.items], found.next_max_id,
                       title="Home", feed="home",
                       composer=await composer_values(request, me))  # fmt: skip


async def local(request: Request) -> Response:
    me = await viewer(request)
    return await _listing(request, me, timeline.public(me, local=True), title="Local",
                          feed="local")  # fmt: skip


async def federated(request: Request) -> Response:
    me = await viewer(request)
    return await _listing(request, me, timeline.public(me), title="Federated", feed="federated")


async def tag(request: Request) -> Response:
    me = await viewer(request)
    name = timeline.tag_name(request.path_params["name"])
    if not name:
        raise BadRequest("A hashtag is letters, digits and underscores")
    return await _listing(request, me, timeline.tagged(name, me), title=f"#{name}",
                          feed=f"tag:{name}", tag=name)  # fmt: skip


routes: list[BaseRoute] = [
    Route("/", front),
    Route("/about", public.home),
    Route("/home", home),
    Route("/local", local),
    Route("/federated", federated),
    Route("/tags/{name}", tag),
]
