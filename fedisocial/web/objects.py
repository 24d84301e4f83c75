"""Our objects, activities and collections, at their ids.

- ``/users/NAME/statuses/ID`` (and ``/@NAME/ID``): a post, as AS2 for servers
  and an HTML page for browsers; ``/users/NAME/activities/ID``: an activity.
  Deleted ones answer 410 (a ``Tombstone`` as AS2). Who may read what is
  :mod:`fedisocial.social.access` (one rule for objects, collections, pages).
- Collections, Mastodon's shape: the collection URL is an ``OrderedCollection``
  with ``totalItems`` and ``first``/``last`` page URLs; ``?page=true`` (then
  ``&max_id=`` or ``&min_id=``) is an ``OrderedCollectionPage`` with
  ``partOf``, ``orderedItems`` newest first and ``next``/``prev``. The actor's
  ``outbox``, ``followers``, ``following`` and ``featured`` (not paged), each
  post's ``replies``, ``likes`` and ``shares``; and, to their actor only (an OAuth token
  or the password), ``inbox`` (the home feed), ``liked``, and FEP-4ccd's
  ``pendingFollowers`` and ``pendingFollowing`` (Follow activities not yet answered).
- Secure mode (``authorized_fetch``): every AS2 read here needs a signed GET.
  Browsers still get the HTML pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fedisocial.ap import render as as2
from fedisocial.ap.vocab import ACTIVITY_JSON
from fedisocial.errors import BadRequest, Gone, NotFound
from fedisocial.social.access import ensure_readable, is_blocked, is_public
from fedisocial.social.accounts import find_local_actor
from fedisocial.social.collections import (
    Cursor,
    Listing,
    Page,
    activity_document,
    bare,
    count,
    featured,
    find_activity,
    find_object,
    followers,
    following,
    liked,
    likes,
    outbox,
    pending_followers,
    pending_following,
    read_page,
    replies,
    shares,
)
from fedisocial.social.timeline import home, home_feed
from fedisocial.store.models import Actor, Object
from fedisocial.urls import Urls
from fedisocial.web import auth
from fedisocial.web.context import get_context
from fedisocial.web.federation import wants_activity_json
from fedisocial.web.pages.public import activity_page, deleted_page, post_page

if TYPE_CHECKING:
    from fedisocial.app import Context

__all__ = ["routes"]

T = TypeVar("T")

#: what a page is (Mastodon's ``?page=true``), and what is not
_NOT_PAGED = frozenset({"", "false", "0"})
_ACTIVITY_TYPES_SHOWN_AS_POSTS = frozenset({"Create", "Update"})


# -- responses ----------------------------------------------------------------------------


def _as2(doc: dict[str, Any], *, public: bool, status_code: int = 200) -> Response:
    """AS2 with ``Vary: Accept``; shared caches may keep it only when anyone may read it."""
    cache = "public, max-age=60" if public else "private, no-store"
    headers = {"Vary": "Accept", "Cache-Control": cache}
    body = orjson.dumps(doc)
    return Response(body, status_code, headers=headers, media_type=ACTIVITY_JSON)


def _html(response: Response) -> Response:
    response.headers["Vary"] = "Accept"
    return response


def _tombstone(obj: Object) -> Response:
    """410 with the Tombstone (notes keep theirs as their data; activities get one)."""
    if obj.data.get("type") == "Tombstone":
        stone = obj.data
    else:
        stone = as2.tombstone(obj.uri, former_type=obj.type, deleted=obj.deleted_at)
    return _as2(as2.served_tombstone(stone), public=True, status_code=410)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not wants_activity_json(request)


def _shared(request: Request, *, anyone: bool) -> bool:
    """Whether a shared cache may keep a document: readable by ``anyone``, outside secure mode."""
    return anyone and not get_context(request).settings.authorized_fetch


async def _gate(request: Request) -> None:
    """Secure mode: an AS2 read needs a valid signature (401 otherwise)."""
    if get_context(request).settings.authorized_fetch:
        await auth.require_signature(request)


async def _check_read(request: Request, obj: Object) -> None:
    await ensure_readable(get_context(request).db, obj, await auth.viewer(request))


# -- posts and activities -------------------------------------------------------------------


async def _local(request: Request, find: Callable[[Context, str, str], Awaitable[T | None]]) -> T:
    """What ``find(context, username, id)`` finds from the path; the username's case may vary."""
    context = get_context(request)
    username, ident = request.path_params["username"], str(request.path_params["ident"])
    found = await find(context, username, ident)
    if found is None:
        actor = await find_local_actor(context.db, context.urls, username)
        if actor.username != username:
            found = await find(context, actor.username, ident)
    if found is None:
        raise NotFound(f"nothing at {request.url.path}")
    return found


