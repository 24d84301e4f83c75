"""OAuth clients, known three ways, and which redirect URIs each may use.

1. **A URL as client id** (FEP-d8c2; OAuth Client ID Metadata Document): the id is the URL
   of a document describing the client, an ActivityPub ``Application`` (``name``,
   ``redirectURI``) or a client metadata document (``client_name``, ``redirect_uris``). We
   fetch it through the guarded client (:mod:`fedisocial.ap.client`) when the authorization
   endpoint first sees the id, and again when our copy is an hour old; the row's ``kind`` is
   ``document``.
2. **A URL we cannot fetch** (offline, blocked, not a usable document): the client gets
   ``kind = "loopback"`` and may only redirect to a loopback address (``http://127.0.0.1:PORT``,
   ``http://[::1]:PORT``, ``http://localhost:PORT``, any port: RFC 8252 §7.3), so a code can
   only land on the machine of the person who signs in. The consent page shows the raw id
   with a warning. The ``ap`` command-line client (``https://evanp.github.io/ap/client.jsonld``)
   is such a client wherever GitHub Pages is out of reach.
3. **Registered** (RFC 7591 dynamic registration, Mastodon's ``POST /api/v1/apps``, and the
   apps ``fedisocial token create`` makes): a random id, the redirect URIs it registered,
   and for confidential clients the SHA-256 of a secret. Mastodon apps come through
   :meth:`ClientDirectory.register_app`, which checks them as Mastodon (Doorkeeper) does:
   they may use ``urn:ietf:wg:oauth:2.0:oob`` and their own URI schemes
   (``tusky://oauth``), which RFC 7591 registration (Authlib's) refuses.

Registered loopback redirect URIs match on any port as well (RFC 8252 §7.3).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select

from fedisocial.ap.client import FederationClient
from fedisocial.auth.scopes import DEFAULT_SCOPE, TOP_LEVEL, parse_scope
from fedisocial.auth.tokens import digest, new_secret
from fedisocial.errors import BadRequest, InvalidDocument, RemoteError, Unprocessable
from fedisocial.store.db import Database
from fedisocial.store.models import OAuthClient, utcnow
from fedisocial.store.rows import MAX_URI, upsert

__all__ = [
    "DOCUMENT_ACCEPT",
    "OOB",
    "REFETCH_AFTER",
    "ClientDirectory",
    "ClientInfo",
    "InvalidApp",
    "is_loopback_redirect",
    "is_url_client_id",
    "read_client_document",
    "redirect_allowed",
]

#: Mastodon's "out of band" redirect: the code is shown to copy instead of sent anywhere
OOB = "urn:ietf:wg:oauth:2.0:oob"
#: a fetched (or unfetchable) client document is looked at again after this long
REFETCH_AFTER = timedelta(hours=1)
DOCUMENT_ACCEPT = (
    "application/json, application/activity+json, "
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
)
_LOOPBACK_NAMES = ("localhost",)
#: Mastodon's limits on an app (``ApplicationExtension``): name, website, redirect URIs
APP_NAME_MAX = 60
APP_URI_MAX = 2000


def is_loopback_redirect(uri: str) -> bool:
    """``http://`` on a loopback address or ``localhost``, any port (RFC 8252 §7.3, §8.3)."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return False
    if parts.scheme != "http" or not host or parts.fragment:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _without_port(uri: str) -> str:
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def redirect_allowed(client: OAuthClient, uri: str) -> bool:
    """Whether ``client`` may have its codes sent to ``uri``."""
    if client.kind == "loopback":
        return is_loopback_redirect(uri)
    if uri in client.redirect_uris:
        return True
    if is_loopback_redirect(uri):
        bare = _without_port(uri)
        return any(
            is_loopback_redirect(known) and _without_port(known) == bare
            for known in client.redirect_uris
        )
    return False


def is_url_client_id(client_id: str, *, allow_http: bool = False) -> bool:
    """Whether a client id is a document URL (https with a path; http on private networks)."""
    try:
        parts = urlsplit(client_id)
    except ValueError:
        return False
    schemes = ("https", "http") if allow_http else ("https",)
    return parts.scheme in schemes and bool(parts.hostname) and bool(parts.path.strip("/"))


