"""How clients are known: a client id that is the URL of a metadata document or ActivityPub
``Application`` (FEP-d8c2, OAuth Client ID Metadata Document), an id we cannot fetch (loopback
redirects only, RFC 8252 §7.3), and dynamic registration (RFC 7591); and the token endpoint's
throttle. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fedisocial.app import Context
from fedisocial.auth.clients import is_loopback_redirect, read_client_document, redirect_allowed
from fedisocial.config import Settings, load_settings
from fedisocial.errors import InvalidDocument
from fedisocial.social.accounts import create_user
from fedisocial.store.models import OAuthClient
from tests.loopback import serve
from tests.oauthflow import PASSWORD, Browser, code_params, pkce, query_of


@pytest.fixture
async def browser(app: Starlette, client: httpx.AsyncClient) -> Browser:
    context: Context = app.state.context
    await create_user(context.db, context.urls, "alice", PASSWORD)
    person = Browser(client)
    assert (await person.sign_in()).status_code == 303
    return person


@pytest.fixture
async def documents() -> AsyncIterator[tuple[str, dict[str, dict[str, Any]]]]:
    """A loopback web server of client documents: (its base URL, path → document)."""
    served: dict[str, dict[str, Any]] = {}

    async def document(request: Request) -> JSONResponse:
        return JSONResponse(served[request.url.path], media_type="application/activity+json")

    app = Starlette(routes=[Route("/{name:path}", document)])
    async with serve(app) as base_url:
        yield base_url, served


# -- a URL as client id ----------------------------------------------------------------------------


async def test_an_application_document_names_the_client_and_its_redirect(
    browser: Browser, documents: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    # Given an app whose id is the URL of its ActivityPub Application (FEP-d8c2)
    base_url, served = documents
    client_id = f"{base_url}/app.jsonld"
    served["/app.jsonld"] = {
        "@context": "https://www.w3.org/ns/activitystreams", "type": "Application",
        "id": client_id, "name": "Pinhole", "url": "https://pinhole.example/",
        "redirectURI": "https://pinhole.example/callback",
    }  # fmt: skip
    verifier, challenge = pkce()
    # When alice opens its authorization request
    page = await browser.consent_page(
        code_params(client_id, "https://pinhole.example/callback", challenge, scope="read")
    )
    # Then the consent page names it, its website and where it goes back to, without warning
    assert page.status_code == 200, page.text
    assert "Pinhole</span> asks to use your account" in page.text
    assert "https://pinhole.example/callback" in page.text and "unverified" not in page.text
    # and another redirect URI is refused on our page, not sent anywhere (RFC 6749 §4.1.2.1)
    other = await browser.consent_page(
        code_params(client_id, "https://attacker.example/cb", challenge),
    )
    assert other.status_code == 400 and "not supported by client" in other.text
    assert "location" not in other.headers
    # and the whole flow works
    code = await browser.code(code_params(client_id, "https://pinhole.example/callback",
                                          challenge))  # fmt: skip
    token = await browser.http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id,
        "redirect_uri": "https://pinhole.example/callback", "code_verifier": verifier})  # fmt: skip
    assert token.status_code == 200, token.text


async def test_a_client_metadata_document_is_read_too(
    browser: Browser, documents: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    base_url, served = documents
    client_id = f"{base_url}/cimd.json"
    served["/cimd.json"] = {"client_id": client_id, "client_name": "Lens",
                            "client_uri": "https://lens.example/",
                            "redirect_uris": ["http://127.0.0.1/callback"]}  # fmt: skip
    _, challenge = pkce()
    # a registered loopback redirect matches on any port (RFC 8252 §7.3)
    page = await browser.consent_page(code_params(client_id, "http://127.0.0.1:49152/callback",
                                                  challenge))  # fmt: skip
    assert page.status_code == 200 and "Lens</span>" in page.text
    wrong_path = await browser.consent_page(code_params(client_id, "http://127.0.0.1:5/other",
                                                        challenge))  # fmt: skip
    assert wrong_path.status_code == 400


@pytest.mark.parametrize("redirect", [
    "http://127.0.0.1:63546/callback", "http://127.0.0.1:1/x", "http://localhost:8123/cb",
    "http://[::1]:4000/cb",
])  # fmt: skip
async def test_an_unfetchable_client_may_use_loopback_redirects_on_any_port(
    browser: Browser, redirect: str
) -> None:
    # Given the `ap` client, whose document cannot be fetched here (no internet)
    _, challenge = pkce()
    page = await browser.consent_page(
        code_params("https://evanp.github.io/ap/client.jsonld", redirect, challenge)
    )
    # Then the consent page shows the raw client id with a clear warning
    assert page.status_code == 200, page.text
    assert "We could not check who made this app" in page.text
    assert "https://evanp.github.io/ap/client.jsonld" in page.text


@pytest.mark.parametrize("redirect", [
    "https://evil.example/cb", "http://evil.example:8080/cb", "myapp://cb",
    "urn:ietf:wg:oauth:2.0:oob", "http://127.0.0.1.evil.example/cb",
])  # fmt: skip
async def test_an_unfetchable_client_may_not_use_other_redirects(
    browser: Browser, redirect: str
) -> None:
    _, challenge = pkce()
    page = await browser.consent_page(code_params("https://client.invalid/app.json", redirect,
                                                  challenge))  # fmt: skip
    assert page.status_code == 400 and "location" not in page.headers


async def test_a_document_with_another_id_is_not_trusted(
    browser: Browser, documents: tuple[str, dict[str, dict[str, Any]]]
) -> None:
    base_url, served = documents
    client_id = f"{base_url}/liar.json"
    served["/liar.json"] = {"id": "https://trusted.example/app", "name": "Trusted",
                            "redirectURI": "https://attacker.example/cb"}  # fmt: skip
    _, challenge = pkce()
    page = await browser.consent_page(code_params(client_id, "https://attacker.example/cb",
                                                  challenge))  # fmt: skip
    assert page.status_code == 400  # treated as unfetchable: loopback redirects only


async def test_an_unknown_client_id_that_is_no_url_is_refused(browser: Browser) -> None:
    _, challenge = pkce()
    page = await browser.consent_page(code_params("nobody", "https://x.example/cb", challenge))
    assert page.status_code == 400 and "does not exist" in page.text


def test_redirect_rules() -> None:
    loopback = OAuthClient(client_id="https://x.example/app", kind="loopback", redirect_uris=[])
    registered = OAuthClient(
        client_id="r",
        kind="registered",
        redirect_uris=["https://app.example/cb", "http://localhost/cb"],
    )
    assert redirect_allowed(loopback, "http://127.0.0.2:9/cb")  # all of 127/8 is loopback
    assert not redirect_allowed(loopback, "https://127.0.0.1/cb")
    assert not redirect_allowed(loopback, "http://127.0.0.1:99999/cb")
    assert redirect_allowed(registered, "https://app.example/cb")
    assert not redirect_allowed(registered, "https://app.example/cb/")
    assert redirect_allowed(registered, "http://localhost:7777/cb")
    assert not is_loopback_redirect("http://localhost.evil.example/cb")


def test_client_documents_are_checked() -> None:
    url = "https://app.example/client.json"
    info = read_client_document(url, {"id": url, "nameMap": {"en": "App"},
                                      "redirectURI": ["https://app.example/a"]})  # fmt: skip
    assert info.name == "App" and info.redirect_uris == ["https://app.example/a"]
    for bad in ({"id": url}, {"client_id": url, "redirect_uris": ["https://a.example"],
                              "token_endpoint_auth_method": "client_secret_basic"}):  # fmt: skip
        with pytest.raises(InvalidDocument):
            read_client_document(url, bad)


# -- registration (RFC 7591) ---------------------------------------------------------------------


async def test_a_public_client_registers_and_gets_no_secret(browser: Browser) -> None:
    registered = await browser.http.post("/oauth/register", json={
        "client_name": "Native", "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none", "scope": "read write"})  # fmt: skip
    assert registered.status_code == 201
    info = registered.json()
    assert "client_secret" not in info and info["client_name"] == "Native"
    verifier, challenge = pkce()
    code = await browser.code(code_params(info["client_id"], "http://127.0.0.1:4242/callback",
                                          challenge, scope="write"))  # fmt: skip
    token = await browser.http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": info["client_id"],
        "redirect_uri": "http://127.0.0.1:4242/callback", "code_verifier": verifier})  # fmt: skip
    assert token.status_code == 200 and token.json()["scope"] == "write"
    # it may not ask for more than it registered
    _, challenge = pkce()
    wider = await browser.consent_page(code_params(info["client_id"],
                                                   "http://127.0.0.1:1/callback", challenge,
                                                   scope="read push"))  # fmt: skip
    assert query_of(wider.headers["location"])["error"] == "invalid_scope"


@pytest.mark.parametrize("metadata", [
    {"client_name": "x", "redirect_uris": ["not a url"]},
    {"client_name": "x", "redirect_uris": ["https://x.example/cb"], "scope": "read admin"},
    {"client_name": "x", "redirect_uris": ["https://x.example/cb"],
     "token_endpoint_auth_method": "private_key_jwt"},
])  # fmt: skip
async def test_bad_registrations_are_refused(
    client: httpx.AsyncClient, app: Starlette, metadata: dict[str, Any]
) -> None:
    answer = await client.post("/oauth/register", json=metadata)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_client_metadata"


# -- throttling ------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """As conftest's, with one free sign-in attempt (four per address)."""
    return load_settings(tmp_path / "none.toml", environ={
        "FEDISOCIAL_BASE_URL": "http://127.0.0.1:8000", "FEDISOCIAL_DATA_DIR": str(tmp_path),
        "FEDISOCIAL_ALLOW_PRIVATE_NETWORKS": "true", "FEDISOCIAL_SIGN_IN_FREE_ATTEMPTS": "1",
    })  # fmt: skip


