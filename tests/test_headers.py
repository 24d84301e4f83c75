"""Security headers on every kind of response: pages, media, JSON and AS2, static files.

Pages may not be framed (clickjacking) and run only our own script and styles;
media and JSON are never sniffed into HTML and, opened on their own, run nothing
(an uploaded file cannot become a script on our origin). Nothing here reads new
queries, so the tests run on SQLite only.
"""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette

from fedisocial.app import Context
from fedisocial.auth.tokens import create_personal_token
from fedisocial.social.accounts import create_user
from fedisocial.web.headers import page_policy

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
AS2 = "application/activity+json"
PASSWORD = "long enough password"

pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


@pytest.fixture
async def context(app: Starlette) -> Context:
    ctx: Context = app.state.context
    await create_user(ctx.db, ctx.urls, "alice", PASSWORD, display_name="Alice")
    return ctx


def signed_in(accept: str = BROWSER) -> dict[str, str]:
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": accept}


def directives(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    parts = (part.strip().partition(" ") for part in policy.split(";") if part.strip())
    return {name: value for name, _, value in parts}


def assert_page_headers(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    policy = directives(response)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    # links to other servers say nothing of where the reader was; no opener reaches back
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert_everywhere(response)


def assert_everywhere(response: httpx.Response) -> None:
    assert response.headers["referrer-policy"] == "same-origin"
    features = dict(part.split("=") for part in response.headers["permissions-policy"].split(", "))
    for feature in ("camera", "microphone", "geolocation"):
        assert features[feature] == "()", feature


def assert_inert(response: httpx.Response) -> None:
    """Opened directly, the document runs nothing and may not be framed."""
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = directives(response)
    assert policy["default-src"] == "'none'"
    assert "sandbox" in policy
    assert policy["frame-ancestors"] == "'none'"
    assert_everywhere(response)


@pytest.mark.parametrize("path", ["/", "/users/alice", "/auth/sign_in", "/no/such/page"])
async def test_pages_get_a_strict_policy_and_may_not_be_framed(
    client: httpx.AsyncClient, context: Context, path: str
) -> None:
    # When a browser opens one of our pages (an error page too)
    response = await client.get(path, headers=signed_in())
    # Then it may only run our own script and styles, and no other site may frame it
    assert_page_headers(response)


async def test_the_sign_in_page_the_composer_leads_to_has_the_headers(
    client: httpx.AsyncClient, context: Context
) -> None:
    response = await client.get("/studio", headers={"Accept": BROWSER}, follow_redirects=True)
    assert response.status_code == 200 and response.url.path == "/auth/sign_in"
    assert_page_headers(response)


async def test_media_files_are_never_sniffed_and_run_nothing(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Given an uploaded image
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(out, "PNG")
    token, _ = await create_personal_token(context.db, "alice", "write")
    uploaded = await client.post(
        "/api/studio/media", headers={"Authorization": f"Bearer {token}"},
        files={"file": ("red.png", out.getvalue(), "image/png")},
        data={"description": "a red rectangle"},
    )  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    # When the file, its thumbnail and an avatar are fetched
    for url in (uploaded.json()["url"], uploaded.json()["thumbnail"], "/users/alice/avatar.png"):
        response = await client.get(url)
        # Then none of them can be read as HTML or run a script, even opened on their own
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/")
        assert_inert(response)


@pytest.mark.parametrize(
    ("path", "accept"),
    [("/users/alice", AS2), ("/.well-known/webfinger?resource=acct:alice@127.0.0.1:8000", "*/*"),
     ("/.well-known/nodeinfo", "application/json"), ("/api/studio/generations/1", "*/*")],
)  # fmt: skip
async def test_json_and_activitystreams_are_not_sniffed(
    client: httpx.AsyncClient, context: Context, path: str, accept: str
) -> None:
    response = await client.get(path, headers={"Accept": accept})
    assert "json" in response.headers["content-type"]
    assert_inert(response)


async def test_static_files_are_not_sniffed(client: httpx.AsyncClient, context: Context) -> None:
    for path in ("/static/composer.js", "/static/style.css"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_images_on_pages_may_come_from_other_servers_and_from_the_script(
    client: httpx.AsyncClient, context: Context
) -> None:
    # Remote avatars and attachments are shown from their servers (https; http only on
    # a loopback instance like this one, whose own base URL is http), and app.js draws
    # blurhash placeholders as data: URLs and the composer's previews as blob: URLs
    response = await client.get("/", headers={"Accept": BROWSER})
    policy = directives(response)
    assert policy["img-src"].split() == ["'self'", "https:", "http:", "data:", "blob:"]
    assert policy["media-src"].split() == ["'self'", "https:", "http:"]
    # the live bar's EventSource and the buttons' fetch() go to our own origin only
    assert policy["connect-src"] == "'self'"
    # an https instance allows no plain http images or media
    secure = page_policy("https://social.example")
    assert "http:" not in secure.replace("https:", "")
    assert "img-src 'self' https: data: blob:;" in secure
