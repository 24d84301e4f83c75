"""The outbound client: signed GETs another library verifies, caps, single-flight."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpsig
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fedisocial.ap import httpsig as ours
from fedisocial.ap.client import FederationClient
from fedisocial.errors import InvalidDocument, RemoteError, RemoteStatus
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
