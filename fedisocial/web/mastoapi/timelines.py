"""Timelines, favourites and bookmarks (https://docs.joinmastodon.org/methods/timelines/).

Every list pages as Mastodon's do: ``max_id``/``since_id``/``min_id`` are the ids of
statuses (the post's, or a boost's), as apps send them from what they hold, and the
``Link`` header names the next and previous pages in the same ids; favourites and
bookmarks page by the like's and the bookmark's id, as Mastodon's (apps follow
their ``Link``). What a viewer may not read is never listed (the listings of
:mod:`fedisocial.social.timeline` filter in the query). Lists are not kept: a
list's timeline is 404, as for a list that does not exist.
The tag timeline takes ``any[]``, ``all[]`` and ``none[]`` (more tags), as Mastodon's
``TagFeed``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import NotFound
from fedisocial.social import timeline
from fedisocial.social.collections import Listing, Page, read_page
from fedisocial.store.models import Object
from fedisocial.web.auth import require_scope, require_user, signed_in_user
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import Params, page_response, paging, read_params
from fedisocial.web.mastoapi.entities import Entities

__all__ = ["read_listing", "routes"]

T = TypeVar("T")


async def read_listing(request: Request, params: Params, listing: Listing[T],
                       default: int | None = None) -> Page[T]:  # fmt: skip
    """A page of ``listing`` as ``params`` ask (``default`` limit: 20, at most twice that).

    Newer items are always linked (``rel="prev"``) when a page has any, as Mastodon
    links them: apps ask there for what is new.
    """
    cursor, limit = paging(params, *(() if default is None else (default,)))
    keyed = Listing(listing.model, listing.sort, listing.query, listing.values,
                    lambda row: (row[0], listing.item(row)))  # fmt: skip
    page = await read_page(get_context(request).db, keyed, cursor, limit)
    newest = page.items[0][0] if page.items else None
    return Page(
        [item for _, item in page.items],
        page.next_max_id,
        page.prev_min_id if page.prev_min_id is not None else newest,
    )


async def _statuses(request: Request, viewer: Any, page: Page[T],
                    posts: Callable[[T], Object]) -> Response:  # fmt: skip
    context = get_context(request)
    rows = [posts(item) for item in page.items]
    rendered = await Entities(context.db, context.urls, viewer).statuses(rows)
    return page_response(request, page, rendered)


def _object(item: Any) -> Object:
    post: Object = item
    return post


async def home(request: Request) -> Response:
    viewer = await require_user(request, "read:statuses")
    cursor, limit = paging(await read_params(request))
    page = await timeline.home_page(get_context(request).db, viewer.id, cursor, limit)
    return await _statuses(request, viewer, page, lambda item: item.object)


async def _anyone(request: Request) -> Any:
    """The signed-in account reading a public timeline, if any (anonymous readers too)."""
    viewer = await signed_in_user(request)
    if viewer is not None:
        await require_scope(request, "read:statuses")
    return viewer


def _where(params: Params) -> dict[str, bool]:
    return {"local": params.flag("local"), "remote": params.flag("remote"),
            "only_media": params.flag("only_media")}  # fmt: skip


async def public(request: Request) -> Response:
    viewer = await _anyone(request)
    params = await read_params(request)
    page = await read_listing(request, params, timeline.public(viewer, **_where(params)))
    return await _statuses(request, viewer, page, _object)


async def tag(request: Request) -> Response:
    viewer = await _anyone(request)
    params = await read_params(request)
    name = request.path_params["hashtag"]
    listing = timeline.tagged(
        name,
        viewer,
        **_where(params),
        any_of=params.strings("any"),
        all_of=params.strings("all"),
        none_of=params.strings("none"),
    )
    page = await read_listing(request, params, listing)
    return await _statuses(request, viewer, page, _object)


async def favourites(request: Request) -> Response:
    viewer = await require_user(request, "read:favourites")
    page = await read_listing(request, await read_params(request), timeline.favourites(viewer))
    return await _statuses(request, viewer, page, _object)


async def bookmarks(request: Request) -> Response:
    viewer = await require_user(request, "read:bookmarks")
    page = await read_listing(request, await read_params(request), timeline.bookmarks(viewer))
    return await _statuses(request, viewer, page, _object)


async def list_timeline(request: Request) -> Response:
    await require_user(request, "read:lists")
    raise NotFound("Record not found")


def _get(path: str, endpoint: Callable[..., Any]) -> Sequence[BaseRoute]:
    return [Route(path, endpoint, methods=["GET"])]


routes: list[BaseRoute] = [
    *_get("/api/v1/timelines/home", home),
    *_get("/api/v1/timelines/public", public),
    *_get("/api/v1/timelines/tag/{hashtag}", tag),
    *_get("/api/v1/timelines/list/{id}", list_timeline),
    *_get("/api/v1/favourites", favourites),
    *_get("/api/v1/bookmarks", bookmarks),
]
