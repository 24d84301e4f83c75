"""The settings of one's account, behind a small menu: profile, password, sessions, apps, export.

- ``/settings`` (and ``/settings/profile``): display name, bio, up to four profile fields,
  avatar and header, locked, discoverable, indexable and the AI opt-out (FEP-5e53
  ``noai``). It goes through :func:`fedisocial.social.profile.change_profile`, as Mastodon
  apps' ``update_credentials`` does, so the followers get an ``Update``; images go through
  the same checks (:meth:`Studio.profile_image`), and a bad one changes nothing.
- ``/settings/password``: the current password (checked and throttled as sign-in is), the
  new one twice; the account's other sessions end, this one stays.
- ``/settings/sessions``: where the account is signed in; end one, or all but this one.
- ``/settings/apps``: the apps holding tokens (as ``/oauth/authorized_applications``).
- ``/settings/export``: Mastodon's CSV files of follows, blocks and mutes, and the posts
  as ``outbox.json``, streamed as they are read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from fedisocial.auth.sessions import SignedIn
from fedisocial.auth.tokens import authorized_apps
from fedisocial.errors import BadRequest, NotFound, RateLimited, Unauthorized
from fedisocial.social import accounts, export
from fedisocial.social.content import plain_text
from fedisocial.social.profile import (
    MAX_BIO,
    MAX_DISPLAY_NAME,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    ProfileChange,
    change_profile,
)
from fedisocial.store.db import Database
from fedisocial.store.models import Actor
from fedisocial.web import auth
from fedisocial.web import session as web_session
from fedisocial.web.context import get_context
from fedisocial.web.pages.base import done, page, read_form, signed_in
from fedisocial.web.robots import forget_opt_outs

__all__ = ["SECTIONS", "routes"]

#: the settings menu: (path, label)
SECTIONS = [
    ("/settings/profile", "Profile"),
    ("/settings/password", "Password"),
    ("/settings/sessions", "Sessions"),
    ("/settings/apps", "Apps"),
    ("/settings/export", "Export"),
]
#: the switches of the profile page: (form field, label, hint)
SWITCHES = [
    ("locked", "Approve followers by hand",
     "People ask to follow you; you accept or refuse each request."),
    ("discoverable", "Suggest my account to others",
     "Your profile may be listed in directories and suggestions."),
    ("indexable", "Let my public posts be found by search",
     "Full-text search here and on other servers may include your public posts."),
    ("bot", "This is an automated account",
     "Your profile says that it posts by itself and may not read replies."),
    ("noai", "Ask that my posts and images not be used for AI",
     "Your profile tells other servers “noai” (FEP-5e53), and your pages and media here tell "
     "crawlers (X-Robots-Tag). Honest crawlers and servers respect it; it cannot force them."),
]  # fmt: skip
_CSV = "text/csv; charset=utf-8"


async def _session(request: Request) -> tuple[Actor, SignedIn]:
    actor = await signed_in(request)
    session = await web_session.current_session(request)
    assert session is not None  # signed_in found it
    return actor, session


async def _settings_page(request: Request, template: str, status: int = 200,
                         **values: object) -> Response:  # fmt: skip
    here = request.url.path
    values.setdefault("section", "/settings/profile" if here == "/settings" else here)
    return await page(request, template, status, sections=SECTIONS, **values)


def _field(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value[:limit].replace("\r\n", "\n") if isinstance(value, str) else ""


# -- profile -----------------------------------------------------------------------------------


def _current(actor: Actor) -> dict[str, Any]:
    """The profile form's values as stored now (plain text, as the form edits it)."""
    fields = [(f.get("name", ""), plain_text(f.get("value", ""))) for f in actor.fields]
    return {
        "display_name": actor.name, "note": plain_text(actor.summary or ""),
        "fields": (fields + [("", "")] * MAX_FIELDS)[:MAX_FIELDS],
        "locked": actor.manually_approves_followers, "discoverable": actor.discoverable,
        "indexable": actor.indexable, "noai": actor.noai, "bot": actor.type == "Service",
    }  # fmt: skip


