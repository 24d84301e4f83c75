"""The one composer: on the home page and at ``/compose`` (with a reply's context).

A plain form that posts without JavaScript: text, content warning, visibility,
language, the post replied to, and up to four images: the author's drafts chosen
(``media_ids``: uploads and generated images not yet posted, each with its alt
text in ``alt_ID``, saved with the post) and one new image in the same form
(``file`` with its alt text ``file_alt``). ``static/composer.js`` adds the
studio's work: upload at once, generate (prompt, progress, preview, alt text,
keep or discard) through the studio API (:mod:`fedisocial.web.studio`), with
the browser's session. It posts through :func:`fedisocial.social.statuses.create`,
so a post from here is the same as one from a Mastodon app: it federates, its
images carry their labels, and the form's ``idempotency_key`` makes a double
submit post once. ``/studio`` leads here.
"""

from __future__ import annotations

import re
from contextlib import suppress
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fedisocial.ap.addressing import VISIBILITIES, Visibility
from fedisocial.errors import BadRequest, NotFound, PayloadTooLarge, Unprocessable
from fedisocial.social import statuses
from fedisocial.social.outbox import MAX_TEXT
from fedisocial.social.statuses import Composed, readable_status
from fedisocial.store.models import Actor, Media, Object
from fedisocial.studio.attachments import attach_uploads
from fedisocial.studio.generation import MAX_ATTACHMENTS, MAX_PROMPT
from fedisocial.studio.media import ACCEPTED_TYPES, check_alt_text
from fedisocial.studio.uploads import discard, drafts
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
#: room for the form's other parts beside the image
_FORM_SLACK = 262_144
#: the form's fields at most: a few, plus the alt text of each draft listed
_MAX_FIELDS = 96


async def composer_values(request: Request, me: Actor, parent: Object | None = None,
                          **values: Any) -> dict[str, Any]:  # fmt: skip
    """What the composer's template needs (limits, the image model, whether a vision model
    suggests alt text, the reply's context, the author's drafts and the images still being
    made for them)."""
    context = get_context(request)
    studio = context.studio
    provider = studio.provider
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
        "max_alt": context.settings.media_max_description,
        "accepted": ",".join(ACCEPTED_TYPES),
        "per_hour": context.settings.ai_images_per_hour,
        "concurrent": context.settings.ai_images_concurrent,
        "drafts": [studio.describe(m) for m in await drafts(context.db, me)],
        "pending": [{"id": g.id, "prompt": g.prompt} for g in await studio.pending(me)],
        "audiences": [(v, AUDIENCES.get(v, v)) for v in VISIBILITIES],
        "visibility": default,
        "provider_name": provider.name,
        "provider_model": provider.model,
        "ai_hashtag": context.settings.ai_hashtag,
        "vision": context.text is not None and context.text.vision,
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


def _media_ids(form: FormData, new_file: bool) -> list[int]:
    ids = list(dict.fromkeys(v for v in form.getlist("media_ids") if isinstance(v, str) and v))
    over = len(ids) + new_file - MAX_ATTACHMENTS
    if over > 0:
        raise Unprocessable(f"A post can carry at most {MAX_ATTACHMENTS} images: remove {over}")
    if not all(v.isdigit() and len(v) < 19 for v in ids):
        raise Unprocessable("The images chosen are not uploads of yours")
    return [int(v) for v in ids]


def _descriptions(form: FormData, ids: list[int]) -> dict[int, str]:
    """The alt text given for each chosen draft (``alt_ID``), to be saved with the post."""
    found = {i: form.get(f"alt_{i}") for i in ids}
    return {i: value for i, value in found.items() if isinstance(value, str)}


def _new_file(form: FormData) -> UploadFile | None:
    """The image chosen in the form itself (a browser sends an empty part when none is)."""
    file = form.get("file")
    return file if isinstance(file, UploadFile) and (file.filename or file.size) else None


async def _upload(request: Request, me: Actor, form: FormData, file: UploadFile) -> Media:
    """The form's own image, checked and kept as a draft (422 for a missing alt text or an
    image we refuse, 413 over the size cap; then nothing is stored)."""
    context = get_context(request)
    try:
        alt = check_alt_text(_field(form, "file_alt"), context.settings.media_max_description)
    except BadRequest as exc:
        raise Unprocessable(exc.message) from exc
    cap = context.settings.media_max_bytes
    data = await file.read(cap + 1)
    if len(data) > cap:
        raise PayloadTooLarge(f"Images can have at most {cap // 1_048_576} MB ({cap} bytes)")
    try:
        return await context.studio.upload(me, data, filename=file.filename, description=alt)
    except BadRequest as exc:
        raise Unprocessable(exc.message) from exc


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
    context = get_context(request)
    declared = request.headers.get("content-length", "")
    cap = context.settings.media_max_bytes
    if declared.isdigit() and int(declared) > cap + _FORM_SLACK:
        raise PayloadTooLarge(f"Images can have at most {cap // 1_048_576} MB ({cap} bytes)")
    try:
        form = await read_form(request, max_fields=_MAX_FIELDS, max_files=1)
        return await _post(request, me, form)
    finally:
        await request.close()  # the form's spooled file


async def _post(request: Request, me: Actor, form: FormData) -> Response:
    context = get_context(request)
    file = _new_file(form)
    ids = _media_ids(form, file is not None)
    language = _field(form, "language").strip()
    composed = Composed(
        text=_field(form, "text").replace("\r\n", "\n"),
        visibility=_visibility(form),
        parent=await _parent(request, me, _field(form, "in_reply_to")),
        summary=_field(form, "cw").strip() or None,
        language=language if _LANGUAGE.match(language) else None,
    )
    key = _field(form, "idempotency_key")[:64] or None
    new = await _upload(request, me, form, file) if file is not None else None
    try:
        chosen = [*ids, new.id] if new is not None else ids
        attached = await attach_uploads(context.studio, me, chosen, None,
                                        _descriptions(form, ids))  # fmt: skip
        row = await statuses.create(context.outbox, me, composed, attached, key)
    finally:
        if new is not None:  # not posted (refused, or a repeated submit): not kept either
            with suppress(NotFound):
                await discard(context.db, context.media, me, new.id)
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
