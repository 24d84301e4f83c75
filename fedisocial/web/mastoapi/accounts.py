"""Accounts: one's own (``verify_credentials``, ``update_credentials``) and anyone's we know.

https://docs.joinmastodon.org/methods/accounts/ — Mastodon's ``Api::V1::AccountsController``
and ``Api::V1::Accounts::*Controller``. Reading an account, its posts and its
follows needs no token (``authorize_if_got_token!``): anonymous readers see what
anyone may read, a token must carry the read scope. Follows, blocks and mutes
are in :mod:`.relationships`.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.errors import BadRequest
from fedisocial.social import collections, relations
from fedisocial.social.collections import Cursor, Page
from fedisocial.social.profile import ProfileChange, change_profile
from fedisocial.store.models import Actor
from fedisocial.web.auth import require_user
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import (
    Params,
    json_response,
    page_response,
    paging,
    path_id,
    read_params,
)
from fedisocial.web.mastoapi.entities import Entities

__all__ = ["account_page", "entities", "reader", "routes", "target", "window"]

_PREFIX = "/api/v1/accounts"


# -- what the handlers of accounts share ---------------------------------------------------------


async def reader(request: Request, *scopes: str) -> Actor | None:
    """Who reads an account or its posts: anyone; a request with credentials must be a
    signed-in user whose token covers ``scopes`` (Mastodon's ``authorize_if_got_token!``)."""
    if request.headers.get("authorization"):
        return await require_user(request, *scopes)
    return None


def entities(request: Request, viewer: Actor | None) -> Entities:
    context = get_context(request)
    return Entities(context.db, context.urls, viewer)


async def target(request: Request) -> Actor:
    """The account of the path's ``:id`` (404 when we know none)."""
    return await relations.actor_by_id(get_context(request).db, path_id(request))


def window(params: Params) -> tuple[Cursor, int]:
    """A listing's cursor and limit (:func:`~.common.paging`)."""
    return paging(params)


async def account_page(
    request: Request, viewer: Actor | None, page: Page[str], extra: dict[str, Any] | None = None
) -> Response:
    """A page of actor ids as Account entities, with its ``Link`` header."""
    actors = await relations.actors_by_uri(get_context(request).db, page.items)
    rendered = await entities(request, viewer).accounts(actors)
    for actor, entity in zip(actors, rendered, strict=True):
        entity.update((extra or {}).get(actor.uri, {}))
    return page_response(request, page, rendered)


# -- one's own account -----------------------------------------------------------------------------


async def verify_credentials(request: Request) -> Response:
    actor = await require_user(request, "read:accounts")
    return await _credential_account(request, actor)


async def _credential_account(request: Request, actor: Actor) -> Response:
    db = get_context(request).db
    waiting = await collections.count(db, collections.pending_followers(actor.uri))
    entity = await entities(request, actor).credential_account(actor, follow_requests=waiting)
    return json_response(entity)


def _fields(params: Params) -> list[tuple[str, str]] | None:
    """``fields_attributes`` (form ``[0][name]``, a JSON list or hash), in index order."""
    if "fields_attributes" not in params and not any(
        key.startswith("fields_attributes[") for key in params.values
    ):
        return None
    given = params.nested("fields_attributes")
    pairs = []
    for key in sorted(given, key=lambda k: int(k) if str(k).isdigit() else 1 << 30):
        item = given[key]
        if not isinstance(item, dict):
            raise BadRequest("fields_attributes must be a list of {name, value}")
        name, value = item.get("name", ""), item.get("value", "")
        if not isinstance(name, str) or not isinstance(value, str):
            raise BadRequest("a field's name and value must be text")
        pairs.append((name, value))
    return pairs


async def _image(request: Request, file: UploadFile | None) -> str | None:
    """An uploaded avatar or header, checked and cleaned as all media are, and stored: its URL."""
    if file is None:
        return None
    return await get_context(request).studio.profile_image(
        await file.read(), filename=file.filename
    )


async def update_credentials(request: Request) -> Response:
    actor = await require_user(request, "write:accounts")
    try:
        change = await _profile_change(request, await read_params(request, files=2))
    finally:
        await request.close()  # the multipart form's spooled files (Starlette leaves them open)
    row, _update = await change_profile(get_context(request).outbox, actor, change)
    return await _credential_account(request, row)


async def _profile_change(request: Request, params: Params) -> ProfileChange:
    """What ``update_credentials`` asks to change; uploaded images are stored first."""

    def flag(name: str) -> bool | None:
        return params.flag(name) if name in params else None

    return ProfileChange(
        name=params.text("display_name"), note=params.text("note"), fields=_fields(params),
        locked=flag("locked"), bot=flag("bot"), discoverable=flag("discoverable"),
        indexable=flag("indexable"), icon_url=await _image(request, params.files.get("avatar")),
        image_url=await _image(request, params.files.get("header")),
    )  # fmt: skip


# -- anyone's account ------------------------------------------------------------------------


async def show(request: Request) -> Response:
    viewer = await reader(request, "read:accounts")
    return json_response(await entities(request, viewer).account(await target(request)))


async def lookup(request: Request) -> Response:
    viewer = await reader(request, "read:accounts")
    params = await read_params(request)
    context = get_context(request)
    actor = await relations.lookup(context.db, context.urls, params.text("acct") or "")
    return json_response(await entities(request, viewer).account(actor))


async def statuses(request: Request) -> Response:
    """The account's posts and boosts the reader may read (``AccountStatusesFilter``)."""
    viewer = await reader(request, "read:statuses")
    author = await target(request)
    params = await read_params(request)
    context = get_context(request)
    who = viewer.uri if viewer is not None else None
    cursor, limit = window(params)
    if params.flag("pinned"):
        pinned = await collections.featured(context.db, author.uri, who)
        rows = [row for row in pinned if cursor.max_id is None or row.id < cursor.max_id]
        if cursor.min_id is not None:
            rows = [row for row in rows if row.id > cursor.min_id]
        return json_response(await entities(request, viewer).statuses(rows[:limit]))
    listing = collections.profile_posts(
        author.uri, who, local=author.local, boosts=not params.flag("exclude_reblogs"),
        replies=not params.flag("exclude_replies"), media_only=params.flag("only_media"),
        tagged=params.text("tagged") or None,
    )  # fmt: skip
    page = await collections.read_page(context.db, listing, cursor, limit)
    return page_response(request, page, await entities(request, viewer).statuses(page.items))


async def _blocks_reader(request: Request, author: Actor, viewer: Actor | None) -> bool:
    """Whether ``author`` blocks the reader (Mastodon then hides its follows from them)."""
    if viewer is None:
        return False
    found = await relations.relationships(get_context(request).db, viewer, [author])
    return found[0].blocked_by if found else False


async def _follows(request: Request, followers: bool) -> Response:
    viewer = await reader(request, "read:accounts")
    author = await target(request)
    if await _blocks_reader(request, author, viewer):
        return json_response([])
    cursor, limit = window(await read_params(request))
    listing = collections.followers(author.uri) if followers else collections.following(author.uri)
    page = await collections.read_page(get_context(request).db, listing, cursor, limit)
    return await account_page(request, viewer, page)


async def followers(request: Request) -> Response:
    return await _follows(request, followers=True)


async def following(request: Request) -> Response:
    return await _follows(request, followers=False)


routes: list[BaseRoute] = [
    Route(f"{_PREFIX}/verify_credentials", verify_credentials, methods=["GET"]),
    Route(f"{_PREFIX}/update_credentials", update_credentials, methods=["PATCH"]),
    Route(f"{_PREFIX}/lookup", lookup, methods=["GET"]),
    Route(f"{_PREFIX}/{{id:int}}", show, methods=["GET"]),
    Route(f"{_PREFIX}/{{id:int}}/statuses", statuses, methods=["GET"]),
    Route(f"{_PREFIX}/{{id:int}}/followers", followers, methods=["GET"]),
    Route(f"{_PREFIX}/{{id:int}}/following", following, methods=["GET"]),
]