def _posted(form: FormData) -> dict[str, Any]:
    """The profile form's values as sent (a checkbox sent is on, one left out is off)."""
    limit = MAX_FIELD_TEXT + 1
    fields = [(_field(form, f"field_name_{i}", limit), _field(form, f"field_value_{i}", limit))
              for i in range(MAX_FIELDS)]  # fmt: skip
    values: dict[str, Any] = {
        "display_name": _field(form, "display_name", MAX_DISPLAY_NAME + 1),
        "note": _field(form, "note", MAX_BIO + 1),
        "fields": fields,
    }
    for name, *_ in SWITCHES:
        values[name] = form.get(name) == "on"
    return values


async def _profile_page(request: Request, actor: Actor, status: int = 200,
                        **values: Any) -> Response:  # fmt: skip
    values.setdefault("profile", _current(actor))
    return await _settings_page(
        request, "settings_profile.html", status, actor=actor, switches=SWITCHES,
        max_name=MAX_DISPLAY_NAME, max_bio=MAX_BIO, max_field=MAX_FIELD_TEXT,
        max_bytes=get_context(request).settings.media_max_bytes,
        saved=request.query_params.get("saved") == "1", **values,
    )  # fmt: skip


async def profile(request: Request) -> Response:
    actor, _ = await _session(request)
    return await _profile_page(request, actor)


async def _image(request: Request, form: FormData, name: str) -> str | None:
    """A chosen avatar or header, checked and stored: its URL (None: none chosen)."""
    file = form.get(name)
    if not isinstance(file, UploadFile) or not file.filename:
        return None
    limit = get_context(request).settings.media_max_bytes
    data = await file.read(limit + 1)
    if not data:
        return None
    if len(data) > limit:
        raise BadRequest(f"the {name} image is larger than {limit // 1_048_576} MB")
    return await get_context(request).studio.profile_image(data, filename=file.filename)


async def save_profile(request: Request) -> Response:
    """The profile form: every field is sent, so each one is set (and federated at once)."""
    actor, _ = await _session(request)
    form = await read_form(request, max_fields=32, max_files=2)
    values = _posted(form)
    try:
        change = ProfileChange(
            name=values["display_name"], note=values["note"], fields=values["fields"],
            locked=values["locked"], discoverable=values["discoverable"],
            indexable=values["indexable"], noai=values["noai"], bot=values["bot"],
            icon_url=await _image(request, form, "avatar"),
            image_url=await _image(request, form, "header"),
        )  # fmt: skip
        await change_profile(get_context(request).outbox, actor, change)
        if values["noai"] != actor.noai:
            forget_opt_outs(request.app)  # this process's pages and files say so at once
    except BadRequest as exc:
        message = exc.message[:1].upper() + exc.message[1:]
        return await _profile_page(request, actor, 422, profile=values, message=message)
    finally:
        await form.close()  # the spooled files of the multipart form
    return done(request, {"saved": True}, back="/settings/profile?saved=1")


# -- password ----------------------------------------------------------------------------------


async def password_page(request: Request) -> Response:
    await _session(request)
    return await _settings_page(request, "settings_password.html", mistakes={},
                                changed=request.query_params.get("changed", ""),
                                min_password=accounts.MIN_PASSWORD)  # fmt: skip


async def change_password(request: Request) -> Response:
    """Check the current password (throttled), set the new one, end the other sessions."""
    actor, session = await _session(request)
    form = await read_form(request, max_fields=8)
    current, new = _field(form, "current", 512), _field(form, "new", 512)
    mistakes: dict[str, str] = {}
    try:
        accounts.check_password_rules(new)
    except BadRequest as exc:
        mistakes["new"] = exc.message[:1].upper() + exc.message[1:]
    if "new" not in mistakes and _field(form, "confirmation", 512) != new:
        mistakes["confirmation"] = "The two new passwords differ: type the same one twice"
    status, headers = 422, {}
    if not mistakes:
        try:
            await auth.check_password(request, actor.username, current)
        except Unauthorized:
            mistakes["current"] = "This is not your current password"
        except RateLimited as exc:
            mistakes["current"] = exc.message[:1].upper() + exc.message[1:]
            status, headers = 429, exc.headers
    if mistakes:
        response = await _settings_page(request, "settings_password.html", status,
                                        mistakes=mistakes, changed="",
                                        min_password=accounts.MIN_PASSWORD)  # fmt: skip
        response.headers.update(headers)
        return response
    await accounts.set_password(get_context(request).db, session.user_id, new)
    ended = await web_session.store(request).end_others(session.user_id, session.id)
    return done(request, {"ended": ended}, back=f"/settings/password?changed={ended}")


