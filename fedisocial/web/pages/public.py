"""The pages that negotiating handlers show to browsers, and the landing page.

The actor handler (``/users/NAME``, ``/@NAME`` in web/federation.py) shows
:func:`profile_page`, the object handlers (web/objects.py) :func:`post_page`,
:func:`activity_page` and :func:`deleted_page`: the same pages as the app's
(``/@acct``, ``/statuses/ID``), with its navigation, so a post's or profile's
canonical URL is the page people share and link previews read.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fedisocial.ap.vocab import POST_TYPES, get_id, http_url
from fedisocial.errors import NotFound
from fedisocial.social.access import ensure_readable
from fedisocial.social.accounts import list_users, usage
from fedisocial.social.collections import find_object
from fedisocial.social.relations import actors_by_uri
from fedisocial.social.statuses import readable_statuses
from fedisocial.store.models import Actor, Object
from fedisocial.web.context import get_context
from fedisocial.web.pages import profiles, threads
from fedisocial.web.pages.base import page, profile_path, thread_path, viewer
from fedisocial.web.pages.cards import Card, cards

__all__ = ["activity_page", "deleted_page", "home", "post_page", "profile_page"]

#: how an activity reads in a sentence: "Alice <verb> <object>"
_VERBS = {
    "Like": "liked",
    "Announce": "boosted",
    "Follow": "asked to follow",
    "Accept": "accepted a follow request:",
    "Reject": "declined a follow request:",
    "Block": "blocked",
    "Undo": "took back",
    "Delete": "deleted",
    "Create": "posted",
    "Update": "edited",
}


async def profile_page(request: Request, username: str) -> Response:
    """``/users/NAME`` (ours only) and ``/@acct`` for browsers: the app's profile page."""
    if request.url.path.startswith("/users/") and "@" in username:
        raise NotFound(f"no user called {username!r} on this instance")
    return await profiles.profile_page(request, username)


async def post_page(request: Request, obj: Object, author: Actor | None) -> Response:
    """A local post's own URI for browsers: its thread page (401/403/404 as the read rule
    says: followers-only posts ask anonymous readers to sign in)."""
    me = await viewer(request)
    await ensure_readable(get_context(request).db, obj, me)
    return await threads.thread_page(request, obj, me)


async def deleted_page(request: Request, obj: Object) -> Response:
    authors = await actors_by_uri(get_context(request).db, [obj.actor_uri or ""])
    meta_robots, _ = threads.robots(request, authors, noindex=True)
    return await page(request, "deleted.html", 410, uri=obj.uri, deleted=obj.deleted_at,
                      robots=meta_robots)  # fmt: skip


async def activity_page(request: Request, activity: Object, author: Actor | None) -> Response:
    """An activity in a sentence ("Alice boosted …"), with the post it is about when the
    viewer may read it."""
    context, me = get_context(request), await viewer(request)
    object_uri = get_id(activity.data.get("object")) or ""
    target = None
    found = await find_object(context.db, object_uri) if object_uri else None
    if found is not None and found[0].type in POST_TYPES:
        readable = await readable_statuses(context.db, [found[0].id], me.uri if me else None)
        shown = await cards(context.db, context.urls, me, readable)
        target = shown[0] if shown else None
    acct = None
    if author is not None:
        acct = author.username if author.local else f"{author.username}@{author.domain}"
    return await page(
        request,
        "activity.html",
        activity=activity,
        verb=_VERBS.get(activity.type, f"did a {activity.type} of"),
        target=target,
        object_link=_link(target, found[0] if found else None, object_uri),
        author_name=(author.name or author.username) if author else activity.actor_uri,
        author_path=profile_path(acct) if acct else None,
        handle=f"@{acct}" if acct else "",
    )


def _link(target: Card | None, post: Object | None, object_uri: str) -> str | None:
    """Where the activity's object is: a local post at its URI (its page), a remote one we
    show at its thread page, anything else at its own URL (when it is a web address)."""
    if target is not None and post is not None:
        return post.uri if post.local else thread_path(post.id)
    return http_url(object_uri)


async def home(request: Request) -> Response:
    context = get_context(request)
    people = [actor for _, actor in await list_users(context.db)]
    return await page(request, "home.html", people=people, usage=await usage(context.db))
