"""What an app asks first: the instance (v1 and v2), its peers, emojis, rules, preferences,
and ``/health``.

https://docs.joinmastodon.org/methods/instance/ — Mastodon 4.3's shapes (its
``REST::InstanceSerializer`` and ``REST::V1::InstanceSerializer``). Libraries pick their
features from ``version``, so it names the Mastodon API we follow, ``4.3.0 (compatible;
fedisocial X.Y.Z)``, and ``api_versions.mastodon`` is 2, as 4.3 sends. The limits are
ours, read from where they are enforced: the post length (``outbox.MAX_TEXT``), four
attachments, the accepted image types and the size, pixel and alt-text limits of the
settings. We take images only, so the video limits are 0; there are no polls (0 options).

``/api/v1/instance/activity`` (weekly counts) is not served. NodeInfo lives in
:mod:`fedisocial.web.wellknown`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fedisocial import __version__
from fedisocial.social.accounts import usage
from fedisocial.social.instance import contact, peer_count, peers
from fedisocial.social.outbox import MAX_TEXT
from fedisocial.studio.generation import MAX_ATTACHMENTS
from fedisocial.studio.media import ACCEPTED_TYPES
from fedisocial.web import auth
from fedisocial.web.context import get_context
from fedisocial.web.mastoapi.common import json_response
from fedisocial.web.mastoapi.entities import Entities

if TYPE_CHECKING:
    from fedisocial.app import Context

__all__ = ["VERSION", "routes"]

#: the Mastodon API we follow, as libraries read it
VERSION = f"4.3.0 (compatible; fedisocial {__version__})"
_SOURCE = "https://github.com/fedisocial/fedisocial"
#: Mastodon counts a link as this many characters, whatever its length
_URL_CHARACTERS = 23
#: instance answers are public and change slowly (Mastodon: 3 minutes)
_PUBLIC = {"Cache-Control": "public, max-age=180"}


def _streaming(context: Context) -> str:
    parts = urlsplit(context.urls.base_url)
    return f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"


def _thumbnail(context: Context) -> str:
    return f"{context.urls.base_url}/static/preview.png"


def _statuses() -> dict[str, int]:
    return {"max_characters": MAX_TEXT, "max_media_attachments": MAX_ATTACHMENTS,
            "characters_reserved_per_url": _URL_CHARACTERS}  # fmt: skip


def _media(context: Context) -> dict[str, Any]:
    settings = context.settings
    return {
        "supported_mime_types": list(ACCEPTED_TYPES),
        "description_limit": settings.media_max_description,
        "image_size_limit": settings.media_max_bytes,
        "image_matrix_limit": settings.media_max_pixels,
        "video_size_limit": 0,
        "video_frame_rate_limit": 0,
        "video_matrix_limit": 0,
    }


def _polls() -> dict[str, int]:
    return {"max_options": 0, "max_characters_per_option": 0, "min_expiration": 0,
            "max_expiration": 0}  # fmt: skip


async def _contact_account(context: Context) -> dict[str, Any] | None:
    actor = await contact(context.db)
    if actor is None:
        return None
    return await Entities(context.db, context.urls, None).account(actor)


async def instance_v1(request: Request) -> Response:
    context = get_context(request)
    settings, counts = context.settings, await usage(context.db)
    return json_response({
        "uri": context.urls.netloc,
        "title": settings.instance_name,
        "short_description": settings.instance_description,
        "description": settings.instance_description,
        "email": "",
        "version": VERSION,
        "urls": {"streaming_api": _streaming(context)},
        "stats": {"user_count": counts.users_total, "status_count": counts.local_posts,
                  "domain_count": await peer_count(context.db)},
        "thumbnail": _thumbnail(context),
        "languages": ["en"],
        "registrations": settings.registrations != "closed",
        "approval_required": settings.registrations == "approval",
        "invites_enabled": False,
        "configuration": {
            "accounts": {"max_featured_tags": 0},
            "statuses": _statuses(),
            "media_attachments": _media(context),
            "polls": _polls(),
        },
        "contact_account": await _contact_account(context),
        "rules": [],
    }, headers=_PUBLIC)  # fmt: skip


async def instance_v2(request: Request) -> Response:
    context = get_context(request)
    settings, counts, urls = context.settings, await usage(context.db), context.urls
    return json_response({
        "domain": urls.netloc,
        "title": settings.instance_name,
        "version": VERSION,
        "source_url": _SOURCE,
        "description": settings.instance_description,
        "usage": {"users": {"active_month": counts.active_month}},
        "thumbnail": {"url": _thumbnail(context)},
        "icon": [],
        "languages": ["en"],
        "configuration": {
            "urls": {"streaming": _streaming(context), "status": None, "about": urls.about,
                     "privacy_policy": None, "terms_of_service": None},
            "vapid": {"public_key": ""},
            "accounts": {"max_featured_tags": 0},
            "statuses": _statuses(),
            "media_attachments": _media(context),
            "polls": _polls(),
            "translation": {"enabled": False},
        },
        "registrations": {
            "enabled": settings.registrations != "closed",
            "approval_required": settings.registrations == "approval",
            "reason_required": False,
            "message": None,
            "min_age": None,
            "url": None,
        },
        "api_versions": {"mastodon": 2},
        "contact": {"email": "", "account": await _contact_account(context)},
        "rules": [],
    }, headers=_PUBLIC)  # fmt: skip


async def instance_peers(request: Request) -> Response:
    return json_response(await peers(get_context(request).db), headers=_PUBLIC)


async def empty_list(request: Request) -> Response:
    """Custom emojis and rules: this instance has none."""
    return json_response([], headers=_PUBLIC)


async def preferences(request: Request) -> Response:
    """Mastodon's preference keys; nothing here is configurable yet, so the defaults that
    posting and reading really have (public posts, media shown as marked)."""
    await auth.require_user(request, "read:accounts")
    return json_response({
        "posting:default:visibility": "public",
        "posting:default:sensitive": False,
        "posting:default:language": None,
        "reading:expand:media": "default",
        "reading:expand:spoilers": False,
    })  # fmt: skip


async def health(request: Request) -> Response:
    """Mastodon's ``/health`` (uptime checks, Mastodon.py's ``instance_health``)."""
    return PlainTextResponse("OK", headers={"Cache-Control": "no-store"})


routes = [
    Route("/health", health),
    Route("/api/v1/instance", instance_v1),
    Route("/api/v1/instance/", instance_v1),
    Route("/api/v2/instance", instance_v2),
    Route("/api/v2/instance/", instance_v2),
    Route("/api/v1/instance/peers", instance_peers),
    Route("/api/v1/instance/rules", empty_list),
    Route("/api/v1/custom_emojis", empty_list),
    Route("/api/v1/preferences", preferences),
]
