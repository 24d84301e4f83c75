"""Who is asking: servers by HTTP signature, people by their credentials.

- :func:`signed_actor` verifies a request's HTTP signature (draft-cavage or
  RFC 9421, Mastodon's query-string quirk included) and returns the actor
  whose key made it, fetching an unknown key and refetching a cached one once
  when it no longer verifies (keys rotate; at most once a minute per key).
- :func:`basic_user` checks HTTP Basic credentials of a local account,
  throttled per account and per client address (:mod:`fedisocial.auth.throttle`):
  429 with ``Retry-After`` after repeated failures.
- :func:`token_grant` checks an OAuth access token (RFC 6750 ``Authorization:
  Bearer``): 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` when it is
  unknown, expired or revoked; :func:`bearer_grant` is the same for a user's token
  only (an app's own client_credentials token stands for nobody). :func:`signed_in_user`
  takes a user's token or the password; a handler that needs a scope calls
  :func:`require_scope` (403 ``insufficient_scope`` for a token whose grant does not
  cover it; a password is not limited by scopes). :func:`require_user` answers an app's
  own token with 422, as Mastodon does, and :func:`require_token` takes any valid token.
- :func:`viewer` is who reads: the signed-in user, else the signer, else None.
- :func:`app_or_session_user` is who uses our own JSON APIs (the studio's, drafting
  help): an app's Bearer token, or the browser's sign-in session, whose state-changing
  requests carry the page's CSRF value in ``X-CSRF-Token`` and must come from our own
  pages (``Origin`` / ``Sec-Fetch-Site`` checked). HTTP Basic is not taken there:
  browsers resend it on their own.

Results are kept on ``request.state``, so a handler may ask twice at no cost.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request

from fedisocial.ap import httpsig
from fedisocial.auth.throttle import account_key, address_key, sign_in_throttle
from fedisocial.auth.tokens import (
    ClientGrant,
    Grant,
    InvalidToken,
    UserRequired,
    authenticate_bearer,
    bearer_challenge,
    require_scopes,
)
from fedisocial.errors import Forbidden, SignatureError, Unauthorized
from fedisocial.social.accounts import authenticate
from fedisocial.store.models import Actor
from fedisocial.web import session as web_session
from fedisocial.web.context import get_context

__all__ = [
    "BASIC_CHALLENGE",
    "CSRF_HEADER",
    "app_or_session_user",
    "basic_user",
    "bearer_grant",
    "check_password",
    "client_address",
    "public_url",
    "require_owner",
    "require_scope",
    "require_signature",
    "require_token",
    "require_user",
    "signed_actor",
    "signed_in_user",
    "token_grant",
    "viewer",
    "viewer_uri",
]

#: the header our pages' scripts send their page's CSRF value in
CSRF_HEADER = "x-csrf-token"
#: the ``WWW-Authenticate`` value of a 401 asking for a password
BASIC_CHALLENGE = 'Basic realm="fedisocial", charset="UTF-8"'

_SIGNED_KEY = "fedisocial_signed_actor"
_USER_KEY = "fedisocial_signed_in_user"
_GRANT_KEY = "fedisocial_bearer_grant"


# -- HTTP signatures --------------------------------------------------------------------------


def _is_signed(request: Request) -> bool:
    headers = request.headers
    return (
        "signature" in headers
        or "signature-input" in headers
        or headers.get("authorization", "")[:10].lower() == "signature "
    )


def public_url(request: Request) -> str:
    """The URL a signer signed: our base URL with the path and query as sent.

    Not the Host header: behind a reverse proxy the connection may be to another
    address, and a request signed for another server must be checked against ours.
    """
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{get_context(request).urls.base_url}{path}{'?' + query if query else ''}"


async def _verified_signer(request: Request) -> Actor:
    context = get_context(request)
    parsed = httpsig.parse_signature(request.method, public_url(request), request.headers)
    return await context.verifier.verify(parsed, None)


async def signed_actor(request: Request) -> Actor | None:
    """The actor who signed ``request``; None when unsigned.

    Raises SignatureError (401) when the signature is malformed, stale, made
    with a key we cannot get, or does not verify.
    """
    if not hasattr(request.state, _SIGNED_KEY):
        signer = await _verified_signer(request) if _is_signed(request) else None
        setattr(request.state, _SIGNED_KEY, signer)
    actor: Actor | None = getattr(request.state, _SIGNED_KEY)
    return actor


async def require_signature(request: Request) -> Actor:
    """The signer of ``request``; Unauthorized when unsigned (secure mode)."""
    actor = await signed_actor(request)
    if actor is None:
        raise SignatureError(
            "This server requires signed requests (authorized fetch): sign the GET "
            "with an actor's key (HTTP Signatures, draft-cavage or RFC 9421)"
        )
    return actor


# -- people -------------------------------------------------------------------------------------


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise Unauthorized("The Basic credentials are not base64 of username:password") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("The Basic credentials are not base64 of username:password")
    return username, password


async def basic_user(request: Request) -> Actor | None:
    """The local account named by HTTP Basic credentials; None when none are sent.

    Raises Unauthorized for a wrong name or password or an account not yet approved.
    """
    credentials = _basic_credentials(request.headers.get("authorization", ""))
    if credentials is None:
        return None
    return await check_password(request, *credentials)


async def check_password(request: Request, username: str, password: str) -> Actor:
    """The local account, if ``password`` is its own: throttled per account and per client
    address (429 with ``Retry-After`` after repeated failures), Unauthorized when wrong.
    HTTP Basic and the sign-in page both come here."""
    context = get_context(request)
    throttle = sign_in_throttle(context.db, context.settings)
    keys = [account_key(username), address_key(client_address(request))]
    await throttle.admit(keys)
    actor = await authenticate(context.db, username, password)
    await throttle.succeeded(keys)
    return actor


def client_address(request: Request) -> str:
    """The socket peer. Behind a proxy, uvicorn (``serve`` sets ``proxy_headers``) has
    already put the ``X-Forwarded-For`` address there, but only for the proxies it
    trusts (``FORWARDED_ALLOW_IPS``, 127.0.0.1 by default); from anyone else it is ignored."""
    return request.client.host if request.client else "unknown"


def _bearer_token(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def token_grant(request: Request) -> ClientGrant | None:
    """The grant of the request's Bearer token, a user's or an app's own; None when it
    sends none.

    Raises InvalidToken (401, ``WWW-Authenticate: Bearer error="invalid_token"``) for an
    unknown, expired or revoked token.
    """
    if not hasattr(request.state, _GRANT_KEY):
        token = _bearer_token(request.headers.get("authorization", ""))
        grant = await authenticate_bearer(get_context(request).db, token) if token else None
        setattr(request.state, _GRANT_KEY, grant)
    found: ClientGrant | None = getattr(request.state, _GRANT_KEY)
    return found


async def bearer_grant(request: Request) -> Grant | None:
    """The grant of the request's Bearer token when it is a user's; None when it sends
    none or an app's own token (client_credentials). InvalidToken as :func:`token_grant`."""
    grant = await token_grant(request)
    return grant if isinstance(grant, Grant) else None


