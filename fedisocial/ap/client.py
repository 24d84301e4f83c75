"""The one outbound door to the network.

Every remote fetch goes through :class:`FederationClient`: it refuses loopback,
private and other reserved addresses (unless ``allow_private_networks``) at DNS
resolution time, so a name that resolves to 127.0.0.1 cannot sneak through;
caps size and time (one deadline for the whole request: connect, headers and
body, redirects included, so a server that dribbles bytes cannot hold a worker);
says in words what went wrong on the network; signs GETs with the instance
actor's key; and collapses concurrent fetches of one URL into one request
(single-flight), because a boosted post makes many servers ask for the same
documents at once.

It speaks httpx (``httpx.Auth`` signing) over aiohttp's connection pool:
httpx's own pool costs 5-20 ms of CPU per request under concurrency (see the
performance notes in DESIGN.md). Deliveries (``post``) run the ``httpx.Auth``
flow but hand the request to that aiohttp session directly, skipping httpx's
send path: about 0.2 ms of CPU less per delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import httpx
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

from fedisocial import __version__
from fedisocial.ap.vocab import (
    ACTIVITY_JSON,
    LD_JSON_PROFILE,
    WebfingerResult,
    load_json,
    parse_webfinger,
)
from fedisocial.errors import BlockedAddress, InvalidDocument, RemoteError, RemoteStatus

__all__ = [
    "AS2_ACCEPT",
    "Answer",
    "FederationClient",
    "GuardedResolver",
    "check_address",
    "network_failure",
    "parse_retry_after",
]

AS2_ACCEPT = f"{ACTIVITY_JSON}, {LD_JSON_PROFILE}"
_MAX_REDIRECTS = 5


def check_address(address: str, allow_private: bool) -> None:
    """Refuse a non-public IP address unless private networks are allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if not allow_private and not ip.is_global:
        raise BlockedAddress(
            f"refusing to connect to {address}: not a public address "
            "(set allow_private_networks = true to federate on a private network)"
        )


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds a server asks us to wait: ``Retry-After`` (RFC 9110 §10.2.3) or None.

    Both forms: delay-seconds and an HTTP-date (a date in the past means now).
    OpenAI-compatible servers also send ``retry-after-ms``, which is read first.
    """
    millis = headers.get("retry-after-ms", "").strip()
    if millis.replace(".", "", 1).isdigit():
        return float(millis) / 1000
    value = headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps (httpx wraps aiohttp, which wraps the OS error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def network_failure(exc: BaseException, host: str, timeout: float) -> str:
    """A network failure in words: connection refused, no such host, TLS error, timed out.

    httpx-aiohttp maps most connection errors to ``ConnectTimeout``, so the cause
    is read from the OS or TLS error underneath the wrappers.
    """
    for cause in _causes(exc):
        if isinstance(cause, TimeoutError):
            return f"timed out after {timeout:g} s (the server took longer than {timeout:g} s)"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"no such host {host}"
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, aiohttp.ClientError):
            return f"TLS error ({cause.reason or cause})"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
    if isinstance(exc, aiohttp.ServerDisconnectedError | httpx.RemoteProtocolError):
        return "the server closed the connection before answering"
    return str(exc) or type(exc).__name__


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Answer:
    """A remote server's answer to a POST."""

    status: int
    headers: httpx.Headers
    body: bytes