# -- sessions ----------------------------------------------------------------------------------


async def sessions_page(request: Request) -> Response:
    _, session = await _session(request)
    found = await web_session.store(request).list_for(session.user_id)
    return await _settings_page(request, "settings_sessions.html", sessions=found,
                                this_session=session.id,
                                ended=request.query_params.get("ended", ""))  # fmt: skip


async def end_session(request: Request) -> Response:
    _, session = await _session(request)
    await read_form(request, max_fields=4)
    target = int(request.path_params["id"])
    if target == session.id:
        raise BadRequest("This is the session you use now: sign out instead")
    await web_session.store(request).end_by_id(session.user_id, target)
    return done(request, {"ended": 1}, back="/settings/sessions?ended=1")


async def end_other_sessions(request: Request) -> Response:
    _, session = await _session(request)
    await read_form(request, max_fields=4)
    ended = await web_session.store(request).end_others(session.user_id, session.id)
    return done(request, {"ended": ended}, back=f"/settings/sessions?ended={ended}")


# -- apps and export ---------------------------------------------------------------------------


async def apps_page(request: Request) -> Response:
    _, session = await _session(request)
    apps = await authorized_apps(get_context(request).db, session.user_id)
    from fedisocial.web.oauth import SCOPE_TEXT  # the consent page's words (web → web)

    return await _settings_page(request, "settings_apps.html", apps=apps, scope_text=SCOPE_TEXT,
                                revoked=request.query_params.get("revoked", "")[:200])  # fmt: skip


async def export_page(request: Request) -> Response:
    await _session(request)
    return await _settings_page(request, "settings_export.html", files=list(_EXPORTS))


async def _encoded(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield line.encode()


_EXPORTS: dict[str, tuple[str, Callable[[Database, Actor], AsyncIterator[Any]]]] = {
    "following_accounts.csv": (_CSV, export.follows_csv),
    "blocked_accounts.csv": (_CSV, export.blocks_csv),
    "muted_accounts.csv": (_CSV, export.mutes_csv),
    "outbox.json": ("application/activity+json", export.outbox_json),
}


async def download(request: Request) -> Response:
    """One export file, streamed as it is read, saved under its Mastodon name."""
    actor, _ = await _session(request)
    name = request.path_params["name"]
    if name not in _EXPORTS:
        raise NotFound(f"there is no export called {name!r}")
    media_type, make = _EXPORTS[name]
    body = make(get_context(request).db, actor)
    chunks = _encoded(body) if media_type == _CSV else body
    return StreamingResponse(chunks, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store"})  # fmt: skip


async def settings_home(request: Request) -> Response:
    return await profile(request)


routes: list[BaseRoute] = [
    Route("/settings", settings_home, methods=["GET"]),
    Route("/settings/profile", profile, methods=["GET"]),
    Route("/settings/profile", save_profile, methods=["POST"]),
    Route("/settings/password", password_page, methods=["GET"]),
    Route("/settings/password", change_password, methods=["POST"]),
    Route("/settings/sessions", sessions_page, methods=["GET"]),
    Route("/settings/sessions/{id:int}/end", end_session, methods=["POST"]),
    Route("/settings/sessions/end_others", end_other_sessions, methods=["POST"]),
    Route("/settings/apps", apps_page, methods=["GET"]),
    Route("/settings/export", export_page, methods=["GET"]),
    Route("/settings/export/{name}", download, methods=["GET"]),
]