async def require_token(request: Request) -> ClientGrant:
    """Any valid access token, a user's or an app's own (Mastodon's
    ``valid_doorkeeper_token?``); 401 ``invalid_token`` without one."""
    grant = await token_grant(request)
    if grant is None:
        raise InvalidToken("The access token is invalid")
    return grant


async def signed_in_user(request: Request) -> Actor | None:
    """The local account making the request: by OAuth Bearer token or HTTP Basic."""
    if not hasattr(request.state, _USER_KEY):
        if _bearer_token(request.headers.get("authorization", "")) is not None:
            grant = await bearer_grant(request)
            setattr(request.state, _USER_KEY, grant.actor if grant else None)
        else:
            setattr(request.state, _USER_KEY, await basic_user(request))
    actor: Actor | None = getattr(request.state, _USER_KEY)
    return actor


async def require_scope(request: Request, *scopes: str) -> None:
    """403 ``insufficient_scope`` unless the request's token covers ``scopes`` (no token:
    nothing to check; the caller asks :func:`signed_in_user` who it is)."""
    grant = await token_grant(request)
    if grant is not None:
        require_scopes(grant, scopes)


def _sign_in_headers(prompt: bool, **more: str) -> dict[str, str]:
    """Both ways in: an OAuth token (clients) or the password; with ``prompt`` the password's
    challenge comes first, so that a browser asks for it."""
    ways = (BASIC_CHALLENGE, bearer_challenge())
    return {"WWW-Authenticate": ", ".join(ways if prompt else ways[::-1]),
            "Cache-Control": "no-store", **more}  # fmt: skip


