"""Mastodon apps and their OAuth habits, and CORS for browser apps, on SQLite and PostgreSQL.

https://docs.joinmastodon.org/methods/apps/, https://docs.joinmastodon.org/methods/oauth/
(Mastodon 4.3: ``redirect_uris`` as a list, the client_credentials grant, 422 for an app
token where a user must act), RFC 6749 §4.4, and Mastodon's ``config/initializers/cors.rb``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.auth.clients import OOB
from fedisocial.social.accounts import create_user
from tests.c2s_helpers import person
from tests.oauthflow import PASSWORD, Browser, hidden_fields

CALLBACK = "https://app.example/callback"
ORIGIN = "https://elk.example"


@pytest.fixture
async def context(app: Starlette) -> Context:
    context: Context = app.state.context
    await create_user(context.db, context.urls, "alice", PASSWORD)
    return context


async def register(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"client_name": "Test App", "redirect_uris": OOB, "scopes": "read write follow",
            **fields}  # fmt: skip
    answer = await client.post("/api/v1/apps", json=body)
    assert answer.status_code == 200, answer.text
    app: dict[str, Any] = answer.json()
    return app


async def app_token(
    client: httpx.AsyncClient, app: dict[str, Any], **fields: str
) -> httpx.Response:
    return await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app["client_id"],
        "client_secret": app["client_secret"], **fields})  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- POST /api/v1/apps -------------------------------------------------------------------------


async def test_an_app_registers_with_json_and_gets_a_credential_application(
    client: httpx.AsyncClient, context: Context
) -> None:
    # When an app registers two redirect URIs as a JSON list (Mastodon 4.3)
    answer = await client.post("/api/v1/apps", json={
        "client_name": "Elk", "redirect_uris": [CALLBACK, "https://app.example/register"],
        "scopes": "read write push", "website": "https://app.example"})  # fmt: skip
    # Then it gets Mastodon's CredentialApplication
    assert answer.status_code == 200, answer.text
    app = answer.json()
    assert set(app) == {"id", "name", "website", "scopes", "redirect_uri", "redirect_uris",
                        "client_id", "client_secret", "client_secret_expires_at",
                        "vapid_key"}  # fmt: skip
    assert app["name"] == "Elk" and app["website"] == "https://app.example"
    assert app["scopes"] == ["read", "write", "push"]
    assert app["redirect_uris"] == [CALLBACK, "https://app.example/register"]
    assert app["redirect_uri"] == f"{CALLBACK}\nhttps://app.example/register"
    assert app["id"].isdigit() and app["client_secret_expires_at"] == 0
    assert app["vapid_key"] == "" and len(app["client_secret"]) >= 32
    assert answer.headers["cache-control"] == "private, no-store"
    # And the client is stored: its secret works at the token endpoint
    assert (await app_token(client, app)).status_code == 200


async def test_an_app_registers_with_a_form_one_redirect_per_line_or_as_an_array(
    client: httpx.AsyncClient, context: Context
) -> None:
    lines = await client.post("/api/v1/apps", data={
        "client_name": "toot", "redirect_uris": f"{OOB}\ntusky://oauth"})  # fmt: skip
    assert lines.status_code == 200, lines.text
    assert lines.json()["redirect_uris"] == [OOB, "tusky://oauth"]
    # no scopes: Mastodon's default, read; no website: null
    assert lines.json()["scopes"] == ["read"] and lines.json()["website"] is None
    array = await client.post("/api/v1/apps", content=(
        "client_name=Tusky&redirect_uris[]=tusky%3A%2F%2Foauth&redirect_uris[]="
        "https%3A%2F%2Fapp.example%2Fcallback&scopes=read+write"), headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert array.status_code == 200, array.text
    assert array.json()["redirect_uris"] == ["tusky://oauth", CALLBACK]
    assert array.json()["scopes"] == ["read", "write"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"client_name": ""}, "Validation failed: Name can't be blank"),
        ({"client_name": "x" * 61}, "Name is too long (maximum is 60 characters)"),
        ({"redirect_uris": ""}, "Redirect URI can't be blank"),
        ({"redirect_uris": "/relative/path"}, "Redirect URI must be an absolute URI."),
        ({"redirect_uris": f"{CALLBACK}#done"}, "Redirect URI cannot contain a fragment."),
        ({"redirect_uris": f"https://app.example/{'x' * 2000}"}, "Redirect URI is too long"),
        ({"scopes": "read admin:write"}, "Scopes doesn't match configured on the server"),
        ({"website": "not a url"}, "Website is not a valid URL"),
    ],
)
async def test_a_registration_that_cannot_be_used_is_refused_with_422(
    client: httpx.AsyncClient, context: Context, fields: dict[str, str], message: str
) -> None:
    body = {"client_name": "App", "redirect_uris": OOB, **fields}
    answer = await client.post("/api/v1/apps", json=body)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]


async def test_registrations_are_throttled_per_address_like_rfc_7591(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given an address that registered 30 clients today (both ways count)
    for _ in range(29):
        await register(client)
    rfc = await client.post("/oauth/register", json={
        "client_name": "x", "redirect_uris": [CALLBACK]})  # fmt: skip
    assert rfc.status_code == 201, rfc.text
    # When it registers one more
    answer = await client.post("/api/v1/apps", json={"client_name": "x", "redirect_uris": OOB})
    # Then it is asked to wait
    assert answer.status_code == 429
    assert "client registrations" in answer.json()["error"]
    assert int(answer.headers["retry-after"]) > 0


# -- the client_credentials grant and verify_credentials ---------------------------------------


async def test_an_app_token_without_a_user_verifies_its_app(
    client: httpx.AsyncClient, context: Context
) -> None:
    app = await register(client)
    # When the app asks for its own token (client_secret_post, no scope: read)
    answer = await app_token(client, app)
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["token_type"] == "Bearer" and token["scope"] == "read"
    assert isinstance(token["created_at"], int) and "refresh_token" not in token
    # Then verify_credentials names the app, without its secret
    verified = await client.get("/api/v1/apps/verify_credentials",
                                headers=bearer(token["access_token"]))  # fmt: skip
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["name"] == "Test App" and body["id"] == app["id"]
    assert body["client_id"] == app["client_id"] and "client_secret" not in body
    assert body["scopes"] == ["read", "write", "follow"] and body["redirect_uris"] == [OOB]
    assert body["vapid_key"] == ""


async def test_an_app_token_asks_within_its_scopes_with_basic_or_post_credentials(
    client: httpx.AsyncClient, context: Context
) -> None:
    app = await register(client)
    # HTTP Basic works as well, and a scope within the app's is granted as asked
    basic = await client.post("/oauth/token", data={"grant_type": "client_credentials",
                              "scope": "read:statuses write"},
                              auth=(app["client_id"], app["client_secret"]))  # fmt: skip
    assert basic.status_code == 200, basic.text
    assert basic.json()["scope"] == "read:statuses write"
    # a scope beyond the app's is refused
    beyond = await app_token(client, app, scope="read push")
    assert beyond.status_code == 400 and beyond.json()["error"] == "invalid_scope"
    # a wrong secret, or none, is not the app
    wrong = await app_token(client, {**app, "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    public = await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app["client_id"]})  # fmt: skip
    assert public.status_code in (400, 401) and public.json()["error"] == "invalid_client"


async def test_an_app_token_cannot_act_for_a_user(
    client: httpx.AsyncClient, context: Context
) -> None:
    app = await register(client)
    token = (await app_token(client, app, scope="read write")).json()["access_token"]
    # When the app's own token calls methods that act for someone
    for method, path in (("GET", "/api/v1/preferences"),
                         ("GET", "/api/studio/generations/1")):  # fmt: skip
        answer = await client.request(method, path, headers=bearer(token))
        # Then Mastodon's 422
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json() == {"error": "This method requires an authenticated user"}
    # but a scope it lacks is still a 403 first (Mastodon checks scopes, then the user)
    narrow = (await app_token(client, app, scope="write")).json()["access_token"]
    forbidden = await client.get("/api/v1/preferences", headers=bearer(narrow))
    assert forbidden.status_code == 403
    # and public reads stay open to it
    assert (await client.get("/api/v1/instance", headers=bearer(token))).status_code == 200


async def test_verify_credentials_needs_a_valid_token_of_any_kind(
    client: httpx.AsyncClient, context: Context
) -> None:
    none = await client.get("/api/v1/apps/verify_credentials")
    assert none.status_code == 401
    assert none.json() == {"error": "The access token is invalid"}
    assert "invalid_token" in none.headers["www-authenticate"]
    bad = await client.get("/api/v1/apps/verify_credentials", headers=bearer("nope"))
    assert bad.status_code == 401
    # a user's token (from `fedisocial token create`) names the app it was made under
    bob = await person(context, "bob", scope="write")
    mine = await client.get("/api/v1/apps/verify_credentials", headers=bob.auth)
    assert mine.status_code == 200 and mine.json()["name"] == "bob's script"
    # a revoked token is refused
    app = await register(client)
    token = (await app_token(client, app)).json()["access_token"]
    revoked = await client.post("/oauth/revoke", data={
        "token": token, "client_id": app["client_id"],
        "client_secret": app["client_secret"]})  # fmt: skip
    assert revoked.status_code == 200
    gone = await client.get("/api/v1/apps/verify_credentials", headers=bearer(token))
    assert gone.status_code == 401


# -- the authorization-code flow as Mastodon apps drive it -------------------------------------


async def signed_in(client: httpx.AsyncClient) -> Browser:
    browser = Browser(client)
    assert (await browser.sign_in()).status_code == 303
    return browser


async def test_an_oob_app_gets_a_code_to_copy_and_exchanges_it_with_its_secret(
    client: httpx.AsyncClient, context: Context
) -> None:
    app = await register(client)
    browser = await signed_in(client)
    # When alice allows the app (Mastodon.py's parameters: force_login, lang, state None)
    params = {"client_id": app["client_id"], "response_type": "code", "redirect_uri": OOB,
              "scope": "read write", "force_login": "False", "state": "None",
              "lang": "None"}  # fmt: skip
    page = await browser.consent_page(params)
    assert page.status_code == 200 and "Test App" in page.text
    shown = await client.post("/oauth/authorize", data={
        **hidden_fields(page.text), "decision": "allow"})  # fmt: skip
    # Then the code is shown to copy
    assert shown.status_code == 200 and "Copy this code" in shown.text
    code = shown.text.split('id="oob-code" class="auth-code" value="')[1].split('"')[0]
    # And the app exchanges it with its secret in a JSON body, repeating the scope
    answer = await client.post("/oauth/token", json={
        "grant_type": "authorization_code", "code": code, "redirect_uri": OOB,
        "client_id": app["client_id"], "client_secret": app["client_secret"],
        "scope": "read write"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["scope"] == "read write" and isinstance(token["created_at"], int)
    # the token is alice's: user methods work, within its scopes
    prefs = await client.get("/api/v1/preferences", headers=bearer(token["access_token"]))
    assert prefs.status_code == 200, prefs.text
    # and the same code does not work twice
    again = await client.post("/oauth/token", json={
        "grant_type": "authorization_code", "code": code, "redirect_uri": OOB,
        "client_id": app["client_id"], "client_secret": app["client_secret"]})  # fmt: skip
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_a_redirecting_app_gets_its_code_and_no_scope_means_read(
    client: httpx.AsyncClient, context: Context
) -> None:
    app = await register(client, redirect_uris=[CALLBACK, "tusky://oauth"])
    browser = await signed_in(client)
    params = {"client_id": app["client_id"], "response_type": "code",
              "redirect_uri": "tusky://oauth", "state": "s1"}  # fmt: skip
    code = await browser.code(params)
    # the form body, client_secret_post, scope repeated (and ignored: the code's counts)
    answer = await client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "tusky://oauth",
        "client_id": app["client_id"], "client_secret": app["client_secret"],
        "scope": "read write follow"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "read"
    # a redirect URI the app did not register is refused at the authorization endpoint
    stranger = await browser.consent_page({**params, "redirect_uri": "https://evil.example/"})
    assert stranger.status_code == 400


async def test_an_app_cannot_be_granted_more_than_it_registered(
    client: httpx.AsyncClient, context: Context
) -> None:
    app = await register(client, scopes="read")
    browser = await signed_in(client)
    page = await browser.consent_page({"client_id": app["client_id"], "response_type": "code",
                                       "redirect_uri": OOB, "scope": "read write"})  # fmt: skip
    assert page.status_code == 400 and "scope" in page.text


# -- CORS -------------------------------------------------------------------------------------


async def test_a_browser_app_preflight_is_answered_without_credentials(
    client: httpx.AsyncClient, context: Context
) -> None:
    asked = "authorization, content-type, idempotency-key"
    for path, method in (("/api/v1/statuses", "POST"), ("/api/v1/apps", "POST"),
                         ("/oauth/token", "POST"), ("/oauth/revoke", "POST"),
                         ("/api/v1/timelines/home", "GET")):  # fmt: skip
        answer = await client.options(path, headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": asked})  # fmt: skip
        assert answer.status_code == 200, (path, answer.text)
        assert answer.content == b""
        assert answer.headers["access-control-allow-origin"] == "*"
        assert method in answer.headers["access-control-allow-methods"]
        assert answer.headers["access-control-allow-headers"] == asked
        assert int(answer.headers["access-control-max-age"]) > 0
        assert "access-control-allow-credentials" not in answer.headers
        # the security headers are kept
        assert answer.headers["x-content-type-options"] == "nosniff"
    api = await client.options("/api/v1/apps", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"})  # fmt: skip
    assert "Link" in api.headers["access-control-expose-headers"]


async def test_cors_answers_expose_link_and_rate_limits_and_stay_off_other_paths(
    client: httpx.AsyncClient, context: Context
) -> None:
    # an API answer, an error one too, is readable from any origin
    ok = await client.get("/api/v1/instance", headers={"Origin": ORIGIN})
    assert ok.headers["access-control-allow-origin"] == "*"
    exposed = ok.headers["access-control-expose-headers"]
    assert "Link" in exposed and "X-RateLimit-Remaining" in exposed
    assert "access-control-allow-credentials" not in ok.headers
    assert ok.headers["content-security-policy"].startswith("default-src 'none'")
    refused = await client.get("/api/v1/apps/verify_credentials", headers={"Origin": ORIGIN})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"
    for path in ("/.well-known/nodeinfo", "/nodeinfo/2.0"):
        answer = await client.get(path, headers={"Origin": ORIGIN})
        assert answer.headers["access-control-allow-origin"] == "*"
    # a method /oauth/token does not take across origins gets no permission
    delete = await client.options("/oauth/token", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"})  # fmt: skip
    assert "access-control-allow-origin" not in delete.headers
    # pages with cookies (sign-in, consent) are same-origin only
    for path in ("/auth/sign_in", "/oauth/authorize"):
        page = await client.options(path, headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})  # fmt: skip
        assert "access-control-allow-origin" not in page.headers
    sign_in = await client.get("/auth/sign_in", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in sign_in.headers


async def test_oauth_metadata_names_the_client_credentials_grant(
    client: httpx.AsyncClient, context: Context
) -> None:
    metadata = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert "client_credentials" in metadata["grant_types_supported"]
