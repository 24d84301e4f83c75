"""OAuth 2.0 over HTTP, at Mastodon's paths, and the sign-in and consent pages.

- ``GET /oauth/authorize`` (also ``/oauth/authorize/``): checks the request, then shows
  the sign-in page, or the consent page naming the client, its redirect URI and the
  scopes; ``POST`` is the Allow / Deny answer (a redirect to the client with a ``code`` or
  ``error=access_denied``; ``urn:ietf:wg:oauth:2.0:oob`` shows the code to copy).
- ``POST /oauth/token`` (throttled per client address), ``POST /oauth/revoke`` (RFC 7009),
  ``POST /oauth/register`` (RFC 7591, throttled per client address),
  ``GET /.well-known/oauth-authorization-server`` (RFC 8414).
- ``/auth/sign_in``, ``/auth/sign_out`` and ``/oauth/authorized_applications`` (the apps
  a person authorized, each revocable) for browsers, with CSRF-checked forms.

The protocol is :mod:`fedisocial.auth.server`; this module only translates HTTP.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fedisocial.ap.vocab import parse_json_object
from fedisocial.auth.clients import OOB
from fedisocial.auth.server import Answer, Consent, OAuthRequest
from fedisocial.auth.throttle import (
    address_key,
    registration_key,
    registration_throttle,
    token_throttle,
)
from fedisocial.auth.tokens import authorized_apps, revoke_app
from fedisocial.errors import RateLimited, Unauthorized
from fedisocial.web import auth
from fedisocial.web import session as web_session
from fedisocial.web.body import read_body
from fedisocial.web.context import get_context
from fedisocial.web.headers import page_policy
from fedisocial.web.pages.base import render_page

__all__ = ["SCOPE_TEXT", "routes"]

#: what each top-level scope lets an app do, in the consent page's words
SCOPE_TEXT = {
    "read": "see everything of your account: posts (also followers-only and direct ones), "
            "your feed, followers, notifications",
    "write": "post, edit and delete posts, upload images, like, boost and follow as you",
    "follow": "follow, block and mute accounts, and see whom you follow, block and mute",
    "push": "receive push notifications for you",
}  # fmt: skip
_CORS = {"Access-Control-Allow-Origin": "*"}
_MAX_BODY = 65_536
_DECISION_FIELDS = (web_session.CSRF_FIELD, "decision")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json",
                    headers={"Cache-Control": "no-store", **_CORS, **(headers or {})})  # fmt: skip


def _answer(answer: Answer) -> Response:
    """An Authlib answer as it is (JSON body, its headers: no-store, WWW-Authenticate …)."""
    headers = {key: value for key, value in answer.headers if key.lower() != "content-type"}
    if isinstance(answer.body, dict):
        return _json(answer.body, answer.status, headers)
    return Response(answer.body, answer.status, headers=headers)


async def _form_items(request: Request) -> list[tuple[str, str]]:
    """The body's parameters: a form (RFC 6749) or, as Mastodon also takes, a JSON object."""
    body = await read_body(request, _MAX_BODY)
    if request.headers.get("content-type", "").startswith("application/json"):
        return [(k, v if isinstance(v, str) else str(v))
                for k, v in parse_json_object(body).items() if v is not None]  # fmt: skip
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def _oauth_request(request: Request, form: list[tuple[str, str]] | None = None,
                   json: dict[str, Any] | None = None) -> OAuthRequest:  # fmt: skip
    urls = get_context(request).urls
    query = request.url.query
    uri = f"{urls.base_url}{request.url.path}{'?' + query if query else ''}"
    return OAuthRequest(
        method=request.method, uri=uri,
        headers=dict(request.headers), query=list(request.query_params.multi_items()),
        form=form or [], json=json,
    )  # fmt: skip


# -- pages -------------------------------------------------------------------------------------


async def _page(request: Request, template: str, code: int = 200, *,
                policy: str | None = None, **values: object) -> Response:  # fmt: skip
    values.setdefault("csrf", await web_session.csrf_token(request))
    values.setdefault("signed_in", await web_session.current_session(request))
    response = render_page(request, template, code, **values)
    if policy:
        response.headers["Content-Security-Policy"] = policy
    return web_session.finish(request, response)