class GuardedResolver(AbstractResolver):
    """Resolves names, then refuses answers that point at non-public addresses."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            check_address(answer["host"], self._allow_private)
        return answers

    async def close(self) -> None:
        await self._inner.close()


class FederationClient:
    """Signed, guarded, size- and time-capped HTTP for federation."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float,
        max_bytes: int,
        user_agent_url: str,
        auth: httpx.Auth | None = None,
        max_connections: int = 512,
    ) -> None:
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.auth = auth
        self.timeout = timeout
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._user_agent = f"fedisocial/{__version__} (+{user_agent_url})"
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        self.http = httpx.AsyncClient(
            transport=AiohttpTransport(client=self._aiohttp),
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": self._user_agent},
            event_hooks={"request": [self._check_request]},
        )

    def _aiohttp(self) -> aiohttp.ClientSession:
        """The one aiohttp session (and connection pool) under httpx and :meth:`post`."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.allow_private), limit=self._max_connections,
                limit_per_host=16,
            )  # fmt: skip
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def aclose(self) -> None:
        await self.http.aclose()
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def _check_request(self, request: httpx.Request) -> None:
        """Runs for every request, redirects included."""
        self._check_url(request.url)

    def _check_url(self, url: httpx.URL | str) -> None:
        """Refuse what is not http(s), or plain http or a private IP literal when not allowed."""
        parsed = httpx.URL(url)
        scheme, host = parsed.scheme, parsed.host
        if scheme not in ("https", "http"):
            raise BlockedAddress(f"refusing {url}: only https URLs are fetched")
        if scheme == "http" and not self.allow_private:
            raise BlockedAddress(f"refusing plain http URL {url}: only https URLs are fetched")
        if _is_ip_literal(host):
            check_address(host.strip("[]"), self.allow_private)

    def bases_for(self, host: str) -> list[str]:
        """Where a host's well-known documents may be: https://host and, for a private host
        when private networks are allowed, http://host after it (an instance on a LAN or
        on loopback speaks one or the other: ``serve --ssl-certfile`` or plain http)."""
        bare = urlsplit(f"//{host}").hostname or host
        private = bare == "localhost" or (
            _is_ip_literal(bare) and not ipaddress.ip_address(bare).is_global
        )
        return [f"https://{host}", *([f"http://{host}"] if self.allow_private and private else [])]

    async def get_json(
        self, url: str, *, accept: str = AS2_ACCEPT, signed: bool = True
    ) -> dict[str, Any]:
        """GET a JSON object; concurrent calls for one URL share one request."""
        key = f"{accept}\n{signed}\n{url}"
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._fetch_json(url, accept, signed)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters, if any, re-raise it themselves
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _fetch_json(self, url: str, accept: str, signed: bool) -> dict[str, Any]:
        auth = self.auth if signed and self.auth is not None else None
        body, _ = await self._read(url, accept, auth, self.max_bytes)
        try:
            doc = load_json(body, url)
        except orjson.JSONDecodeError as exc:
            raise InvalidDocument(f"{url} did not return JSON") from exc
        if not isinstance(doc, dict):
            raise InvalidDocument(f"{url} returned JSON that is not an object")
        return doc

    async def get_bytes(self, url: str, *, accept: str, max_bytes: int) -> tuple[bytes, str]:
        """GET a file (unsigned), at most ``max_bytes``: (body, Content-Type)."""
        body, response = await self._read(url, accept, None, max_bytes)
        return body, response.headers.get("content-type", "")

    async def _read(
        self, url: str, accept: str, auth: httpx.Auth | None, max_bytes: int
    ) -> tuple[bytes, httpx.Response]:
        """GET following redirects (each one guarded), body capped, within one deadline."""
        self._check_url(url)
        async with self._deadline("fetch", url):
            for _ in range(_MAX_REDIRECTS + 1):
                request = self.http.build_request("GET", url, headers={"Accept": accept})
                response = await self.http.send(request, auth=auth, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code >= 400:
                        wait = parse_retry_after(response.headers)
                        raise RemoteStatus(url, response.status_code, retry_after=wait)
                    return await self._capped_body(response, max_bytes), response
                finally:
                    await response.aclose()
        raise RemoteError(f"too many redirects from {url}")

    @asynccontextmanager
    async def _deadline(self, verb: str, url: str) -> AsyncIterator[None]:
        """Bound a whole request by ``timeout``; network failures become RemoteErrors in words.

        The connection of a request cut short is closed, not returned to the pool.
        """
        try:
            async with asyncio.timeout(self.timeout):
                yield
        except (TimeoutError, httpx.HTTPError, aiohttp.ClientError) as exc:
            blocked = next((c for c in _causes(exc) if isinstance(c, BlockedAddress)), None)
            if blocked is not None:  # raised by the resolver, under aiohttp's wrapper
                raise blocked from exc
            what = network_failure(exc, urlsplit(url).hostname or url, self.timeout)
            raise RemoteError(f"could not {verb} {url}: {what}") from exc

    @staticmethod
    async def _capped_body(response: httpx.Response, max_bytes: int) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise RemoteError(f"{response.url} is larger than {max_bytes} bytes")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise RemoteError(f"{response.url} is larger than {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def post(self, url: str, body: bytes, auth: httpx.Auth) -> Answer:
        """POST an activity, signed by ``auth``; the answer's body is read (capped) and kept.

        Transport failures raise RemoteError; HTTP error statuses are returned for
        the caller to classify (see delivery.py). Redirects are not followed.

        ``auth`` runs its flow on an ``httpx.Request`` as usual, but the request
        goes straight to the aiohttp session under our httpx client: httpx's own
        send path (header merging, cookies, hooks, response streams) cost more
        CPU per delivery than the RSA signature (bench/fanout.py).
        """
        headers = {"Content-Type": ACTIVITY_JSON, "Accept": AS2_ACCEPT,
                   "User-Agent": self._user_agent}  # fmt: skip
        self._check_url(url)
        request = httpx.Request("POST", url, content=body, headers=headers)
        flow = auth.async_auth_flow(request)
        try:
            async with self._deadline("deliver to", url):
                request = await flow.__anext__()
                while True:
                    status, raw_headers, content = await self._send_post(request)
                    response = httpx.Response(status, headers=raw_headers, content=content,
                                              request=request)  # fmt: skip
                    try:
                        request = await flow.asend(response)
                    except StopAsyncIteration:
                        return Answer(status, response.headers, content)
        finally:
            await flow.aclose()

    async def _send_post(
        self, request: httpx.Request
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        async with self._aiohttp().request(
            "POST", str(request.url), data=request.content,
            headers=request.headers.multi_items(), allow_redirects=False,
        ) as response:  # fmt: skip
            content = await self._capped_answer(response)
            return response.status, list(response.raw_headers), content

    async def _capped_answer(self, response: aiohttp.ClientResponse) -> bytes:
        """The answer's body; empty when over the cap (an error page's status is what counts)."""
        declared = response.content_length
        if declared is not None and declared > self.max_bytes:
            return b""
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > self.max_bytes:
                return b""
            chunks.append(chunk)
        return b"".join(chunks)

    async def webfinger(self, username: str, host: str) -> WebfingerResult:
        """Resolve acct:username@host through the host's WebFinger endpoint (RFC 7033).

        Over https; a private host that https does not reach is asked again over http
        (an answer with an error status is final). When neither reaches it, the https
        failure is raised.
        """
        resource = quote(f"acct:{username}@{host}", safe=":@")
        secure, *plain = [f"{base}/.well-known/webfinger?resource={resource}"
                          for base in self.bases_for(host)]  # fmt: skip
        try:
            return await self._jrd(secure)
        except (RemoteStatus, BlockedAddress):
            raise
        except RemoteError as unreachable:
            if not plain:
                raise
            failure = unreachable
        try:
            return await self._jrd(plain[0])
        except (RemoteStatus, BlockedAddress):
            raise
        except RemoteError:
            raise failure from None

    async def _jrd(self, url: str) -> WebfingerResult:
        jrd = await self.get_json(url, accept="application/jrd+json, application/json",
                                  signed=False)  # fmt: skip
        return parse_webfinger(jrd)
