"""The notifications page: ``/notifications``, grouped as Mastodon 4.3 groups them.

Likes of one post, boosts of one post and follows, within the same hour, are one entry
("Alice and 3 others liked your post"): :func:`fedisocial.social.notifications.grouped_page`
makes the groups in one query. Each entry shows who (avatars and names linking to their
profiles), what happened, when, and the post: in full for mentions and replies (they
are conversations, with their buttons), as a short excerpt for the rest. A follow
request has Approve and Reject buttons while it waits
(:func:`fedisocial.social.relations.answer_follow_request`, as the Mastodon API's
``/api/v1/follow_requests/:id/authorize``). A finished image links to the composer,
where drafts are listed.

Tabs: All, and Mentions (``?filter=mentions``). "Load more" (``?max_id=``) pages as the
feeds do. Opening the newest page of All moves the ``notifications`` marker up to the
newest entry shown, as Mastodon's web UI does: the navigation's unread badge goes to 0,
and entries newer than the marker were are shown as new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import BadRequest
from fedisocial.social import markers, notifications, relations
from fedisocial.social.collections import Cursor
from fedisocial.social.notifications import GENERATION, MASTODON_TYPES, Group
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Object
from fedisocial.urls import Urls
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import done, max_id, page, profile_path, read_form, signed_in
from fedisocial.web.pages.cards import Card, cards

__all__ = ["Entry", "Person", "person", "routes"]

#: notification groups per page
PAGE_SIZE = 20
#: the tabs: their ``?filter=`` value, their title and the types they list
TABS = {"all": ("All", (*MASTODON_TYPES, GENERATION)), "mentions": ("Mentions", ("mention",))}
#: the types shown with their post in full (conversations); others show an excerpt
_FULL_POST = ("mention", "status")
#: the picture of a remote account that has none
_NO_AVATAR = "/static/favicon.svg"


@dataclass(frozen=True)
class Person:
    """An account as an entry shows it: name, handle, avatar and the path of its profile."""

    id: int
    name: str
    acct: str
    avatar: str
    path: str


def person(actor: Actor, urls: Urls) -> Person:
    """``actor`` as pages list accounts (remote names are plain text: escaped when shown)."""
    acct = actor.username if actor.local else f"{actor.username}@{actor.domain}"
    avatar = actor.icon_url or (urls.avatar(actor.username) if actor.local else _NO_AVATAR)
    return Person(actor.id, (actor.name or actor.username).strip() or actor.username, acct,
                  avatar, profile_path(acct))  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One group of notifications as the page shows it."""

    key: str
    type: str
    count: int
    people: list[Person]
    card: Card | None
    #: the newest notification of the group: its id and when it came
    latest_id: int
    created: datetime
    unread: bool
    #: ``follow_request``: "pending", "approved" or "answered" (withdrawn or rejected)
    request: str = ""
    #: the post replies to one of the reader's posts (a ``mention`` that is a reply)
    reply: bool = False
    own: bool = False

    @property
    def anchor(self) -> str:
        return f"n-{self.latest_id}"

    @property
    def others(self) -> int:
        return self.count - 1


async def _requests(db: Database, me: Actor, groups: Sequence[Group]) -> dict[int, str]:
    """Where each follow request of the page stands, by the requester's id."""
    asking = [g.latest.actor for g in groups if g.latest.notification.type == "follow_request"]
    if not asking:
        return {}
    found = await relations.relationships(db, me, asking)
    return {r.actor_id: "pending" if r.requested_by else "approved" if r.followed_by
            else "answered" for r in found}  # fmt: skip


async def _entries(request: Request, me: Actor, groups: Sequence[Group],
                   read_up_to: int) -> list[Entry]:  # fmt: skip
    context = get_context(request)
    posts = list({g.latest.post.id: g.latest.post for g in groups if g.latest.post}.values())
    shown: dict[int, Card] = {}
    if posts:
        found = await cards(context.db, context.urls, me, posts)
        shown = {int(card.status["id"]): card for card in found}
    standing = await _requests(context.db, me, groups)
    entries = []
    for group in groups:
        latest = group.latest
        post: Object | None = latest.post
        card = shown.get(post.id) if post is not None else None
        if post is not None and card is None:
            continue  # a post the reader may not see now: the entry goes (as the API's)
        kind = latest.notification.type
        entries.append(Entry(
            key=group.key, type=kind, count=group.count,
            people=[person(actor, context.urls) for actor in group.accounts],
            card=card, latest_id=latest.notification.id, created=latest.notification.created_at,
            unread=latest.notification.id > read_up_to,
            request=standing.get(latest.actor.id, "") if kind == "follow_request" else "",
            reply=bool(card and card.status.get("in_reply_to_account_id") == str(me.id)),
            own=latest.actor.id == me.id,
        ))  # fmt: skip
    return entries


async def _read_up_to(request: Request, me: Actor) -> int:
    found = await markers.read(get_context(request).db, me.id, ["notifications"])
    value = found[0].last_read_id if found else ""
    return int(value) if value.isdigit() else 0


async def index(request: Request) -> Response:
    """The reader's notifications, newest first, grouped; marks them read (first page)."""
    me = await signed_in(request)
    tab = request.query_params.get("filter") or "all"
    if tab not in TABS:
        raise BadRequest(f"filter is one of {', '.join(TABS)}, not {tab!r}")
    title, types = TABS[tab]
    context = get_context(request)
    older = max_id(request)
    found = await notifications.grouped_page(context.db, me, Cursor(max_id=older), PAGE_SIZE,
                                             types=types)  # fmt: skip
    # entries newer than the marker are new (all, without one); seeing the newest reads them
    entries = await _entries(request, me, found.items, await _read_up_to(request, me))
    if tab == "all" and older is None and found.items:
        newest = max(group.latest.notification.id for group in found.items)
        await markers.advance(context.db, me.id, "notifications", newest)
    query = "filter=mentions&" if tab == "mentions" else ""
    full = found.next_max_id is not None and len(found.items) >= PAGE_SIZE
    more = f"/notifications?{query}max_id={found.next_max_id}" if full else None
    fragment = request.query_params.get("fragment")
    template = "_notifications_page.html" if fragment else "notifications.html"
    return await page(request, template, entries=entries, more=more, tab=tab, tabs=TABS,
                      title=title, paged=older is not None)  # fmt: skip


async def _answer(request: Request, *, accept: bool) -> Response:
    """Approve or reject a follow request from the page (the requester by id)."""
    me = await signed_in(request)
    await read_form(request)
    context = get_context(request)
    requester = await relations.actor_by_id(context.db, int(request.path_params["id"]))
    await relations.answer_follow_request(context.outbox, me, requester, accept=accept)
    answer = "approved" if accept else "answered"
    return done(request, {"request": answer}, back="/notifications")


async def authorize(request: Request) -> Response:
    return await _answer(request, accept=True)


async def reject(request: Request) -> Response:
    return await _answer(request, accept=False)


routes: list[BaseRoute] = [
    Route("/notifications", index),
    Route("/notifications/requests/{id:int}/authorize", authorize, methods=["POST"]),
    Route("/notifications/requests/{id:int}/reject", reject, methods=["POST"]),
]
