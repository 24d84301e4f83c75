"""The outbound client: signed GETs another library verifies, caps, single-flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpsig
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fedisocial.ap import httpsig as ours
from fedisocial.ap.client import FederationClient
from fedisocial.errors import BlockedAddress, InvalidDocument, RemoteError, RemoteStatus
from tests.conftest import free_port
from tests.loopback import serve

KEY = ours.generate_rsa_key()
KEY_ID = "https://social.example/actor#main-key"
PUBLIC_PEM = ours.public_key_to_pem(KEY.public_key())


def make_client(max_bytes: int = 1_000_000) -> FederationClient:
    return FederationClient(
        allow_private=True, timeout=5, max_bytes=max_bytes,
        user_agent_url="https://social.example", auth=ours.HttpSignatureAuth(KEY_ID, KEY),
    )  # fmt: skip


def remote_server(hits: list[Request]) -> Starlette:
    async def actor(request: Request) -> Response:
        hits.append(request)
        await asyncio.sleep(0.05)
        return JSONResponse({"id": str(request.url), "type": "Person"})

    async def big(request: Request) -> Response:
        return Response(b"{" + b" " * 5000 + b"}", media_type="application/json")

    async def missing(request: Request) -> Response:
        return JSONResponse({"error": "gone"}, status_code=404)

    async def not_json(request: Request) -> Response:
        return Response("<html>", media_type="text/html")

    async def hop(request: Request) -> Response:
        return Response(status_code=302, headers={"Location": "/users/alice"})

    return Starlette(routes=[
        Route("/users/alice", actor), Route("/big", big), Route("/missing", missing),
        Route("/html", not_json), Route("/redirect", hop),
    ])  # fmt: skip


async def test_signed_get_verifies_with_an_independent_library() -> None:
    """draft-cavage-12 §2.1: GET signed over (request-target) host date."""
    hits: list[Request] = []
    async with serve(remote_server(hits)) as base:
        client = make_client()
        try:
            doc = await client.get_json(f"{base}/users/alice")
        finally:
            await client.aclose()
    assert doc["type"] == "Person"
    (request,) = hits
    headers = dict(request.headers)
    assert "application/activity+json" in headers["accept"]
    assert headers["user-agent"].startswith("fedisocial/")
    # The `httpsig` package (not ours) accepts the signature ...
    verifier = httpsig.HeaderVerifier(
        headers=headers, secret=PUBLIC_PEM.encode(), method="GET", path="/users/alice",
        host=urlsplit(base).netloc, required_headers=["(request-target)", "host", "date"],
        sign_header="signature",
    )  # fmt: skip
    assert verifier.verify()
    # ... and so does ours, naming the key that signed
    parsed = ours.parse_signature("GET", f"{base}/users/alice", headers)
    assert parsed.key_id == KEY_ID


async def test_concurrent_fetches_of_one_url_share_one_request() -> None:
    hits: list[Request] = []
    async with serve(remote_server(hits)) as base:
        client = make_client()
        try:
            docs = await asyncio.gather(
                *(client.get_json(f"{base}/users/alice") for _ in range(20))
            )
        finally:
            await client.aclose()
    assert len(docs) == 20 and len(hits) == 1


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/big", RemoteError, "larger than 1000 bytes"),
        ("/missing", RemoteStatus, "answered HTTP 404"),
        ("/html", InvalidDocument, "did not return JSON"),
    ],
)
async def test_bad_answers_become_clear_errors(
    path: str, error: type[Exception], message: str
) -> None:
    async with serve(remote_server([])) as base:
        client = make_client(max_bytes=1000)
        try:
            with pytest.raises(error, match=message):
                await client.get_json(base + path)
        finally:
            await client.aclose()


async def test_redirects_are_followed_and_still_signed() -> None:
    hits: list[Request] = []
    async with serve(remote_server(hits)) as base:
        client = make_client()
        try:
            doc = await client.get_json(f"{base}/redirect")
        finally:
            await client.aclose()
    assert doc["id"].endswith("/users/alice")
    assert "signature" in hits[0].headers


# -- deadlines and network errors ---------------------------------------------------


class Dribbler:
    """A raw TCP server that sends its answer one byte at a time, a tenth of a second apart.

    With ``head_first`` the status line and headers come at once and only the
    body dribbles; otherwise the headers dribble too. ``closed`` is set when the
    client hangs up.
    """

    def __init__(self, *, head_first: bool) -> None:
        self.head_first = head_first
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 99999\r\n\r\n"
        try:
            await reader.readuntil(b"\r\n\r\n")
            if self.head_first:
                writer.write(head)
                head = b""
            while True:
                byte, head = head[:1] or b" ", head[1:]
                writer.write(byte)
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(65536), 0.1) == b"":
                        return  # the client hung up
        except ConnectionError:
            return
        finally:
            self.closed.set()
            writer.close()


@asynccontextmanager
async def dribbling(*, head_first: bool) -> AsyncIterator[tuple[Dribbler, str]]:
    dribbler = Dribbler(head_first=head_first)
    server = await asyncio.start_server(dribbler.handle, "127.0.0.1", 0)
    try:
        yield dribbler, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


def short_deadline_client() -> FederationClient:
    return FederationClient(allow_private=True, timeout=0.5, max_bytes=1_000_000,
                            user_agent_url="https://social.example")  # fmt: skip


async def get(client: FederationClient, url: str) -> None:
    await client.get_json(url)


async def post(client: FederationClient, url: str) -> None:
    await client.post(url, b"{}", ours.HttpSignatureAuth(KEY_ID, KEY))


@pytest.mark.parametrize("send", [get, post])
@pytest.mark.parametrize("head_first", [True, False], ids=["slow-body", "slow-headers"])
async def test_a_dribbling_server_cannot_hold_a_request_past_the_deadline(
    send: Callable[[FederationClient, str], Awaitable[None]], head_first: bool
) -> None:
    # Given a server that answers one byte every 0.1 s, forever
    async with dribbling(head_first=head_first) as (dribbler, base):
        client = short_deadline_client()
        try:
            # When we fetch from it (or deliver to it) with a 0.5 s deadline
            # (wait_for only keeps a broken client from hanging the test)
            with pytest.raises(RemoteError) as raised:
                await asyncio.wait_for(send(client, f"{base}/users/slow"), 30)
            # Then the request fails, saying why
            assert f"{base}/users/slow" in str(raised.value)
            assert "timed out after 0.5 s (the server took longer than 0.5 s)" in str(raised.value)
            # and our side hung up: the server is not left holding the connection
            await asyncio.wait_for(dribbler.closed.wait(), 30)
        finally:
            await client.aclose()


@asynccontextmanager
async def plain_http_port() -> AsyncIterator[int]:
    async with serve(remote_server([])) as base:
        yield int(base.rsplit(":", 1)[1])


@pytest.mark.parametrize("send", [get, post])
async def test_network_errors_say_what_happened(
    send: Callable[[FederationClient, str], Awaitable[None]],
) -> None:
    client = short_deadline_client()
    verb = "could not fetch" if send is get else "could not deliver to"
    try:
        # A port nobody listens on
        closed = f"http://127.0.0.1:{free_port()}/inbox"
        with pytest.raises(RemoteError, match=f"^{verb} {closed}: connection refused$"):
            await send(client, closed)
        # A name that cannot resolve (RFC 6761 §6.4: .invalid never does)
        nowhere = "http://nowhere.invalid/inbox"
        with pytest.raises(RemoteError, match=f"^{verb} {nowhere}: no such host nowhere.invalid$"):
            await send(client, nowhere)
        # TLS spoken to a plain-HTTP port
        async with plain_http_port() as port:
            tls = f"https://127.0.0.1:{port}/inbox"
            with pytest.raises(RemoteError, match=rf"^{verb} {tls}: TLS error \(\w+"):
                await send(client, tls)
        # A URL that is not http(s) at all
        with pytest.raises(BlockedAddress, match=r"^refusing example\.com/inbox: only https URLs"):
            await send(client, "example.com/inbox")
    finally:
        await client.aclose()


def test_well_known_documents_are_looked_for_over_https_first() -> None:
    # RFC 7033 §4: WebFinger is https; plain http only where private networks are allowed
    assert make_client().bases_for("social.example") == ["https://social.example"]
    assert make_client().bases_for("127.0.0.1:8001") == [
        "https://127.0.0.1:8001", "http://127.0.0.1:8001"]  # fmt: skip
    strict = FederationClient(allow_private=False, timeout=5, max_bytes=1000,
                              user_agent_url="https://social.example")  # fmt: skip
    assert strict.bases_for("127.0.0.1:8001") == ["https://127.0.0.1:8001"]


async def test_webfinger_of_a_private_host_tries_https_then_http() -> None:
    async def finger(request: Request) -> Response:
        host = request.url.netloc
        return JSONResponse({"subject": f"acct:alice@{host}", "links": [
            {"rel": "self", "type": "application/activity+json",
             "href": f"http://{host}/users/alice"}]})  # fmt: skip

    async def nobody(request: Request) -> Response:
        return JSONResponse({"error": "no such account"}, status_code=404)

    client = make_client()
    try:
        # Given an instance on loopback that speaks plain http: found after https fails
        app = Starlette(routes=[Route("/.well-known/webfinger", finger)])
        async with serve(app) as base:
            found = await client.webfinger("alice", urlsplit(base).netloc)
            assert found.actor_url == f"{base}/users/alice"
        # and one that answers 404 over http is not found (the answer is final)
        async with serve(Starlette(routes=[Route("/.well-known/webfinger", nobody)])) as base:
            with pytest.raises(RemoteStatus):
                await client.webfinger("alice", urlsplit(base).netloc)
        # When nothing listens, the https attempt's failure is what is said
        netloc = f"127.0.0.1:{free_port()}"
        with pytest.raises(RemoteError, match=rf"^could not fetch https://{netloc}/"):
            await client.webfinger("alice", netloc)
    finally:
        await client.aclose()