async def test_the_token_endpoint_is_throttled_per_address(browser: Browser) -> None:
    # Given four failed exchanges from one address (guessed codes)
    guess = {"grant_type": "authorization_code", "code": "guess", "client_id": "nobody",
             "redirect_uri": "https://x.example/cb", "code_verifier": "v" * 43}  # fmt: skip
    for _ in range(4):
        assert (await browser.http.post("/oauth/token", data=guess)).status_code in (400, 401)
    # When it tries again at once
    answer = await browser.http.post("/oauth/token", data=guess)
    # Then it must wait, and is told how long
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1
    assert "too many failed token requests" in answer.json()["error"]


async def test_registration_is_throttled_per_address(browser: Browser) -> None:
    # Given an address that registered 30 clients today (what Mastodon allows in 5 minutes)
    metadata = {"client_name": "Bot", "redirect_uris": ["http://127.0.0.1/callback"],
                "token_endpoint_auth_method": "none"}  # fmt: skip
    for _ in range(30):
        assert (await browser.http.post("/oauth/register", json=metadata)).status_code == 201
    # When it registers one more
    answer = await browser.http.post("/oauth/register", json=metadata)
    # Then it must wait, is told how long, and nothing was registered
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1
    assert "too many client registrations from this address" in answer.json()["error"]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/register", "/oauth/revoke"])
async def test_an_oversized_body_is_refused_with_413(
    client: httpx.AsyncClient, app: Starlette, path: str
) -> None:
    # When a machine endpoint gets a body over 64 KiB
    answer = await client.post(path, content=b"x" * 70_000,
                               headers={"content-type": "application/json"})  # fmt: skip
    # Then it is refused as too large, saying the bound
    assert answer.status_code == 413
    assert "can have at most 65536 bytes" in answer.json()["error"]
