"""The OAuth 2.0 authorization server, on Authlib, shared by every API that takes tokens.

Authlib (``authlib.oauth2``) does the protocol: the authorization-code grant (RFC 6749
§4.1) with PKCE (RFC 7636), the client-credentials grant (§4.4: an app's own token, with
no user, as Mastodon apps get one), refresh tokens (§6), client authentication, revocation
(RFC 7009), dynamic registration (RFC 7591) and the error answers. We give it storage
(:mod:`fedisocial.auth.store`), our clients (:mod:`fedisocial.auth.clients`) and scopes
(:mod:`fedisocial.auth.scopes`), and tighten it where this server is stricter:

- PKCE: ``S256`` only (``plain`` and a missing method are refused, RFC 7636 §4.2 lets a
  server do so); required of public clients already at the authorization endpoint.
- A code is claimed (marked used) in one atomic update when it is looked up, so two
  exchanges racing cannot both win; a second exchange revokes the tokens of the first
  (RFC 6749 §4.1.2). A code met with a wrong verifier or redirect URI is spent as well.
- Refresh tokens rotate: the old pair is revoked in the same transaction that stores the
  new one, so a refresh token works once.

**The bridge.** Authlib is synchronous and our database is async. Each call into Authlib
runs in a small thread pool of its own (:data:`THREADS` threads), and Authlib's callbacks
(query a client, claim a code, save a token) hand their coroutine back to the event loop
with :func:`asyncio.run_coroutine_threadsafe` and wait for it. The pool is private so that
OAuth calls waiting for the database can never take all the threads of the loop's default
executor, which the database itself may need (SQLite's cross-process writer lock waits in
one). The only network step, fetching a client's metadata document, happens before Authlib
is called (:meth:`ClientDirectory.resolve`), so no thread waits on another server.
Measured on this machine: a call into the pool costs ~40 µs and each hop back to the loop
~35 µs; a code exchange makes three hops (client, code, token), against milliseconds
for the statements behind them.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import time
from collections import defaultdict
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.requests import JsonPayload, JsonRequest, OAuth2Payload
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge

from fedisocial.auth import store
from fedisocial.auth.clients import ClientDirectory, redirect_allowed
from fedisocial.auth.scopes import SCOPES, covers_all, parse_scope
from fedisocial.auth.tokens import digest, new_secret
from fedisocial.errors import BadRequest
from fedisocial.store.db import Database
from fedisocial.store.models import OAuthClient
from fedisocial.urls import Urls

__all__ = ["THREADS", "Answer", "Consent", "OAuthRequest", "OAuthServer"]

T = TypeVar("T")

#: threads that run Authlib calls (each waits for the database, not the CPU)
THREADS = 8
#: an authorization code is good for this long (RFC 6749 §4.1.2 recommends at most 10 min)
CODE_LIFETIME = 600
_CONFIDENTIAL = ("client_secret_basic", "client_secret_post")
_ALL_METHODS = [*_CONFIDENTIAL, "none"]
_GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")
_loop: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar("oauth_loop")


def _wait(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the event loop that called into Authlib, from its thread."""
    return asyncio.run_coroutine_threadsafe(coroutine, _loop.get()).result()


@dataclass(frozen=True)
class OAuthRequest:
    """An HTTP request as the OAuth endpoints read it (no web framework in here)."""

    method: str
    uri: str
    headers: Mapping[str, str]
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] = field(default_factory=list)
    json: dict[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    """What to send back: status, body (a dict for JSON, else text) and headers."""

    status: int
    body: dict[str, Any] | str
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)


@dataclass(frozen=True)
class Consent:
    """A valid authorization request, to show on the consent page."""

    client: OAuthClient
    redirect_uri: str
    scopes: list[str]
    #: the request's parameters, to send back with the decision
    params: list[tuple[str, str]]


# -- Authlib's view of our rows ----------------------------------------------------------------


