"""What every page of the web app shares: rendering, who is signed in, forms and answers.

- :func:`render_page` renders a template with the instance's settings and URLs.
- :func:`page` is the same for the pages of the app: it adds the signed-in person
  (``me``), the CSRF value the page's forms carry, the unread notification count of
  the navigation, and marks the answer ``no-store``.
- :func:`signed_in` is the session's account, or a redirect to the sign-in page that
  comes back here (:class:`SignInRequired`, answered by :func:`sign_in_redirect`).
- :func:`read_form` reads a posted form and checks its CSRF value (403 otherwise).
- :func:`done` answers an action: JSON for the app's own script (``Accept:
  application/json``), else a 303 back to where the form was (forms work without
  JavaScript).

Paths of the app's pages are made here too (:func:`thread_path`, :func:`profile_path`,
:func:`tag_path`), so templates and handlers agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from fedisocial import __version__
from fedisocial.errors import BadRequest, FedisocialError
from fedisocial.social import notifications
from fedisocial.store.models import Actor, User
from fedisocial.web import auth
from fedisocial.web import session as web_session
from fedisocial.web.context import get_context, get_templates

__all__ = [
    "Me",
    "SignInRequired",
    "done",
    "fragment",
    "here",
    "max_id",
    "page",
    "profile_path",
    "read_form",
    "render_page",
    "sign_in_redirect",
    "signed_in",
    "tag_path",
    "thread_path",
    "viewer",
    "wants_json",
]

#: the unread count the navigation shows, at most (then "40+")
UNREAD_LIMIT = 40


def render_page(
    request: Request, template: str, status_code: int = 200, **values: object
) -> Response:
    context = get_context(request)
    values.setdefault("me", None)
    found = get_templates(request).get_template(template)
    page_html = found.render(settings=context.settings, urls=context.urls, version=__version__,
                             path=request.url.path, **values)  # fmt: skip
    return HTMLResponse(page_html, status_code=status_code)


# -- who is reading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Me:
    """The signed-in person as the navigation and the forms need them."""

    actor: Actor
    user_id: int
    csrf: str
    unread: int
    is_admin: bool

    @property
    def handle(self) -> str:
        return f"@{self.actor.username}"


class SignInRequired(FedisocialError):
    """A page for signed-in people only, asked for without a session."""

    status = 401

    def __init__(self, next_path: str) -> None:
        super().__init__("Sign in to see this page")
        self.next_path = next_path


def here(request: Request) -> str:
    """This request's path and query, to come back to."""
    query = request.url.query
    return f"{request.url.path}{'?' + query if query else ''}"


async def viewer(request: Request) -> Actor | None:
    """Who reads: the signed-in browser's account, else a token's or a signer's, else None."""
    session = await web_session.current_session(request)
    if session is not None:
        return session.actor
    return await auth.viewer(request)


async def signed_in(request: Request) -> Actor:
    """The session's account; :class:`SignInRequired` (a redirect to sign in) without one."""
    session = await web_session.current_session(request)
    if session is None:
        raise SignInRequired(here(request) if request.method == "GET" else _referer(request))
    return session.actor


def sign_in_redirect(request: Request, exc: SignInRequired) -> Response:
    if wants_json(request):
        return _json({"error": exc.message}, 401)
    target = f"{get_context(request).urls.sign_in}?{urlencode({'next': exc.next_path})}"
    return RedirectResponse(target, 303, headers={"Cache-Control": "no-store"})


async def _me(request: Request) -> Me | None:
    session = await web_session.current_session(request)
    if session is None:
        return None
    context = get_context(request)
    unread = await notifications.unread_count(context.db, session.actor, limit=UNREAD_LIMIT)
    async with context.db.session() as db_session:
        user = await db_session.get(User, session.user_id)
    return Me(session.actor, session.user_id, session.csrf, unread,
              bool(user and user.is_admin))  # fmt: skip


async def fragment(request: Request, template: str, **values: object) -> str:
    """A piece of a page (cards for "load more", a new post), rendered as :func:`page` would."""
    values.setdefault("me", await _me(request))
    values.setdefault("csrf", await web_session.csrf_token(request))
    context = get_context(request)
    return (
        get_templates(request)
        .get_template(template)
        .render(settings=context.settings, urls=context.urls, path=request.url.path, **values)
    )


async def page(request: Request, template: str, status_code: int = 200,
               **values: object) -> Response:  # fmt: skip
    """A page of the app: ``me``, ``csrf`` and the unread count are given to the template."""
    values.setdefault("me", await _me(request))
    values.setdefault("csrf", await web_session.csrf_token(request))
    return web_session.finish(request, render_page(request, template, status_code, **values))


# -- forms and answers -------------------------------------------------------------------------


async def read_form(request: Request, *, max_fields: int = 64, max_files: int = 0) -> FormData:
    """The posted form, its CSRF value checked (403 that says to reload otherwise)."""
    form = await request.form(max_files=max_files, max_fields=max_fields)
    await web_session.check_csrf(request, form)
    return form


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})  # fmt: skip


def _referer(request: Request) -> str:
    """Where the form was, when it was one of our pages; else the home page."""
    referer = request.headers.get("referer", "")
    base = get_context(request).urls.base_url
    if referer.startswith(base + "/"):
        return web_session.local_path(referer[len(base) :])
    return "/"


def done(request: Request, body: dict[str, Any] | None = None, *, back: str | None = None,
         anchor: str = "") -> Response:  # fmt: skip
    """The answer to an action: ``body`` as JSON for our script, else a 303 to ``back``
    (default: the page the form was on, at ``anchor``)."""
    if wants_json(request):
        return _json(body or {})
    target = back or _referer(request)
    return RedirectResponse(target + (f"#{anchor}" if anchor else ""), 303,
                            headers={"Cache-Control": "no-store"})  # fmt: skip


def max_id(request: Request) -> int | None:
    """The ``?max_id=`` of a "Load more" link: the id of the last card shown (400 if not one)."""
    value = request.query_params.get("max_id")
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise BadRequest(f"max_id must be the number of a post, not {value!r}")
    return int(value)


# -- paths of the app's pages ------------------------------------------------------------------


def thread_path(status_id: str | int) -> str:
    """A post's page in the app (any post we have, local or remote), with its thread."""
    return f"/statuses/{status_id}"


def profile_path(acct: str) -> str:
    """An account's page in the app: ``/@alice`` here, ``/@bob@example.org`` elsewhere."""
    return f"/@{quote(acct, safe='@.')}"


def tag_path(name: str) -> str:
    return f"/tags/{quote(name.lower(), safe='')}"