async def _find_note(
    context: Context, username: str, ident: str
) -> tuple[Object, Actor | None] | None:
    return await find_object(context.db, context.urls.note(username, ident))


async def _find_activity(
    context: Context, username: str, ident: str
) -> tuple[Object, Object | None] | None:
    return await find_activity(context.db, context.urls.activity(username, ident))


async def note(request: Request) -> Response:
    """A local post: AS2 or HTML, 410 once deleted."""
    obj, author = await _local(request, _find_note)
    wants_as2 = wants_activity_json(request)
    if wants_as2:
        await _gate(request)
    if obj.deleted_at is not None:
        return _tombstone(obj) if wants_as2 else _html(await deleted_page(request, obj))
    if not wants_as2:  # the page checks who reads, a signed-in browser's session included
        return _html(await post_page(request, obj, author))
    await _check_read(request, obj)
    return _as2(as2.compact(obj.data), public=_shared(request, anyone=is_public(obj)))


async def activity(request: Request) -> Response:
    """A local activity. A Like is as visible as what it likes; a Create shows its post."""
    act, target = await _local(request, _find_activity)
    wants_as2 = wants_activity_json(request)
    if wants_as2:
        await _gate(request)
    post_gone = target is not None and target.deleted_at is not None
    if act.deleted_at is not None or (act.type in _ACTIVITY_TYPES_SHOWN_AS_POSTS and post_gone):
        return _tombstone(act) if wants_as2 else _html(await deleted_page(request, act))
    subject = target if act.type == "Like" and target is not None else act
    await _check_read(request, subject)
    if wants_as2:
        public = _shared(request, anyone=is_public(subject))
        return _as2(as2.compact(activity_document(act, target)), public=public)
    if act.type in _ACTIVITY_TYPES_SHOWN_AS_POSTS and target is not None and target.local:
        return _html(RedirectResponse(target.uri, status_code=302))
    context = get_context(request)
    author = await find_local_actor(context.db, context.urls, request.path_params["username"])
    return _html(await activity_page(request, act, author))


# -- collections ----------------------------------------------------------------------------


def _page_url(collection_id: str, **cursor: int) -> str:
    return f"{collection_id}?{urlencode({'page': 'true', **cursor})}"


def _number(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"{name} must be a non-negative number, not {value!r}")
    return int(value)


def _cursor(request: Request) -> Cursor | None:
    """The page asked for, or None for the collection itself."""
    max_id, min_id = _number(request, "max_id"), _number(request, "min_id")
    if max_id is not None and min_id is not None:
        raise BadRequest("give max_id or min_id, not both")
    paged = request.query_params.get("page", "").lower() not in _NOT_PAGED
    if not paged and max_id is None and min_id is None:
        return None
    return Cursor(max_id=max_id, min_id=min_id)


def _collection_document(collection_id: str, total: int) -> dict[str, Any]:
    first, last = _page_url(collection_id), _page_url(collection_id, min_id=0)
    return as2.ordered_collection(collection_id, total, first=first, last=last)


def _page_document(collection_id: str, cursor: Cursor, page: Page[Any]) -> dict[str, Any]:
    here = {
        k: v for k, v in (("max_id", cursor.max_id), ("min_id", cursor.min_id)) if v is not None
    }
    older, newer = page.next_max_id, page.prev_min_id
    return as2.collection_page(
        _page_url(collection_id, **here), collection_id, page.items,
        next=_page_url(collection_id, max_id=older) if older is not None else None,
        prev=_page_url(collection_id, min_id=newer) if newer is not None else None,
    )  # fmt: skip


