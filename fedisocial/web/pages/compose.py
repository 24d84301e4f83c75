"""The one composer: on the home page and at ``/compose`` (with a reply's context).

A plain form that posts without JavaScript: text, content warning, visibility,
language, the post replied to, and the images chosen (``media_ids``: the
author's uploads and generated images not yet posted, as the studio keeps them).
It posts through :func:`fedisocial.social.statuses.create`, so a post from here
is the same as one from a Mastodon app: it federates, its images carry their
labels, and the form's ``idempotency_key`` makes a double submit post once.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.ap.addressing import VISIBILITIES, Visibility
from fedisocial.errors import NotFound, Unprocessable
from fedisocial.social import statuses
from fedisocial.social.outbox import MAX_TEXT
from fedisocial.social.statuses import Composed, readable_status
from fedisocial.store.models import Actor, Object
from fedisocial.studio.attachments import attach_uploads
from fedisocial.studio.generation import MAX_ATTACHMENTS, MAX_PROMPT
from fedisocial.urls import new_id
from fedisocial.web import session as web_session
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import (
    done,
    fragment,
    page,
    read_form,
    signed_in,
    thread_path,
    wants_json,
)
from fedisocial.web.pages.cards import cards

__all__ = ["composer_values", "routes"]

#: what each visibility means, in the composer's words
AUDIENCES = {
    "public": "Public: anyone, in public feeds",
    "unlisted": "Unlisted: anyone, but not in public feeds",
    "followers": "Followers only",
    "direct": "Only the people mentioned",
}
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


async def composer_values(request: Request, me: Actor, parent: Object | None = None,
                          **values: Any) -> dict[str, Any]:  # fmt: skip
    """What the composer's template needs (limits, the image model, the reply's context)."""
    context = get_context(request)
    provider = context.studio.provider
    reply = None
    if parent is not None:
        found = await cards(context.db, context.urls, me, [parent])
        reply = found[0] if found else None
    mentions = ""
    if reply is not None:
        names = [reply.status["account"]["acct"]]
        names += [m["acct"] for m in reply.status.get("mentions", [])]
        mentions = " ".join(f"@{name}" for name in dict.fromkeys(names) if name != me.username)
    default = "public" if parent is None else _reply_visibility(parent.visibility)
    return {
        "max_chars": MAX_TEXT,
        "max_images": MAX_ATTACHMENTS,
        "max_prompt": MAX_PROMPT,
        "max_bytes": context.settings.media_max_bytes,
        "audiences": [(v, AUDIENCES.get(v, v)) for v in VISIBILITIES],
        "visibility": default,
        "provider_name": provider.name,
        "provider_model": provider.model,
        "ai_hashtag": context.settings.ai_hashtag,
        "reply": reply,
        "text": f"{mentions} " if mentions else "",
        "idempotency_key": new_id(),
        **values,
    }


def _reply_visibility(parent: str) -> str:
    """A reply is never more public than its post (as Mastodon's composer starts it)."""
    order = list(VISIBILITIES)
    return parent if parent in order and order.index(parent) > 0 else "public"


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _visibility(form: FormData) -> Visibility:
    name = _field(form, "visibility") or "public"
    if name not in VISIBILITIES:
        raise Unprocessable(f"Choose who can see the post: {', '.join(VISIBILITIES)}")
    visibility: Visibility = name
    return visibility


def _media_ids(form: FormData) -> list[int]:
    ids = [v for v in form.getlist("media_ids") if isinstance(v, str) and v]
    if len(ids) > MAX_ATTACHMENTS:
        raise Unprocessable(f"A post can carry at most {MAX_ATTACHMENTS} images")
    if not all(v.isdigit() and len(v) < 19 for v in ids):
        raise Unprocessable("The images chosen are not uploads of yours")
    return list(dict.fromkeys(int(v) for v in ids))


async def _parent(request: Request, me: Actor, raw: str) -> Object | None:
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("The post you are replying to does not exist (any more)")
    db = get_context(request).db
    try:
        return await statuses.target_of(db, await readable_status(db, int(raw), me.uri))
    except NotFound as exc:
        raise NotFound("The post you are replying to does not exist (any more)") from exc


async def compose_page(request: Request) -> Response:
    """``/compose`` (``?in_reply_to=ID``): the composer on its own page."""
    me = await signed_in(request)
    parent = await _parent(request, me, request.query_params.get("in_reply_to", ""))
    return await page(request, "compose.html", composer=await composer_values(request, me, parent))


async def post(request: Request) -> Response:
    """The composer's form: post, then go to the new post (or answer it as JSON)."""
    me = await signed_in(request)
    form = await read_form(request)
    context = get_context(request)
    language = _field(form, "language").strip()
    composed = Composed(
        text=_field(form, "text").replace("\r\n", "\n"),
        visibility=_visibility(form),
        parent=await _parent(request, me, _field(form, "in_reply_to")),
        summary=_field(form, "cw").strip() or None,
        language=language if _LANGUAGE.match(language) else None,
    )
    attached = await attach_uploads(context.studio, me, _media_ids(form), None)
    key = _field(form, "idempotency_key")[:64] or None
    row = await statuses.create(context.outbox, me, composed, attached, key)
    path = thread_path(row.id)
    body: dict[str, Any] = {"id": str(row.id), "path": path}
    if wants_json(request):
        shown = await cards(context.db, context.urls, me, [row])
        body["html"] = await fragment(request, "_cards.html", cards=shown) if shown else ""
    from_page = _field(form, "from")
    back = web_session.local_path(from_page, path) if from_page else path
    return done(request, body, back=back, anchor=f"post-{row.id}")


routes: list[BaseRoute] = [
    Route("/compose", compose_page, methods=["GET"]),
    Route("/compose", post, methods=["POST"]),
]
