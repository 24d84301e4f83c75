"""The cookie side of sign-in sessions, and CSRF checks for every form of our pages.

Cookies are ``HttpOnly`` and ``SameSite=Lax``; on an https instance they are also
``Secure`` and carry the ``__Host-`` prefix (no ``Domain``, path ``/``), so no other host
can set them for us. :func:`csrf_token` gives the value a form must carry: the session's
own secret when signed in, else a random value also set as a cookie (double submit, for the
sign-in form). :func:`check_csrf` refuses a POST without it with a 403 that says what to do.
The sessions themselves live in the database (:mod:`fedisocial.auth.sessions`), so every
web process (``serve --workers 2``) knows them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from fedisocial.auth.sessions import SessionStore, SignedIn, csrf_matches, new_csrf
from fedisocial.errors import Forbidden
from fedisocial.web.context import get_context

__all__ = [
    "CSRF_FIELD",
    "check_csrf",
    "clear_session",
    "csrf_token",
    "current_session",
    "finish",
    "local_path",
    "start_session",
]

#: the hidden field every form carries
CSRF_FIELD = "csrf_token"
_SESSION = "fedisocial_session"
_CSRF = "fedisocial_csrf"
_STATE = "fedisocial_session"
_NEW_CSRF = "fedisocial_new_csrf"
#: a session cookie lives as long as an idle session may (the database decides before that)
_MAX_AGE = 30 * 86400


def _secure(request: Request) -> bool:
    return urlsplit(get_context(request).urls.base_url).scheme == "https"


def _name(request: Request, base: str) -> str:
    return f"__Host-{base}" if _secure(request) else base


def _set(request: Request, response: Response, base: str, value: str, max_age: int) -> None:
    response.set_cookie(_name(request, base), value, max_age=max_age, path="/",
                        secure=_secure(request), httponly=True, samesite="lax")  # fmt: skip


def store(request: Request) -> SessionStore:
    return SessionStore(get_context(request).db)


async def current_session(request: Request) -> SignedIn | None:
    """The signed-in session of this browser, if any (looked up once per request)."""
    if not hasattr(request.state, _STATE):
        cookie = request.cookies.get(_name(request, _SESSION), "")
        setattr(request.state, _STATE, await store(request).find(cookie) if cookie else None)
    found: SignedIn | None = getattr(request.state, _STATE)
    return found


async def csrf_token(request: Request) -> str:
    """The CSRF value the forms of this page carry (call :func:`finish` on the response)."""
    session = await current_session(request)
    if session is not None:
        return session.csrf
    value = request.cookies.get(_name(request, _CSRF)) or getattr(request.state, _NEW_CSRF, "")
    if not value:
        value = new_csrf()
        setattr(request.state, _NEW_CSRF, value)
    return value


def finish(request: Request, response: Response) -> Response:
    """Set the sign-in form's CSRF cookie if this page minted one; pages are never cached."""
    minted = getattr(request.state, _NEW_CSRF, "")
    if minted:
        _set(request, response, _CSRF, minted, _MAX_AGE)
    response.headers["Cache-Control"] = "no-store"
    return response


async def check_csrf(request: Request, form: FormData) -> None:
    """Refuse (403) a form POST without this browser's CSRF value, or from another site."""
    context = get_context(request)
    origin = request.headers.get("origin")
    ours = urlsplit(context.urls.base_url)
    if origin and origin != f"{ours.scheme}://{ours.netloc}":
        raise Forbidden(f"This form was sent from {origin}, not from this site: go to "
                        f"{context.urls.base_url} and try again")  # fmt: skip
    session = await current_session(request)
    expected = session.csrf if session else request.cookies.get(_name(request, _CSRF))
    given = form.get(CSRF_FIELD)
    if not csrf_matches(expected, given if isinstance(given, str) else None):
        raise Forbidden("This form has expired or did not come from this site (its security "
                        "token is missing or wrong): reload the page and try again")  # fmt: skip


def start_session(request: Request, response: Response, signed_in: tuple[str, SignedIn]) -> None:
    """Put a new session's cookie on ``response`` (a fresh id: no session fixation)."""
    cookie, session = signed_in
    _set(request, response, _SESSION, cookie, _MAX_AGE)
    response.delete_cookie(_name(request, _CSRF), path="/", secure=_secure(request),
                           httponly=True, samesite="lax")  # fmt: skip
    setattr(request.state, _STATE, session)


async def clear_session(request: Request, response: Response) -> None:
    """Sign out: the session ends in the database and its cookie goes."""
    cookie = request.cookies.get(_name(request, _SESSION), "")
    if cookie:
        await store(request).end(cookie)
    response.delete_cookie(_name(request, _SESSION), path="/", secure=_secure(request),
                           httponly=True, samesite="lax")  # fmt: skip


def local_path(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site (``/…``, not ``//host``), else ``default``:
    where to go after signing in, without becoming an open redirect."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(ch in value for ch in "\r\n\t"):
        return default
    return value