async def _sign_in_page(request: Request, next_path: str, status: int = 200, *,
                        message: str = "", username: str = "",
                        client_name: str = "") -> Response:  # fmt: skip
    return await _page(request, "sign_in.html", status, next=next_path, message=message,
                       username=username, client_name=client_name)  # fmt: skip


def _here(request: Request) -> str:
    query = request.url.query
    return f"{request.url.path}{'?' + query if query else ''}"


async def sign_in(request: Request) -> Response:
    """``GET``: the sign-in form; ``POST``: check the password (throttled), start a session."""
    if request.method == "GET":
        next_path = web_session.local_path(request.query_params.get("next"))
        return await _sign_in_page(request, next_path)
    async with request.form(max_files=0, max_fields=8) as form:
        await web_session.check_csrf(request, form)
        username, password = str(form.get("username") or ""), str(form.get("password") or "")
        next_path = web_session.local_path(str(form.get("next") or ""))
    try:
        actor = await auth.check_password(request, username, password)
    except (Unauthorized, RateLimited) as exc:
        response = await _sign_in_page(request, next_path, exc.status, message=exc.message,
                                       username=username)  # fmt: skip
        response.headers.update(exc.headers)
        return response
    started = await web_session.store(request).start(actor, request.headers.get("user-agent", ""))
    response = RedirectResponse(next_path, 303)
    web_session.start_session(request, response, started)
    return response


async def sign_out(request: Request) -> Response:
    async with request.form(max_files=0, max_fields=4) as form:
        await web_session.check_csrf(request, form)
    response = RedirectResponse("/", 303)
    await web_session.clear_session(request, response)
    return response