async def _collection(
    request: Request, collection_id: str, listing: Listing[Any], *, public: bool
) -> Response:
    """The collection or the page asked for; ``public``: the same for every reader."""
    context = get_context(request)
    cursor = _cursor(request)
    if cursor is None:
        doc = _collection_document(collection_id, await count(context.db, listing))
    else:
        doc = _page_document(collection_id, cursor, await read_page(context.db, listing, cursor))
    return _as2(doc, public=_shared(request, anyone=public))


async def _actor_for_collection(request: Request) -> Actor | Response:
    """The local actor owning a collection, or the redirect to its profile for browsers."""
    context = get_context(request)
    actor = await find_local_actor(context.db, context.urls, request.path_params["username"])
    if _wants_html(request):
        return _html(RedirectResponse(actor.url or actor.uri, status_code=302))
    await _gate(request)
    viewer = await auth.viewer_uri(request)
    if viewer is not None and await is_blocked(context.db, actor.uri, viewer):
        raise NotFound(f"no user called {actor.username!r} on this instance")
    return actor


def _actor_collection(
    collection_url: Callable[[Urls, str], str],
    listing: Callable[[str, str | None], Listing[Any]],
    *,
    per_reader: bool,
) -> Callable[[Request], Awaitable[Response]]:
    """A handler for one of an actor's paged collections (outbox, followers, following).

    ``listing(actor, viewer)``; ``per_reader``: what it lists depends on who reads.
    """

    async def handler(request: Request) -> Response:
        actor = await _actor_for_collection(request)
        if isinstance(actor, Response):
            return actor
        viewer = await auth.viewer_uri(request)
        urls = get_context(request).urls
        return await _collection(request, collection_url(urls, actor.username),
                                 listing(actor.uri, viewer),
                                 public=not per_reader or viewer is None)  # fmt: skip

    return handler


actor_outbox = _actor_collection(Urls.outbox, outbox, per_reader=True)
actor_followers = _actor_collection(Urls.followers, lambda uri, _: followers(uri),
                                    per_reader=False)  # fmt: skip
actor_following = _actor_collection(Urls.following, lambda uri, _: following(uri),
                                    per_reader=False)  # fmt: skip


async def actor_featured(request: Request) -> Response:
    """Pinned posts, embedded, last pinned first (one short list, as Mastodon: no pages)."""
    actor = await _actor_for_collection(request)
    if isinstance(actor, Response):
        return actor
    context, viewer = get_context(request), await auth.viewer_uri(request)
    pinned = await featured(context.db, actor.uri, viewer)
    doc = as2.ordered_collection(context.urls.featured(actor.username), len(pinned),
                                 items=[bare(p.data) for p in pinned])  # fmt: skip
    return _as2(doc, public=_shared(request, anyone=viewer is None))


async def instance_outbox(request: Request) -> Response:
    """The instance actor posts nothing; its outbox exists because its document names it."""
    context = get_context(request)
    if _wants_html(request):
        return _html(RedirectResponse(context.urls.about, status_code=302))
    await _gate(request)
    collection_id = f"{context.urls.instance_actor}/outbox"
    listing = outbox(context.urls.instance_actor)
    return await _collection(request, collection_id, listing, public=True)


async def _post_collection(
    request: Request, name: str, listing: Callable[[str, str | None], Listing[str]]
) -> Response:
    """``replies``, ``likes`` or ``shares`` of a post readable by whoever asks.

    ``listing(post, viewer)``; the replies listed are those the viewer may read.
    """
    obj, _author = await _local(request, _find_note)
    if _wants_html(request):
        return _html(RedirectResponse(obj.uri, status_code=302))
    await _gate(request)
    if obj.deleted_at is not None:
        raise Gone(f"{obj.uri} was deleted")
    await _check_read(request, obj)
    viewer = await auth.viewer_uri(request)
    urls = get_context(request).urls
    mint = {"replies": urls.replies, "likes": urls.likes, "shares": urls.shares}[name]
    public = is_public(obj) and (viewer is None or name != "replies")
    return await _collection(request, mint(obj.uri), listing(obj.uri, viewer), public=public)