@dataclass(frozen=True)
class ClientInfo:
    """What a client document says about its client."""

    name: str
    website: str | None
    redirect_uris: list[str]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _first_text(doc: dict[str, Any], *names: str) -> str:
    for name in names:
        value = doc.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, dict):  # nameMap
            for text in value.values():
                if isinstance(text, str) and text.strip():
                    return text.strip()
    return ""


def _link(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("href")
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, str | dict)), None)
        return _link(value)
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value[:MAX_URI]
    return None


def read_client_document(url: str, doc: dict[str, Any]) -> ClientInfo:
    """The name, website and redirect URIs of a client document; InvalidDocument if unusable.

    Both shapes: a client metadata document (``client_id``, ``client_name``, ``client_uri``,
    ``redirect_uris``) and an ActivityPub object (``id``, ``name``/``nameMap``, ``url``,
    ``redirectURI``). Its id must be the URL it was fetched from (FEP-d8c2; CIMD §4.1).
    """
    own_id = doc.get("client_id", doc.get("id"))
    if own_id != url:
        raise InvalidDocument(f"the client document at {url} names another id ({own_id!r})")
    method = doc.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise InvalidDocument(f"the client document at {url} asks for {method!r}; "
                              "only public clients (none) are identified by URL")  # fmt: skip
    redirects = [
        uri for name in ("redirect_uris", "redirectURI", "redirectUri", "redirect_uri")
        for uri in _strings(doc.get(name))
    ]  # fmt: skip
    redirects = [uri for uri in dict.fromkeys(redirects) if 0 < len(uri) <= MAX_URI]
    if not redirects:
        raise InvalidDocument(f"the client document at {url} names no redirect URI")
    name = _first_text(doc, "client_name", "name", "nameMap")[:200]
    website = _link(doc.get("client_uri")) or _link(doc.get("url"))
    return ClientInfo(name, website, redirects)


class InvalidApp(Unprocessable):
    """422 (Mastodon's ``Validation failed: …``): an app registration that cannot be used."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"Validation failed: {problem}")


def _app_redirects(values: list[str]) -> list[str]:
    """Mastodon's redirect URIs: one per line (or a list), each absolute, no fragment."""
    uris = list(dict.fromkeys(uri for value in values for uri in value.split()))
    if not uris:
        raise InvalidApp("Redirect URI can't be blank")
    if len("\n".join(uris)) > APP_URI_MAX:
        raise InvalidApp(f"Redirect URI is too long (maximum is {APP_URI_MAX} characters)")
    for uri in uris:
        try:
            parts = urlsplit(uri)
        except ValueError:
            raise InvalidApp("Redirect URI must be an absolute URI.") from None
        if not parts.scheme or not (parts.netloc or parts.path):
            raise InvalidApp("Redirect URI must be an absolute URI.")
        if parts.fragment or uri.endswith("#"):
            raise InvalidApp("Redirect URI cannot contain a fragment.")
    return uris


def _app_website(website: str | None) -> str | None:
    website = (website or "").strip()
    if not website:
        return None
    parts = urlsplit(website)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidApp("Website is not a valid URL")
    if len(website) > APP_URI_MAX:
        raise InvalidApp(f"Website is too long (maximum is {APP_URI_MAX} characters)")
    return website