def _form_target(redirect_uri: str) -> str:
    """The CSP source a consent form's redirect goes to (browsers apply ``form-action`` to
    the redirect after a form too): the origin, or the scheme of an app's own URI."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:" if parts.scheme.isalnum() else ""


async def _consent_page(request: Request, consent: Consent) -> Response:
    client = consent.client
    policy = page_policy(get_context(request).urls.base_url, form_targets=[
        _form_target(consent.redirect_uri)])  # fmt: skip
    return await _page(
        request, "consent.html", policy=policy, client=client, consent=consent,
        scopes=[(name, SCOPE_TEXT.get(name, name.replace(":", ": "))) for name in consent.scopes],
        oob=consent.redirect_uri == OOB,
    )  # fmt: skip


async def _oauth_error_page(request: Request, answer: Answer) -> Response:
    location = answer.location
    if location and not location.startswith(OOB):  # a good redirect URI: the error goes back
        return Response(status_code=302, headers={"Location": location,
                                                   "Cache-Control": "no-store"})  # fmt: skip
    # out of band: there is nowhere to send it, the person reads it here
    body = dict(parse_qsl(urlsplit(location).query)) if location else answer.body
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("error_description") or body.get("error") or "invalid request")
    return await _page(request, "error.html", 400, status=400,
                       message=f"This app's sign-in request cannot be used: {message}")  # fmt: skip


async def authorize(request: Request) -> Response:
    """The authorization endpoint (RFC 6749 §3.1): consent page, then the decision."""
    if request.method == "POST":
        return await _decide(request)
    oauth = get_context(request).oauth
    result = await oauth.consent(_oauth_request(request))
    if isinstance(result, Answer):
        return await _oauth_error_page(request, result)
    if await web_session.current_session(request) is None:
        name = result.client.name or result.client.client_id
        return await _sign_in_page(request, _here(request), client_name=name)
    return await _consent_page(request, result)


async def _decide(request: Request) -> Response:
    async with request.form(max_files=0, max_fields=32) as form:
        await web_session.check_csrf(request, form)
        items = [(k, v) for k, v in form.multi_items()
                 if isinstance(v, str) and k not in _DECISION_FIELDS]  # fmt: skip
        allow = form.get("decision") == "allow"
    session = await web_session.current_session(request)
    if session is None:
        return await _sign_in_page(request, "/", 401, message="Your session ended: sign in "
                                   "and start again from the app")  # fmt: skip
    answer = await get_context(request).oauth.decide(
        _oauth_request(request, form=items), session.user_id if allow else None
    )
    location = answer.location
    if location is None:
        return await _oauth_error_page(request, answer)
    if location.startswith(OOB):
        code = dict(parse_qsl(urlsplit(location).query)).get("code", "")
        return await _page(request, "oob.html", oob_code=code)
    return Response(status_code=303, headers={"Location": location, "Cache-Control": "no-store"})


async def authorized_applications(request: Request) -> Response:
    """The apps the signed-in person gave access to, each with a revoke button."""
    session = await web_session.current_session(request)
    if session is None:
        return await _sign_in_page(request, _here(request))
    apps = await authorized_apps(get_context(request).db, session.user_id)
    revoked = request.query_params.get("revoked", "")
    return await _page(request, "authorized_apps.html", apps=apps, revoked=revoked,
                       scope_text=SCOPE_TEXT)  # fmt: skip


async def revoke_application(request: Request) -> Response:
    async with request.form(max_files=0, max_fields=4) as form:
        await web_session.check_csrf(request, form)
        name = _text(form, "name")
        back = web_session.local_path(_text(form, "from"), _apps_path(request)).split("?")[0]
    session = await web_session.current_session(request)
    if session is None:
        return await _sign_in_page(request, back, 401)
    await revoke_app(get_context(request).db, session.user_id, request.path_params["client"])
    query = f"?{urlencode({'revoked': name})}" if name else ""
    return RedirectResponse(f"{back}{query}", 303)


def _apps_path(request: Request) -> str:
    return urlsplit(get_context(request).urls.authorized_apps).path


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:200] if isinstance(value, str) else ""


# -- machine endpoints -------------------------------------------------------------------------


async def token(request: Request) -> Response:
    """The token endpoint; every request is charged to the client address, a grant refunded."""
    context = get_context(request)
    throttle = token_throttle(context.db, context.settings)
    keys = [address_key(auth.client_address(request))]
    await throttle.admit(keys)
    answer = await context.oauth.token(_oauth_request(request, form=await _form_items(request)))
    if answer.status == 200:
        await throttle.succeeded(keys)
    return _answer(answer)


async def revoke(request: Request) -> Response:
    oauth = get_context(request).oauth
    return _answer(await oauth.revoke(_oauth_request(request, form=await _form_items(request))))


async def register(request: Request) -> Response:
    """RFC 7591 registration, charged to the client address (30 a day before it waits)."""
    await registration_throttle(get_context(request).db).admit(
        [registration_key(auth.client_address(request))]
    )
    json = parse_json_object(await read_body(request, _MAX_BODY))
    oauth = get_context(request).oauth
    return _answer(await oauth.register(_oauth_request(request, json=json)))


async def metadata(request: Request) -> Response:
    body = orjson.dumps(get_context(request).oauth.metadata())
    return Response(body, media_type="application/json",
                    headers={**_CORS, "Cache-Control": "public, max-age=3600"})  # fmt: skip


routes = [
    Route("/oauth/authorize", authorize, methods=["GET", "POST"]),
    Route("/oauth/authorize/", authorize, methods=["GET", "POST"]),
    Route("/oauth/token", token, methods=["POST"]),
    Route("/oauth/revoke", revoke, methods=["POST"]),
    Route("/oauth/register", register, methods=["POST"]),
    Route("/.well-known/oauth-authorization-server", metadata),
    Route("/oauth/authorized_applications", authorized_applications),
    Route(
        "/oauth/authorized_applications/{client:int}/revoke", revoke_application, methods=["POST"]
    ),
    Route("/auth/sign_in", sign_in, methods=["GET", "POST"]),
    Route("/auth/sign_out", sign_out, methods=["POST"]),
]