class _Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, row: OAuthClient) -> None:
        self.row = row

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.row.redirect_uris
        return uris[0] if self.row.kind != "loopback" and len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        try:
            names = parse_scope(scope)
        except BadRequest:
            return None
        return " ".join(names) if covers_all(self.row.scopes.split(), names) else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_allowed(self.row, redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        known = self.row.secret_hash
        return known is not None and hmac.compare_digest(known, digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # confidential clients may send their secret either way, as on Mastodon
        return method in _CONFIDENTIAL if self.row.secret_hash else method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":  # confidential clients only (RFC 6749 §4.4)
            return self.row.secret_hash is not None
        return grant_type in _GRANT_TYPES


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, request: OAuthRequest) -> None:
        # Authlib reads headers by their canonical names ("Authorization")
        headers = {key.title(): value for key, value in request.headers.items()}
        super().__init__(request.method, request.uri, headers=headers)
        self._args = dict(request.query)
        self._form = dict(request.form)
        self.payload = _Payload([*request.query, *request.form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


# -- grants and endpoints ----------------------------------------------------------------------


class _Pkce(CodeChallenge):  # type: ignore[misc]
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        client: _Client = grant.request.client
        if not challenge and client.row.secret_hash is None:
            raise InvalidRequestError("Public clients must use PKCE: send code_challenge and "
                                      "code_challenge_method=S256 (RFC 7636)")  # fmt: skip
        if challenge and method != "S256":
            raise InvalidRequestError("code_challenge_method must be S256; this server does "
                                      "not accept plain (RFC 7636 section 4.2)")  # fmt: skip
        super().validate_code_challenge(grant, redirect_uri)


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = _ALL_METHODS

    def save_authorization_code(self, code: str, request: _Request) -> None:
        data = request.payload.data
        _wait(store.save_code(
            self.server.db, code, client_pk=request.client.row.id, user_id=request.user,
            redirect_uri=request.payload.redirect_uri or "",  # "": none sent, none to match
            scope=request.scope, challenge=data.get("code_challenge"),
            method=data.get("code_challenge_method"), lifetime=CODE_LIFETIME,
        ))  # fmt: skip

    def query_authorization_code(self, code: str, client: _Client) -> store.Code | None:
        return _wait(store.claim_code(self.server.db, code, client.row.id))

    def delete_authorization_code(self, authorization_code: store.Code) -> None:
        """Kept, marked used (by the claim): a replay must find it to revoke its tokens."""

    def authenticate_user(self, authorization_code: store.Code) -> int:
        return authorization_code.user_id


class _RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = _ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> store.Token | None:
        return _wait(store.find_token(self.server.db, refresh_token, "refresh_token"))

    def authenticate_user(self, refresh_token: store.Token) -> int | None:
        return refresh_token.user_id

    def revoke_old_credential(self, refresh_token: store.Token) -> None:
        """Done already: :meth:`OAuthServer.save_token` swapped the pair in one transaction."""


class _ClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    """An app's own token: its secret, no user; the scope asked (else ``read``, Mastodon's
    default) must be within the app's registered scopes."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(_CONFIDENTIAL)

    def validate_token_request(self) -> None:
        super().validate_token_request()
        if self.request.client.get_allowed_scope(self.request.payload.scope) is None:
            raise InvalidScopeError("The scope asked for is not among this app's scopes")


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = _ALL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> store.Token | None:
        return _wait(store.find_token(self.server.db, token_string, token_type_hint))

    def revoke_token(self, token: store.Token, request: _Request) -> None:
        _wait(store.revoke(self.server.db, token.id))


class _Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    def get_server_metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = self.server.metadata()
        return metadata

    def authenticate_token(self, request: Any) -> bool:
        return True  # open registration: a client is nobody until a person consents

    def generate_client_id(self, request: Any) -> str:
        return new_secret()

    def generate_client_secret(self, request: Any) -> str | None:
        """A secret for a confidential client (the default, RFC 7591 §2); none for ``none``."""
        method = request.payload.data.get("token_endpoint_auth_method")
        return None if method == "none" else new_secret()

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any],
                    request: Any) -> OAuthClient:  # fmt: skip
        directory: ClientDirectory = self.server.clients
        client: OAuthClient = _wait(directory.register(
            client_metadata, client_id=client_info["client_id"],
            secret=client_info["client_secret"]))  # fmt: skip
        return client

    def create_registration_response(self, request: Any) -> tuple[int, dict[str, Any], Any]:
        status, body, headers = super().create_registration_response(request)
        if body.get("client_secret") is None:  # a public client has none (RFC 7591 §3.2.1)
            body.pop("client_secret", None)
            body.pop("client_secret_expires_at", None)
        return status, body, headers


# -- the server --------------------------------------------------------------------------------


class _Core(AuthorizationServer):  # type: ignore[misc]
    """Authlib's server with our storage; runs in the pool's threads only."""

    def __init__(self, owner: OAuthServer) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.owner = owner
        self.db = owner.db
        self.clients = owner.clients
        self.register_grant(_CodeGrant, [_Pkce(required=True)])
        self.register_grant(_RefreshGrant)
        self.register_grant(_ClientCredentialsGrant)
        self.register_endpoint(_Revocation)
        self.register_endpoint(_Registration)
        self.register_token_generator("default", self._generate)

    def metadata(self) -> dict[str, Any]:
        return self.owner.metadata()

    def query_client(self, client_id: str) -> _Client | None:
        row = _wait(self.clients.find(client_id))
        return _Client(row) if row is not None else None

    def validate_requested_scope(self, scope: str | None) -> None:
        try:
            parse_scope(scope)
        except BadRequest as exc:
            raise InvalidScopeError(exc.message) from exc

    def _generate(self, grant_type: str, client: _Client, user: int | None = None,
                  scope: str | None = None, expires_in: int | None = None,
                  include_refresh_token: bool = True) -> dict[str, Any]:  # fmt: skip
        scope = " ".join(parse_scope(scope))  # none asked: Mastodon's default, read
        token: dict[str, Any] = {"token_type": "Bearer", "access_token": new_secret(),
                                 "scope": scope, "created_at": int(time.time())}  # fmt: skip
        lifetime = self.owner.token_lifetime
        if lifetime:
            token["expires_in"] = lifetime
        if include_refresh_token:
            token["refresh_token"] = new_secret()
        return token

    def save_token(self, token: dict[str, Any], request: _Request) -> None:
        code: store.Code | None = request.authorization_code
        old: store.Token | None = request.refresh_token
        saved = _wait(store.save_token(
            self.db, token, client_pk=request.client.row.id, user_id=request.user,
            code_id=code.id if code else None, replaces=old.id if old else None,
        ))  # fmt: skip
        if not saved:
            raise InvalidGrantError("The refresh token was used already")

    def create_oauth2_request(self, request: OAuthRequest | _Request) -> _Request:
        return request if isinstance(request, _Request) else _Request(request)

    def create_json_request(self, request: OAuthRequest) -> JsonRequest:
        json_request = JsonRequest(request.method, request.uri, dict(request.headers))
        json_request.payload = _JsonPayload(request.json or {})
        return json_request

    def handle_response(self, status: int, body: Any, headers: Any) -> Answer:
        return Answer(status, body if isinstance(body, dict | str) else {}, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals: nothing listens."""


class OAuthServer:
    """The async face of the authorization server: one per process, built by the app."""

    def __init__(self, db: Database, clients: ClientDirectory, urls: Urls,
                 token_lifetime: int = 0) -> None:  # fmt: skip
        self.db = db
        self.clients = clients
        self.urls = urls
        #: seconds an access token lives; 0: until revoked
        self.token_lifetime = token_lifetime
        self._core = _Core(self)
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="oauth")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _call(self, function: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        _loop.set(loop)
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._pool, context.run, function, *args)

    async def consent(self, request: OAuthRequest) -> Consent | Answer:
        """Check an authorization request (the client's document fetched first if need be):
        what to show on the consent page, or the error answer (a redirect to the client when
        its redirect URI is known good, RFC 6749 §4.1.2.1, else a 400 to show)."""
        client_id = dict(request.query).get("client_id") or dict(request.form).get("client_id")
        if client_id:
            await self.clients.resolve(client_id)
        result: Consent | Answer = await self._call(self._consent, request)
        return result

    def _consent(self, request: OAuthRequest) -> Consent | Answer:
        oauth_request = _Request(request)
        try:
            grant = self._core.get_consent_grant(oauth_request)
        except OAuth2Error as error:
            answer: Answer = self._core.handle_error_response(oauth_request, error)
            return answer
        client: _Client = oauth_request.client
        keep = ("response_type", "client_id", "redirect_uri", "scope", "state",
                "code_challenge", "code_challenge_method")  # fmt: skip
        params = [(k, v) for k, v in oauth_request.payload.data.items() if k in keep]
        return Consent(client.row, grant.redirect_uri, oauth_request.scope.split(), params)

    async def decide(self, request: OAuthRequest, user_id: int | None) -> Answer:
        """The user's answer to a consent page: a code for the client (``user_id``), or
        ``access_denied`` (None); both as a redirect to the client (RFC 6749 §4.1.2)."""
        answer: Answer = await self._call(self._decide, request, user_id)
        return answer

    def _decide(self, request: OAuthRequest, user_id: int | None) -> Answer:
        oauth_request = _Request(request)
        try:
            grant = self._core.get_consent_grant(oauth_request, end_user=user_id)
        except OAuth2Error as error:
            answer: Answer = self._core.handle_error_response(oauth_request, error)
            return answer
        result: Answer = self._core.create_authorization_response(
            oauth_request, grant_user=user_id, grant=grant
        )
        return result

    async def token(self, request: OAuthRequest) -> Answer:
        """The token endpoint (RFC 6749 §3.2): authorization_code, client_credentials and
        refresh_token grants."""
        answer: Answer = await self._call(self._core.create_token_response, request)
        return answer

    async def revoke(self, request: OAuthRequest) -> Answer:
        """The revocation endpoint (RFC 7009)."""
        answer: Answer = await self._call(
            self._core.create_endpoint_response, "revocation", request
        )
        return answer

    async def register(self, request: OAuthRequest) -> Answer:
        """Dynamic client registration (RFC 7591); the request carries the JSON metadata."""
        answer: Answer = await self._call(
            self._core.create_endpoint_response, "client_registration", request
        )
        return answer

    def metadata(self) -> dict[str, Any]:
        """Authorization server metadata (RFC 8414 §2)."""
        urls = self.urls
        return {
            "issuer": urls.base_url,
            "authorization_endpoint": urls.oauth_authorize,
            "token_endpoint": urls.oauth_token,
            "revocation_endpoint": urls.oauth_revoke,
            "registration_endpoint": urls.oauth_register,
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(_GRANT_TYPES),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": _ALL_METHODS,
            "revocation_endpoint_auth_methods_supported": _ALL_METHODS,
            "client_id_metadata_document_supported": True,
            "activitypub_object_id_as_client_id": True,
            "service_documentation": f"{urls.base_url}/about",
        }