class ClientDirectory:
    """Finds, fetches and registers clients (``clients`` table)."""

    def __init__(self, db: Database, fetcher: FederationClient) -> None:
        self.db = db
        self.fetcher = fetcher

    async def find(self, client_id: str) -> OAuthClient | None:
        """The stored client, without any fetch (the token endpoint's view)."""
        if not client_id or len(client_id) > MAX_URI:
            return None
        async with self.db.session() as session:
            found: OAuthClient | None = await session.scalar(
                select(OAuthClient).where(OAuthClient.client_id == client_id)
            )
        return found

    async def resolve(self, client_id: str) -> OAuthClient | None:
        """The client named at the authorization endpoint: a URL id is fetched (or refetched
        when an hour old); None for an unknown id that is not a URL."""
        found = await self.find(client_id)
        if found is not None and found.kind == "registered":
            return found
        if not is_url_client_id(client_id, allow_http=self.fetcher.allow_private):
            return None
        if found is not None and found.fetched_at and utcnow() - found.fetched_at < REFETCH_AFTER:
            return found
        try:
            doc = await self.fetcher.get_json(client_id, accept=DOCUMENT_ACCEPT)
            info = read_client_document(client_id, doc)
        except (RemoteError, InvalidDocument):
            if found is not None and found.kind == "document":  # keep what it said last time
                return found
            return await self._store(client_id, "loopback", ClientInfo("", None, []), None)
        return await self._store(client_id, "document", info, doc)

    async def get(self, pk: int) -> OAuthClient | None:
        """The client with this row id (a token's ``client_id``)."""
        async with self.db.session() as session:
            return await session.get(OAuthClient, pk)

    async def register_app(
        self, name: str, redirect_uris: list[str], scopes: str | None, website: str | None
    ) -> tuple[OAuthClient, str]:
        """A Mastodon app (``POST /api/v1/apps``) and its new secret: a confidential client
        whose secret goes in the body or HTTP Basic, as Mastodon's do. InvalidApp (422)
        for a blank or long name, redirect URIs that are not absolute or have a fragment,
        unknown scopes or a website that is not a URL. No scopes: ``read``."""
        name = name.strip()
        if not name:
            raise InvalidApp("Name can't be blank")
        if len(name) > APP_NAME_MAX:
            raise InvalidApp(f"Name is too long (maximum is {APP_NAME_MAX} characters)")
        redirects = _app_redirects(redirect_uris)
        try:
            granted = parse_scope(scopes or DEFAULT_SCOPE)
        except BadRequest as exc:
            raise InvalidApp(
                f"Scopes doesn't match configured on the server: {exc.message}"
            ) from exc
        secret = new_secret()
        metadata = {"client_name": name, "redirect_uris": redirects,
                    "scope": " ".join(granted), "client_uri": _app_website(website),
                    "token_endpoint_auth_method": "client_secret_post"}  # fmt: skip
        return await self.register(metadata, secret=secret), secret

    async def _store(
        self, client_id: str, kind: str, info: ClientInfo, doc: dict[str, Any] | None
    ) -> OAuthClient:
        values = {"kind": kind, "name": info.name, "website": info.website,
                  "redirect_uris": info.redirect_uris, "document": doc,
                  "fetched_at": utcnow(), "scopes": " ".join(TOP_LEVEL)}  # fmt: skip
        async with self.db.transaction() as session:
            await session.execute(
                upsert(session, OAuthClient)
                .values(client_id=client_id, token_endpoint_auth_method="none",
                        created_at=utcnow(), **values)
                .on_conflict_do_update(index_elements=["client_id"], set_=values)
            )  # fmt: skip
        stored = await self.find(client_id)
        assert stored is not None
        return stored

    async def register(
        self, metadata: dict[str, Any], *, client_id: str | None = None,
        secret: str | None = None,
    ) -> OAuthClient:  # fmt: skip
        """A new registered client from checked RFC 7591 metadata, with the given id (else a
        new one) and, for a confidential client, secret (only its hash is stored).

        ``token_endpoint_auth_method`` defaults to ``client_secret_basic`` (RFC 7591 §2);
        ``none`` makes a public client without a secret. No scope means all top-level ones
        (the user still consents to what is asked).
        """
        method = metadata.get("token_endpoint_auth_method") or "client_secret_basic"
        redirects = _strings(metadata.get("redirect_uris"))
        if any(len(uri) > MAX_URI for uri in redirects):
            raise BadRequest(f"redirect URIs can have at most {MAX_URI} characters")
        if (method == "none") != (secret is None):
            raise BadRequest(f"a client with token_endpoint_auth_method {method} "
                             f"{'has no' if method == 'none' else 'needs a'} secret")  # fmt: skip
        client = OAuthClient(
            client_id=client_id or new_secret(), kind="registered",
            name=_first_text(metadata, "client_name")[:200],
            website=_link(metadata.get("client_uri")), redirect_uris=redirects,
            scopes=" ".join(str(metadata.get("scope") or " ".join(TOP_LEVEL)).split()),
            secret_hash=digest(secret) if secret else None, token_endpoint_auth_method=method,
        )  # fmt: skip
        async with self.db.transaction() as session:
            session.add(client)
        return client
