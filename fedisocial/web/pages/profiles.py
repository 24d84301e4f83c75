"""Profiles: ``/@alice`` here, ``/@bob@example.org`` elsewhere, as Mastodon's web UI shows them.

The header, avatar, name, handle, bio and fields (sanitized again when shown),
the counts, then the posts and boosts the viewer may read, newest first, the
pinned ones above (``?max_id=`` pages back; ``?fragment=1`` answers only the
cards, for "Load more"). ``/users/NAME`` shows a local one for browsers too
(:func:`fedisocial.web.pages.public.profile_page`).

A remote account we do not know yet is looked up on a signed-in person's first
visit (WebFinger and a signed fetch through the guarded client, as search
resolves a handle: :meth:`Outbox.actor_of`), and when we have none of its posts
the first page of its outbox is read (:func:`fetch_recent_posts`: at most 20).
Anonymous visitors see only the accounts we know, so nobody can make this
server fetch from the network without an account here.

Signed-in people get the buttons: Follow (Request to follow for locked accounts;
Requested while a request waits, which withdraws it), Unfollow, Mute and Block,
forms posting to ``/@acct/follow`` and the like, that answer as the feeds'
buttons do (:func:`~fedisocial.web.pages.base.done`). ``/@acct/followers`` and
``/@acct/following`` list the accounts we know on each side (none for someone
the account blocks, as Mastodon does).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fedisocial.ap.vocab import as_list, http_url
from fedisocial.errors import BadRequest, FedisocialError, NotFound
from fedisocial.federation.remote import fetch_recent_posts
from fedisocial.social import mutes, relations
from fedisocial.social.accounts import find_local_actor
from fedisocial.social.collections import (
    Cursor,
    featured,
    followers,
    following,
    profile_posts,
    read_page,
)
from fedisocial.social.content import sanitize
from fedisocial.social.outbox import Outbox
from fedisocial.social.relations import Relationship
from fedisocial.store.models import Actor
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.entities import Entities
from fedisocial.web.pages.base import done, page, profile_path, read_form, signed_in, viewer
from fedisocial.web.pages.base import max_id as max_id_of
from fedisocial.web.pages.cards import Card, cards
from fedisocial.web.pages.threads import robots
from fedisocial.web.session import current_session

__all__ = ["profile_page", "routes"]

log = logging.getLogger(__name__)

#: cards (and accounts) per page, as the feeds show
PAGE_SIZE = 20
#: a handle longer than this names nobody (Mastodon's limits are far below)
_MAX_ACCT = 320
#: what a profile shows of a remote bio and fields, at most (longer ones are cut)
_MAX_BIO = 10_000
_MAX_FIELDS = 16
_MAX_FIELD_NAME = 255
_MAX_FIELD_VALUE = 2_000


def acct_of(actor: Actor) -> str:
    """The handle our pages use: ``alice`` here, ``bob@example.org`` elsewhere."""
    return actor.username if actor.local else f"{actor.username}@{actor.domain}"


async def account(request: Request, acct: str, *, fetch: bool) -> Actor:
    """The account of a handle: a local one, a remote one we know, or (``fetch``) one found
    by WebFinger now; NotFound otherwise. With ``fetch``, a remote one we know is refreshed
    when our copy is stale (:meth:`Outbox.actor_of`)."""
    context = get_context(request)
    name, _, host = acct.strip().removeprefix("@").partition("@")
    host = host.lower()
    if not name or len(acct) > _MAX_ACCT:
        raise NotFound("There is no such account")
    if not host or host == context.urls.netloc:
        return await find_local_actor(context.db, context.urls, name)
    try:
        known = await relations.lookup(context.db, context.urls, f"{name}@{host}")
    except NotFound:
        if not fetch:
            raise NotFound(f"This server does not know @{name}@{host} yet: sign in to look "
                           "them up, or visit their server") from None  # fmt: skip
    else:
        if not fetch:
            return known
        try:  # fetched again once our copy is older than the actor cache keeps them
            return await context.outbox.actor_of(known.uri)
        except FedisocialError as exc:
            log.info("profile: could not refresh %s: %s", known.uri, exc.message)
            return known
    try:
        return await context.outbox.actor_of(f"{name}@{host}")
    except FedisocialError as exc:
        log.info("profile: could not resolve %s@%s: %s", name, host, exc.message)
        raise NotFound(f"Could not find @{name}@{host}: their server did not answer "
                       "with an account") from exc  # fmt: skip


def profile_fields(actor: Actor) -> list[dict[str, str]]:
    """The profile's fields: ours as stored, a remote actor's from its document's
    ``PropertyValue`` attachments; values are sanitized HTML, names plain text."""
    if actor.local:
        raw: list[Any] = list(actor.fields)
    else:
        raw = [item for item in as_list((actor.data or {}).get("attachment"))
               if isinstance(item, dict) and item.get("type") == "PropertyValue"]  # fmt: skip
    shown = []
    for item in raw[:_MAX_FIELDS]:
        name, value = item.get("name"), item.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        shown.append({"name": name[:_MAX_FIELD_NAME],
                      "value_html": sanitize(value[:_MAX_FIELD_VALUE])})  # fmt: skip
    return shown


async def _any_post(request: Request, actor: Actor) -> bool:
    """Whether we have any post of ``actor`` (ours always count: nothing to fetch)."""
    if actor.local:
        return True
    listing = profile_posts(actor.uri, None, local=False, boosts=True)
    return bool((await read_page(get_context(request).db, listing, Cursor(), 1)).items)


#: the tabs of a profile, as Mastodon's: path suffix → (title, and profile_posts's filters:
#: boosts, replies, media_only)
TABS: dict[str, tuple[str, bool, bool, bool]] = {
    "": ("Posts", True, False, False),
    "with_replies": ("Posts and replies", True, True, False),
    "media": ("Media", False, True, True),
}


async def _posts(
    request: Request, actor: Actor, me: Actor | None, max_id: int | None, tab: str, *,
    backfill: bool,
) -> tuple[list[Card], list[Card], int | None]:  # fmt: skip
    """Pinned cards (first page of the first tab only), the page's cards, and the cursor of
    the next page."""
    context = get_context(request)
    who = me.uri if me else None
    _, boosts, replies, media_only = TABS[tab]
    listing = profile_posts(actor.uri, who, local=actor.local, boosts=boosts, replies=replies,
                            media_only=media_only)  # fmt: skip
    found = await read_page(context.db, listing, Cursor(max_id=max_id), PAGE_SIZE)
    if backfill and not found.items and max_id is None and not await _any_post(request, actor):
        try:
            fetched = await fetch_recent_posts(context.db, context.client, actor)
        except FedisocialError as exc:  # their server failing shows what we have: nothing
            log.info("profile: no outbox of %s: %s", actor.uri, exc.message)
            fetched = []
        if fetched:
            found = await read_page(context.db, listing, Cursor(max_id=max_id), PAGE_SIZE)
    pinned = await featured(context.db, actor.uri, who) if actor.local and tab == "" else []
    pinned_ids = {row.id for row in pinned}
    rows = [row for row in found.items if row.id not in pinned_ids]
    shown_pinned = await cards(context.db, context.urls, me, pinned) if max_id is None else []
    return shown_pinned, await cards(context.db, context.urls, me, rows), found.next_max_id


async def profile_page(request: Request, acct: str, tab: str = "") -> Response:
    """A profile with the posts the viewer may read (anyone: public and unlisted ones);
    ``tab``: one of :data:`TABS` (replies too, or only posts with media)."""
    context = get_context(request)
    me = await viewer(request)
    session = await current_session(request)
    actor = await account(request, acct, fetch=me is not None)
    path = profile_path(acct_of(actor))
    if acct_of(actor) != acct.removeprefix("@") and not request.url.path.startswith("/users/"):
        # another spelling (case, a leading @), or a server whose WebFinger named another
        query = request.url.query
        here = f"{path}/{tab}" if tab else path
        return RedirectResponse(here + (f"?{query}" if query else ""), 302)
    max_id = max_id_of(request)
    relation: Relationship | None = None
    if session is not None and session.actor.id != actor.id:
        (relation,) = await relations.relationships(context.db, session.actor, [actor])
    hidden = relation is not None and relation.blocking
    pinned, shown, older = ([], [], None) if hidden else await _posts(
        request, actor, me, max_id, tab, backfill=me is not None)  # fmt: skip
    tab_path = f"{path}/{tab}" if tab else path
    more = f"{tab_path}?max_id={older}" if older is not None else None
    if request.query_params.get("fragment"):
        return await page(request, "_feed_page.html", cards=shown, more=more)
    entity = await Entities(context.db, context.urls, me).account(actor)
    base = context.urls.base_url
    meta_robots, robots_header = robots(request, [actor],
                                        noindex=not actor.local or not actor.indexable)  # fmt: skip
    response = await page(
        request,
        "profile.html",
        robots=meta_robots,
        actor=actor,
        account=entity,
        acct=acct_of(actor),
        handle=f"@{actor.username}@{actor.domain}",
        profile=path,
        bio_html=sanitize(actor.summary[:_MAX_BIO]) if actor.summary else "",
        fields=profile_fields(actor),
        relation=relation,
        is_me=session is not None and session.actor.id == actor.id,
        hidden=hidden,
        pinned=pinned,
        cards=shown,
        more=more,
        paged=max_id is not None,
        tab=tab,
        tab_path=tab_path,
        tabs=[
            (f"{path}/{name}" if name else path, title, name == tab)
            for name, (title, *_) in TABS.items()
        ],
        elsewhere=None if actor.local else (http_url(actor.url) or http_url(actor.uri)),
        canonical=actor.url or actor.uri if actor.local else f"{base}{path}",
        image=entity["avatar"],
    )
    response.headers.update(robots_header)
    return response


# -- followers and following ------------------------------------------------------------------


async def _follows_page(request: Request, *, of_followers: bool) -> Response:
    context = get_context(request)
    me = await viewer(request)
    actor = await account(request, request.path_params["acct"], fetch=me is not None)
    blocked_by = False
    if me is not None and me.id != actor.id:
        (found,) = await relations.relationships(context.db, me, [actor])
        blocked_by = found.blocked_by
    listing = followers(actor.uri) if of_followers else following(actor.uri)
    max_id = max_id_of(request)
    if blocked_by:
        people: list[dict[str, Any]] = []
        older = None
    else:
        found_page = await read_page(context.db, listing, Cursor(max_id=max_id), PAGE_SIZE)
        known = await relations.actors_by_uri(context.db, found_page.items)
        people = await Entities(context.db, context.urls, me).accounts(known)
        older = found_page.next_max_id
    path = profile_path(acct_of(actor))
    kind = "followers" if of_followers else "following"
    name = actor.name or actor.username
    collection = actor.followers_url if of_followers else actor.following_url
    meta_robots, robots_header = robots(request, [actor], noindex=True)
    response = await page(
        request,
        "follows.html",
        robots=meta_robots,
        actor=actor,
        acct=acct_of(actor),
        profile=path,
        kind=kind,
        title=f"Followers of {name}" if of_followers else f"Followed by {name}",
        people=[(person, profile_path(person["acct"])) for person in people],
        blocked_by=blocked_by,
        more=f"{path}/{kind}?max_id={older}" if older is not None else None,
        paged=max_id is not None,
        elsewhere=None if actor.local else http_url(collection) or http_url(actor.url),
    )
    response.headers.update(robots_header)
    return response


async def followers_page(request: Request) -> Response:
    return await _follows_page(request, of_followers=True)


async def following_page(request: Request) -> Response:
    return await _follows_page(request, of_followers=False)


# -- the buttons --------------------------------------------------------------------------------

#: what each button does, through the outbox (so that it federates) or its database
_ACTIONS: dict[str, Callable[[Outbox, Actor, Actor], Awaitable[object]]] = {
    "follow": relations.follow,
    "unfollow": relations.unfollow,
    "block": relations.block,
    "unblock": relations.unblock,
    "mute": lambda outbox, me, other: mutes.mute(outbox.db, me, other),
    "unmute": lambda outbox, me, other: mutes.unmute(outbox.db, me, other),
}


async def act(request: Request) -> Response:
    """``POST /@acct/ACTION``: follow, unfollow, block, unblock, mute or unmute; back to the
    profile (or the relationship as JSON for the script)."""
    me = await signed_in(request)
    await read_form(request)
    action = _ACTIONS.get(request.path_params["action"])
    if action is None:
        raise NotFound("There is no such action")
    other = await account(request, request.path_params["acct"], fetch=False)
    if other.id == me.id:
        raise BadRequest("That is your own account")
    await action(get_context(request).outbox, me, other)
    (now,) = await relations.relationships(get_context(request).db, me, [other])
    body = {"following": now.following, "requested": now.requested, "followed_by": now.followed_by,
            "blocking": now.blocking, "muting": now.muting}  # fmt: skip
    return done(request, body, back=profile_path(acct_of(other)))


async def with_replies_page(request: Request) -> Response:
    return await profile_page(request, request.path_params["acct"], "with_replies")


async def media_page(request: Request) -> Response:
    return await profile_page(request, request.path_params["acct"], "media")


routes: list[BaseRoute] = [
    Route("/@{acct}/with_replies", with_replies_page, methods=["GET"]),
    Route("/@{acct}/media", media_page, methods=["GET"]),
    Route("/@{acct}/followers", followers_page, methods=["GET"]),
    Route("/@{acct}/following", following_page, methods=["GET"]),
    Route("/@{acct}/{action}", act, methods=["POST"]),
]