async def require_user(request: Request, *scopes: str, prompt: bool = False) -> Actor:
    """The signed-in local account (an OAuth token whose grant covers ``scopes``, or the
    password), else 401 naming both ways in (``prompt``: a browser's page, which should ask
    for the password); a bad token's or password's 401 says why (RFC 6750 §3), a token
    without the scope gets 403 ``insufficient_scope``, and an app's own token (no user,
    client_credentials) 422 UserRequired once its scopes pass, in Mastodon's order."""
    try:
        actor = await signed_in_user(request)
    except Unauthorized as exc:
        raise Unauthorized(exc.message, headers=_sign_in_headers(prompt, **exc.headers)) from exc
    if actor is None and await token_grant(request) is not None:
        await require_scope(request, *scopes)
        raise UserRequired()
    if actor is None:
        raise Unauthorized("sign in: send an OAuth access token (Authorization: Bearer …) "
                           "or your username and password",
                           headers=_sign_in_headers(prompt))  # fmt: skip
    await require_scope(request, *scopes)
    return actor


async def require_owner(request: Request, owner: Actor, what: str, *scopes: str) -> Actor:
    """:func:`require_user`, who must be ``owner`` (else 403 "only NAME ``what``")."""
    actor = await require_user(request, *scopes)
    if actor.id != owner.id:
        raise Forbidden(f"only {owner.username} {what}")
    return actor


async def viewer(request: Request) -> Actor | None:
    """Who reads: the signed-in user, else the actor who signed, else None (anonymous)."""
    return await signed_in_user(request) or await signed_actor(request)


async def viewer_uri(request: Request) -> str | None:
    """The actor id of :func:`viewer`; None for anonymous readers."""
    who = await viewer(request)
    return who.uri if who is not None else None


def _same_origin(request: Request) -> None:
    """Refuse cross-site browser requests (CSRF): our pages, or non-browser clients only."""
    context = get_context(request)
    origin = request.headers.get("origin")
    ours = urlsplit(context.urls.base_url)
    if origin and origin != f"{ours.scheme}://{ours.netloc}":
        raise Forbidden(f"requests from {origin} are not accepted here")
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        raise Forbidden("cross-site requests are not accepted here")


async def app_or_session_user(request: Request, *scopes: str) -> Actor:
    """Who asks: an app's Bearer token (with ``scopes``), else the browser's session,
    whose changes carry the page's CSRF value (``X-CSRF-Token``); 401 otherwise."""
    _same_origin(request)
    if request.headers.get("authorization", "")[:7].lower() == "bearer ":
        return await require_user(request, *scopes)
    session = await web_session.current_session(request)
    if session is None:
        raise Unauthorized(
            "sign in on this site's pages, or send an access token (Authorization: Bearer …)",
            headers={"WWW-Authenticate": bearer_challenge(), "Cache-Control": "no-store"},
        )
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get(CSRF_HEADER, "")
        await web_session.check_csrf(request, FormData([(web_session.CSRF_FIELD, given)]))
    return session.actor