async def post_replies(request: Request) -> Response:
    return await _post_collection(request, "replies", replies)


async def post_likes(request: Request) -> Response:
    return await _post_collection(request, "likes", lambda uri, _: likes(uri))


async def post_shares(request: Request) -> Response:
    return await _post_collection(request, "shares", lambda uri, _: shares(uri))


# -- the home feed ----------------------------------------------------------------------------


async def _owner(request: Request, what: str, scope: str) -> Actor:
    """The path's local actor, when it is who asks (its token, with ``scope``, or password)."""
    context = get_context(request)
    actor = await find_local_actor(context.db, context.urls, request.path_params["username"])
    return await auth.require_owner(request, actor, what, scope)


async def actor_inbox(request: Request) -> Response:
    """The owner's home feed: its posts, posts of whom it follows, boosts (with the post)."""
    context = get_context(request)
    actor = await _owner(request, "reads this inbox", "read:statuses")
    collection_id = context.urls.inbox(actor.username)
    cursor = _cursor(request)
    if cursor is None:
        doc = _collection_document(collection_id, await count(context.db, home(actor.id)))
    else:
        page = await home_feed(context.db, actor.id, cursor)
        items = [
            bare(i.object.data) | ({"object": bare(i.boosted.data)} if i.boosted else {})
            for i in page.items
        ]
        doc = _page_document(collection_id, cursor, Page(items, page.next_max_id, page.prev_min_id))
    return _as2(doc, public=False)


def _owner_collection(
    collection_url: Callable[[Urls, str], str],
    listing: Callable[[str], Listing[Any]],
    what: str,
    scope: str,
) -> Callable[[Request], Awaitable[Response]]:
    """A handler for a collection only its actor reads (``liked``, FEP-4ccd's pending ones)."""

    async def handler(request: Request) -> Response:
        actor = await _owner(request, what, scope)
        urls = get_context(request).urls
        return await _collection(request, collection_url(urls, actor.username),
                                 listing(actor.uri), public=False)  # fmt: skip

    return handler


actor_liked = _owner_collection(Urls.liked, liked, "reads what they liked", "read:favourites")
actor_pending_followers = _owner_collection(
    Urls.pending_followers, pending_followers, "reads their follow requests", "read:follows"
)
actor_pending_following = _owner_collection(
    Urls.pending_following, pending_following, "reads their pending follows", "read:follows"
)


_READ = ["GET"]  # Starlette adds HEAD

routes: list[BaseRoute] = [
    Route("/users/{username}/statuses/{ident}", note, methods=_READ),
    # (numeric: ``/@NAME/followers`` and the like are the web app's pages)
    Route("/@{username}/{ident:int}", note, methods=_READ),
    Route("/users/{username}/statuses/{ident}/replies", post_replies, methods=_READ),
    Route("/users/{username}/statuses/{ident}/likes", post_likes, methods=_READ),
    Route("/users/{username}/statuses/{ident}/shares", post_shares, methods=_READ),
    Route("/users/{username}/activities/{ident}", activity, methods=_READ),
    Route("/users/{username}/outbox", actor_outbox, methods=_READ),
    Route("/users/{username}/followers", actor_followers, methods=_READ),
    Route("/users/{username}/following", actor_following, methods=_READ),
    Route("/users/{username}/collections/featured", actor_featured, methods=_READ),
    Route("/users/{username}/inbox", actor_inbox, methods=_READ),
    Route("/users/{username}/liked", actor_liked, methods=_READ),
    Route("/users/{username}/pendingFollowers", actor_pending_followers, methods=_READ),
    Route("/users/{username}/pendingFollowing", actor_pending_following, methods=_READ),
    Route("/actor/outbox", instance_outbox, methods=_READ),
]
