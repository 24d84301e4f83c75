"""HTML pages for people: the front page, profiles, posts and activities.

Handlers that negotiate (actors in web/federation.py, objects in
web/objects.py) call the ``*_page`` functions here for browsers. Post content
is sanitized again when shown (Mastodon's allow-list), whoever stored it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nh3
from starlette.requests import Request
from starlette.responses import Response

from fedisocial.ap.vocab import as_list, get_id, http_url
from fedisocial.errors import BadRequest
from fedisocial.social.accounts import find_local_actor, list_users, usage
from fedisocial.social.collections import Counts, Cursor, counts, featured, profile_posts, read_page
from fedisocial.social.content import sanitize
from fedisocial.store.models import Actor, Object
from fedisocial.web import auth
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import render_page

__all__ = [
    "AttachmentView",
    "PostView",
    "activity_page",
    "deleted_page",
    "home",
    "post_page",
    "post_view",
    "profile_page",
]

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


# -- view models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AttachmentView:
    url: str
    alt: str
    media_type: str
    is_image: bool
    width: int | None
    height: int | None


@dataclass(frozen=True)
class PostView:
    """What a post card shows."""

    uri: str
    author_name: str
    author_url: str
    author_icon: str | None
    handle: str
    content_html: str
    summary: str | None
    published: datetime
    edited: str | None
    attachments: list[AttachmentView]
    in_reply_to: str | None
    counts: Counts
    visibility: str
    pinned: bool


def _link(value: Any) -> str | None:
    """The URL of a ``url`` field: a string, a Link, or a list of either."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        return _link(value.get("href"))
    if isinstance(value, list):
        for item in value:
            found = _link(item)
            if found:
                return found
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _attachments(doc: dict[str, Any]) -> list[AttachmentView]:
    views = []
    for item in as_list(doc.get("attachment")):
        if not isinstance(item, dict):
            continue
        url = _link(item.get("url"))
        if url is None or not url.startswith(("https://", "http://")):
            continue
        media_type = str(item.get("mediaType") or "")
        alt = item.get("name") or item.get("summary") or ""
        views.append(AttachmentView(
            url, str(alt), media_type,
            item.get("type") == "Image" or media_type.startswith("image/"),
            _int(item.get("width")), _int(item.get("height")),
        ))  # fmt: skip
    return views


def _handle(author: Actor | None, fallback: str) -> str:
    return f"@{author.username}@{author.domain}" if author else fallback


def post_view(
    obj: Object, author: Actor | None, tally: Counts, *, pinned: bool = False
) -> PostView:
    """A stored post, ready for the templates; ``pinned`` shows it as pinned."""
    doc = obj.data
    summary = doc.get("summary")
    return PostView(
        uri=obj.uri,
        author_name=(author.name or author.username) if author else (obj.actor_uri or ""),
        author_url=(http_url(author.url) or author.uri) if author else (obj.actor_uri or ""),
        author_icon=http_url(author.icon_url) if author else None,
        handle=_handle(author, obj.actor_uri or ""),
        content_html=sanitize(str(doc.get("content") or "")),
        summary=summary if isinstance(summary, str) and summary else None,
        published=obj.published,
        edited=doc.get("updated") if isinstance(doc.get("updated"), str) else None,
        attachments=_attachments(doc),
        in_reply_to=get_id(doc.get("inReplyTo")),
        counts=tally,
        visibility=obj.visibility,
        pinned=pinned,
    )


# -- pages -------------------------------------------------------------------------------------


def _max_id(request: Request) -> int | None:
    value = request.query_params.get("max_id")
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"max_id must be a number, not {value!r}")
    return int(value)


async def profile_page(request: Request, username: str) -> Response:
    """A profile with the posts the viewer may read (anyone: public and unlisted ones)."""
    context, viewer = get_context(request), await auth.viewer_uri(request)
    actor = await find_local_actor(context.db, context.urls, username)
    max_id = _max_id(request)
    page = await read_page(context.db, profile_posts(actor.uri, viewer), Cursor(max_id=max_id))
    pinned = await featured(context.db, actor.uri, viewer) if max_id is None else []
    pinned_uris = {p.uri for p in pinned}
    shown = pinned + [p for p in page.items if p.uri not in pinned_uris]
    tally = await counts(context.db, (p.uri for p in shown), viewer)
    return render_page(
        request,
        "profile.html",
        actor=actor,
        handle=f"@{actor.username}@{context.urls.netloc}",
        summary_html=nh3.clean(actor.summary),
        posts=[post_view(p, actor, tally[p.uri], pinned=p.uri in pinned_uris) for p in shown],
        older=page.next_max_id,
        paged=max_id is not None,
    )


async def post_page(request: Request, obj: Object, author: Actor | None) -> Response:
    """A post the viewer may read (the caller checked), with the counts it may see."""
    tally = await counts(get_context(request).db, [obj.uri], await auth.viewer_uri(request))
    return render_page(request, "status.html", post=post_view(obj, author, tally[obj.uri]))


def deleted_page(request: Request, obj: Object) -> Response:
    return render_page(request, "deleted.html", 410, uri=obj.uri, deleted=obj.deleted_at)


def activity_page(request: Request, activity: Object, author: Actor | None) -> Response:
    obj = activity.data.get("object")
    return render_page(
        request,
        "activity.html",
        activity=activity,
        verb=_VERBS.get(activity.type, f"did a {activity.type} of"),
        object_uri=get_id(obj) or "",
        author_name=(author.name or author.username) if author else activity.actor_uri,
        author_url=(http_url(author.url) or author.uri) if author else activity.actor_uri,
        handle=_handle(author, activity.actor_uri or ""),
    )


async def home(request: Request) -> Response:
    context = get_context(request)
    people = [actor for _, actor in await list_users(context.db)]
    return render_page(request, "home.html", people=people, usage=await usage(context.db))
