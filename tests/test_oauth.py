"""The OAuth 2.0 server: the authorization-code flow with PKCE and its failures, on SQLite
and PostgreSQL. RFC 6749 (OAuth 2.0), RFC 7636 (PKCE), RFC 6750 (Bearer), RFC 7009
(revocation), RFC 8414 (metadata), FEP-d8c2 (ActivityPub API client ids)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import httpx2  # what Authlib's client is built on, when installed
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from requests_oauthlib import OAuth2Session
from sqlalchemy import update
from starlette.applications import Starlette

from fedisocial.app import Context, create_app
from fedisocial.auth.clients import OOB
from fedisocial.config import load_settings
from fedisocial.social.accounts import create_user
from fedisocial.store.db import Database
from fedisocial.store.models import OAuthCode, OAuthToken, utcnow
from tests.loopback import serve
from tests.oauthflow import PASSWORD, Browser, code_params, hidden_fields, pkce, query_of

AP_CLIENT = "https://evanp.github.io/ap/client.jsonld"
AP_REDIRECT = "http://localhost:63546/callback"
MISSING = "/api/studio/generations/999999"  # needs a signed-in user; 404 once signed in


@pytest.fixture
async def context(app: Starlette) -> Context:
    context: Context = app.state.context
    await create_user(context.db, context.urls, "alice", PASSWORD)
    await create_user(context.db, context.urls, "bob", PASSWORD)
    return context


@pytest.fixture
async def browser(client: httpx.AsyncClient, context: Context) -> Browser:
    person = Browser(client)
    signed_in = await person.sign_in()
    assert signed_in.status_code == 303
    return person


async def exchange(
    client: httpx.AsyncClient, code: str, verifier: str, client_id: str = AP_CLIENT,
    redirect_uri: str = AP_REDIRECT,
) -> httpx.Response:  # fmt: skip
    return await client.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id,
        "redirect_uri": redirect_uri, "code_verifier": verifier})  # fmt: skip


async def tokens_for(browser: Browser, scope: str = "read write") -> dict[str, str]:
    verifier, challenge = pkce()
    code = await browser.code(code_params(AP_CLIENT, AP_REDIRECT, challenge, scope=scope))
    answer = await exchange(browser.http, code, verifier)
    assert answer.status_code == 200, answer.text
    tokens: dict[str, str] = answer.json()
    return tokens


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the whole flow, driven by independent client libraries ---------------------------------------


async def test_the_ap_clients_login_with_requests_oauthlib_over_http(
    app: Starlette, context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a live server, and the `ap` client's OAuth library (requests-oauthlib) with its
    # client id (unreachable here) and loopback redirect, as `ap login` does it
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # http on loopback
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        meta = {key: value.replace("http://127.0.0.1:8000", base_url)  # our base_url is :8000
                for key, value in (await http.get("/.well-known/oauth-authorization-server"))
                .json().items() if key.endswith("endpoint")}  # fmt: skip
        session = OAuth2Session(AP_CLIENT, redirect_uri=AP_REDIRECT, scope="read write")
        verifier, challenge = pkce()
        url, state = session.authorization_url(meta["authorization_endpoint"],
                                               code_challenge=challenge,
                                               code_challenge_method="S256")  # fmt: skip
        # When alice signs in and allows it in her browser
        person = Browser(http)
        await person.sign_in()
        page = await http.get(url)
        assert "An unverified app" in page.text and AP_CLIENT in page.text
        answer = await http.post(
            "/oauth/authorize", data={**hidden_fields(page.text), "decision": "allow"}
        )
        callback = answer.headers["location"].replace("http://localhost", "https://localhost")
        # and the client exchanges the code with its verifier
        token = await asyncio.to_thread(
            session.fetch_token, meta["token_endpoint"], authorization_response=callback,
            code_verifier=verifier, include_client_id=True,
        )  # fmt: skip
        # Then it has a Bearer token for alice with the scopes it asked for, exactly
        assert token["token_type"] == "Bearer" and token["scope"] == ["read", "write"]
        assert session._state == state  # the state came back
        used = await http.get(MISSING, headers=bearer(token["access_token"]))
        assert used.status_code == 404  # signed in: the image request is just not there
        # and its refresh token gives a new pair
        fresh = await asyncio.to_thread(session.refresh_token, meta["token_endpoint"],
                                        client_id=AP_CLIENT)  # fmt: skip
        assert fresh["access_token"] != token["access_token"]


async def test_a_registered_confidential_client_with_authlib(
    app: Starlette, client: httpx.AsyncClient, browser: Browser
) -> None:
    # Given a client registered dynamically (RFC 7591), confidential (client_secret_basic)
    registered = await client.post("/oauth/register", json={
        "client_name": "Desk", "redirect_uris": ["https://desk.example/callback"],
        "scope": "read write", "client_uri": "https://desk.example/"})  # fmt: skip
    assert registered.status_code == 201, registered.text
    info = registered.json()
    assert info["client_secret"] and info["token_endpoint_auth_method"] == "client_secret_basic"
    # and Authlib's OAuth client (another implementation than our server's) using S256
    oauth = AsyncOAuth2Client(
        info["client_id"], info["client_secret"], scope="write",
        redirect_uri="https://desk.example/callback", code_challenge_method="S256",
        transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1:8000",
    )  # fmt: skip
    verifier, _ = pkce()
    url, state = oauth.create_authorization_url("http://127.0.0.1:8000/oauth/authorize",
                                                code_verifier=verifier)  # fmt: skip
    # When alice allows it
    page = await browser.http.get(url)
    assert "Desk" in page.text and "https://desk.example/callback" in page.text
    answer = await browser.http.post(
        "/oauth/authorize", data={**hidden_fields(page.text), "decision": "allow"}
    )
    token = await oauth.fetch_token("http://127.0.0.1:8000/oauth/token",
                                    authorization_response=answer.headers["location"],
                                    code_verifier=verifier)  # fmt: skip
    # Then its token works, and after revocation (RFC 7009) it does not
    assert token["scope"] == "write" and query_of(answer.headers["location"])["state"] == state
    assert (await oauth.get(MISSING)).status_code == 404
    revoked = await oauth.revoke_token("http://127.0.0.1:8000/oauth/revoke",
                                       token=token["access_token"])  # fmt: skip
    assert revoked.status_code == 200
    after = await client.get(MISSING, headers=bearer(token["access_token"]))
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["www-authenticate"]
    await oauth.aclose()


# -- scopes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("asked", "answered"), [
    ("write read", "write read"), ("read write follow push", "read write follow push"),
    ("read:statuses write:media", "read:statuses write:media"), (None, "read"),
])  # fmt: skip
async def test_the_token_answer_echoes_the_scope_as_asked(
    browser: Browser, asked: str | None, answered: str
) -> None:
    verifier, challenge = pkce()
    params = code_params(AP_CLIENT, AP_REDIRECT, challenge)
    if asked is not None:
        params["scope"] = asked
    code = await browser.code(params)
    answer = await exchange(browser.http, code, verifier)
    assert answer.json()["scope"] == answered


async def test_an_unknown_scope_goes_back_to_the_client_as_invalid_scope(browser: Browser) -> None:
    _, challenge = pkce()
    page = await browser.consent_page(code_params(AP_CLIENT, AP_REDIRECT, challenge,
                                                  scope="read admin:write"))  # fmt: skip
    assert page.status_code == 302
    assert query_of(page.headers["location"])["error"] == "invalid_scope"


async def test_a_token_without_the_scope_gets_403_insufficient_scope(browser: Browser) -> None:
    # Given a read-only token
    tokens = await tokens_for(browser, scope="read")
    # When it uploads an image (write:media)
    upload = await browser.http.post("/api/studio/media", headers=bearer(tokens["access_token"]),
                                     files={"file": ("a.png", b"x", "image/png")})  # fmt: skip
    # Then 403 says which scope it lacks (RFC 6750 §3.1)
    assert upload.status_code == 403
    challenge = upload.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="write:media"' in challenge


async def test_write_implies_its_granular_scopes(browser: Browser) -> None:
    tokens = await tokens_for(browser, scope="write")
    status = await browser.http.get(MISSING, headers=bearer(tokens["access_token"]))
    assert status.status_code == 404  # write covers write:media


# -- codes -------------------------------------------------------------------------------------


async def test_a_wrong_verifier_is_refused(browser: Browser) -> None:
    _, challenge = pkce()
    code = await browser.code(code_params(AP_CLIENT, AP_REDIRECT, challenge))
    other, _ = pkce()
    answer = await exchange(browser.http, code, other)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


async def test_a_missing_verifier_is_refused(browser: Browser) -> None:
    _, challenge = pkce()
    code = await browser.code(code_params(AP_CLIENT, AP_REDIRECT, challenge))
    answer = await browser.http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": AP_CLIENT,
        "redirect_uri": AP_REDIRECT})  # fmt: skip
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


async def test_a_reused_code_is_refused_and_revokes_the_tokens_it_gave(browser: Browser) -> None:
    # Given a code exchanged once
    verifier, challenge = pkce()
    code = await browser.code(code_params(AP_CLIENT, AP_REDIRECT, challenge))
    first = await exchange(browser.http, code, verifier)
    assert first.status_code == 200
    # When it is exchanged again (RFC 6749 §4.1.2)
    second = await exchange(browser.http, code, verifier)
    # Then it is refused, and the first token stops working
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    used = await browser.http.get(MISSING, headers=bearer(first.json()["access_token"]))
    assert used.status_code == 401


async def test_a_wrong_redirect_uri_at_the_token_endpoint_is_refused(browser: Browser) -> None:
    verifier, challenge = pkce()
    code = await browser.code(code_params(AP_CLIENT, AP_REDIRECT, challenge))
    answer = await exchange(browser.http, code, verifier,
                            redirect_uri="http://localhost:63546/elsewhere")  # fmt: skip
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


async def test_a_code_for_another_client_is_refused(browser: Browser) -> None:
    verifier, challenge = pkce()
    code = await browser.code(code_params(AP_CLIENT, AP_REDIRECT, challenge))
    other = "https://other.invalid/client.json"
    await browser.consent_page(code_params(other, AP_REDIRECT, challenge))  # now known here
    answer = await exchange(browser.http, code, verifier, client_id=other)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    # and the right client may still use it
    assert (await exchange(browser.http, code, verifier)).status_code == 200


async def test_an_expired_code_is_refused(browser: Browser, context: Context) -> None:
    verifier, challenge = pkce()
    code = await browser.code(code_params(AP_CLIENT, AP_REDIRECT, challenge))
    async with context.db.transaction() as session:
        await session.execute(update(OAuthCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    answer = await exchange(browser.http, code, verifier)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("method", ["plain", None])
async def test_pkce_plain_or_without_method_is_refused(
    browser: Browser, method: str | None
) -> None:
    verifier, _ = pkce()
    params = code_params(AP_CLIENT, AP_REDIRECT, verifier)
    if method is None:
        del params["code_challenge_method"]
    else:
        params["code_challenge_method"] = method
    page = await browser.consent_page(params)
    assert page.status_code == 302
    error = query_of(page.headers["location"])
    assert error["error"] == "invalid_request" and "S256" in error["error_description"]


async def test_a_public_client_must_use_pkce(browser: Browser) -> None:
    params = code_params(AP_CLIENT, AP_REDIRECT, "x")
    del params["code_challenge"], params["code_challenge_method"]
    page = await browser.consent_page(params)
    assert query_of(page.headers["location"])["error"] == "invalid_request"


# -- consent -----------------------------------------------------------------------------------


async def test_denied_consent_goes_back_with_access_denied(browser: Browser) -> None:
    _, challenge = pkce()
    params = code_params(AP_CLIENT, AP_REDIRECT, challenge)
    answer = await browser.decide(params, "deny")
    got = query_of(answer.headers["location"])
    assert answer.headers["location"].startswith(AP_REDIRECT)
    assert got["error"] == "access_denied" and got["state"] == params["state"]


async def test_the_consent_form_needs_its_csrf_token(browser: Browser) -> None:
    _, challenge = pkce()
    page = await browser.consent_page(code_params(AP_CLIENT, AP_REDIRECT, challenge))
    fields = hidden_fields(page.text)
    # When the form comes back without its token, or with another one
    missing = {k: v for k, v in fields.items() if k != "csrf_token"}
    for form in (missing, {**fields, "csrf_token": "forged"}):
        answer = await browser.http.post("/oauth/authorize", data={**form, "decision": "allow"},
                                         headers={"Accept": "text/html"})  # fmt: skip
        # Then 403 with a message, and no code
        assert answer.status_code == 403
        assert "security token is missing or wrong" in answer.text
        assert "location" not in answer.headers


async def test_a_form_from_another_site_is_refused(browser: Browser) -> None:
    _, challenge = pkce()
    page = await browser.consent_page(code_params(AP_CLIENT, AP_REDIRECT, challenge))
    answer = await browser.http.post(
        "/oauth/authorize", data={**hidden_fields(page.text), "decision": "allow"},
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    assert answer.status_code == 403 and "evil.example" in answer.json()["error"]


async def test_without_a_session_the_authorize_page_asks_to_sign_in(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given nobody signed in
    _, challenge = pkce()
    params = code_params(AP_CLIENT, AP_REDIRECT, challenge)
    page = await client.get("/oauth/authorize/", params=params)  # Mastodon's trailing slash too
    # Then the sign-in form comes first, and leads back to the same request
    assert page.status_code == 200 and 'name="password"' in page.text
    fields = hidden_fields(page.text)
    assert fields["next"].startswith("/oauth/authorize/?")
    signed = await client.post("/auth/sign_in", data={**fields, "username": "alice",
                                                      "password": PASSWORD})  # fmt: skip
    assert signed.status_code == 303 and signed.headers["location"] == fields["next"]
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    consent = await client.get(signed.headers["location"])
    assert 'value="allow"' in consent.text
    # and the page may send its form on to the client's redirect URI only (CSP form-action)
    policy = consent.headers["content-security-policy"]
    assert "form-action 'self' http://localhost:63546;" in policy
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy


async def test_a_wrong_password_keeps_the_form_with_a_message(
    client: httpx.AsyncClient, context: Context
) -> None:
    person = Browser(client)
    answer = await person.sign_in(password="not it at all")
    assert answer.status_code == 401 and "Wrong username or password" in answer.text
    assert "fedisocial_session" not in answer.headers.get("set-cookie", "")


async def test_the_sign_in_form_needs_its_csrf_cookie(
    client: httpx.AsyncClient, context: Context
) -> None:
    answer = await client.post("/auth/sign_in", data={"username": "alice", "password": PASSWORD,
                                                      "csrf_token": "made up"})  # fmt: skip
    assert answer.status_code == 403


async def test_oob_shows_the_code_to_copy(browser: Browser, context: Context) -> None:
    # Given a confidential app that asks for the code out of band, registered as Mastodon's
    # POST /api/v1/apps will register it (RFC 7591 takes only URLs as redirect URIs)
    metadata = {"client_name": "Terminal", "redirect_uris": [OOB],
                "token_endpoint_auth_method": "client_secret_post"}  # fmt: skip
    client = await context.oauth.clients.register(metadata, secret="s3cret-of-terminal")
    info = {"client_id": client.client_id, "client_secret": "s3cret-of-terminal"}
    # When alice allows it
    answer = await browser.decide(
        {
            "response_type": "code",
            "client_id": info["client_id"],
            "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
            "scope": "read",
        }
    )
    # Then the page shows the code, which the app exchanges with its secret (no PKCE)
    assert answer.status_code == 200
    assert "Copy this code into the app" in answer.text
    code = answer.text.split('id="oob-code" class="auth-code" value="')[1].split('"')[0]
    token = await browser.http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": info["client_id"],
        "client_secret": info["client_secret"], "redirect_uri": OOB})  # fmt: skip
    assert token.status_code == 200, token.text


# -- tokens ------------------------------------------------------------------------------------


async def test_expired_revoked_and_unknown_tokens_get_401_saying_why(
    browser: Browser, context: Context
) -> None:
    first, second = await tokens_for(browser), await tokens_for(browser)
    async with context.db.transaction() as session:
        await session.execute(update(OAuthToken).where(OAuthToken.id == 1)
                              .values(expires_at=utcnow() - timedelta(seconds=1)))  # fmt: skip
    await browser.http.post("/oauth/revoke", data={"token": second["access_token"],
                                                   "client_id": AP_CLIENT})  # fmt: skip
    cases = [(first["access_token"], "expired"), (second["access_token"], "revoked"),
             ("made-up", "not known")]  # fmt: skip
    for token, reason in cases:
        answer = await browser.http.get(MISSING, headers=bearer(token))
        assert answer.status_code == 401
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
        assert reason in challenge


async def test_refresh_tokens_rotate_and_work_once(browser: Browser) -> None:
    tokens = await tokens_for(browser)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
               "client_id": AP_CLIENT}  # fmt: skip
    fresh = await browser.http.post("/oauth/token", data=refresh)
    assert fresh.status_code == 200 and fresh.json()["scope"] == "read write"
    again = await browser.http.post("/oauth/token", data=refresh)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # the old access token went with its refresh token, the new one works
    assert (
        await browser.http.get(MISSING, headers=bearer(tokens["access_token"]))
    ).status_code == 401
    new = fresh.json()["access_token"]
    assert (await browser.http.get(MISSING, headers=bearer(new))).status_code == 404


async def test_revoking_a_refresh_token_ends_its_access_token(browser: Browser) -> None:
    tokens = await tokens_for(browser)
    answer = await browser.http.post("/oauth/revoke", data={
        "token": tokens["refresh_token"], "token_type_hint": "refresh_token",
        "client_id": AP_CLIENT})  # fmt: skip
    assert answer.status_code == 200
    used = await browser.http.get(MISSING, headers=bearer(tokens["access_token"]))
    assert used.status_code == 401
    # an unknown token is "revoked" too (RFC 7009 §2.2)
    unknown = await browser.http.post("/oauth/revoke", data={"token": "nope",
                                                              "client_id": AP_CLIENT})  # fmt: skip
    assert unknown.status_code == 200


async def test_the_token_lifetime_setting_makes_tokens_expire(
    browser: Browser, context: Context
) -> None:
    context.oauth.token_lifetime = 3600
    tokens = await tokens_for(browser)
    assert tokens["expires_in"] == 3600  # type: ignore[comparison-overlap]


# -- authorized apps -----------------------------------------------------------------------------


async def test_authorized_apps_lists_and_revokes_at_once(browser: Browser) -> None:
    # Given alice authorized the ap client
    tokens = await tokens_for(browser)
    page = await browser.http.get("/oauth/authorized_applications")
    assert AP_CLIENT in page.text and "read, write" in page.text and "unverified" in page.text
    # When she revokes it
    fields = hidden_fields(page.text.split('<li class="auth-app">')[1])
    action = page.text.split('<form method="post" action="')[1].split('"')[0]
    done = await browser.http.post(action, data=fields)
    assert done.status_code == 303
    # Then its token stops working at once, and the page says so
    assert (
        await browser.http.get(MISSING, headers=bearer(tokens["access_token"]))
    ).status_code == 401
    after = await browser.http.get(done.headers["location"])
    assert "has no access any more" in after.text and "Revoke</button>" not in after.text


# -- discovery ---------------------------------------------------------------------------------


async def test_metadata_and_the_actor_name_the_endpoints(client: httpx.AsyncClient,
                                                         context: Context) -> None:  # fmt: skip
    meta = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == "http://127.0.0.1:8000"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["client_id_metadata_document_supported"] is True
    assert {"read", "write", "follow", "push"} <= set(meta["scopes_supported"])
    assert "none" in meta["token_endpoint_auth_methods_supported"]
    actor = (
        await client.get("/users/alice", headers={"Accept": "application/activity+json"})
    ).json()
    assert actor["endpoints"]["oauthAuthorizationEndpoint"] == meta["authorization_endpoint"]
    assert actor["endpoints"]["oauthTokenEndpoint"] == meta["token_endpoint"]


async def test_on_https_the_session_cookie_is_secure_and_host_only(
    db: Database, tmp_path: Path
) -> None:
    # Given an https instance
    environ = {"FEDISOCIAL_BASE_URL": "https://social.example",
               "FEDISOCIAL_DATA_DIR": str(tmp_path)}  # fmt: skip
    settings = load_settings(tmp_path / "none.toml", environ=environ)
    app = create_app(settings, database=db)
    async with app.router.lifespan_context(app):
        context: Context = app.state.context
        await create_user(context.db, context.urls, "alice", PASSWORD)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://social.example"
        ) as http:
            # When alice signs in
            answer = await Browser(http).sign_in()
    # Then both cookies are __Host- cookies: Secure, HttpOnly, SameSite=Lax, path /
    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("__Host-fedisocial_session="))
    for flag in ("Secure", "HttpOnly", "SameSite=lax", "Path=/"):
        assert flag in session
    assert "Domain" not in session
