"""Discovery and actors over HTTP (ASGI), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import pytest
from starlette.applications import Starlette

from fedisocial.ap.httpsig import load_public_key, parse_multibase_ed25519
from fedisocial.ap.jsonld import expand
from fedisocial.ap.vocab import extract_actor, normalize
from fedisocial.app import Context
from fedisocial.social.accounts import create_user

SCHEMAS = Path(__file__).parent.parent / "schemas"
AS2 = "application/activity+json"
LD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
async def alice(app: Starlette) -> None:
    context: Context = app.state.context
    await create_user(context.db, context.urls, "alice", "long enough", display_name="Alice")


# -- WebFinger (RFC 7033) --------------------------------------------------------------


async def test_webfinger_finds_a_user_by_acct(client: httpx.AsyncClient, alice: None) -> None:
    response = await client.get(
        "/.well-known/webfinger", params={"resource": "acct:alice@127.0.0.1:8000"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jrd+json"
    assert response.headers["access-control-allow-origin"] == "*"
    jrd = response.json()
    assert jrd["subject"] == "acct:alice@127.0.0.1:8000"
    self_link = next(link for link in jrd["links"] if link["rel"] == "self")
    assert self_link == {"rel": "self", "type": AS2, "href": "http://127.0.0.1:8000/users/alice"}
    profile = next(link for link in jrd["links"] if "profile-page" in link["rel"])
    assert profile["href"] == "http://127.0.0.1:8000/@alice"


async def test_webfinger_accepts_the_actor_url(client: httpx.AsyncClient, alice: None) -> None:
    response = await client.get(
        "/.well-known/webfinger", params={"resource": "http://127.0.0.1:8000/users/alice"}
    )
    assert response.json()["subject"] == "acct:alice@127.0.0.1:8000"


@pytest.mark.parametrize(
    ("resource", "status", "message"),
    [
        (None, 400, "resource query parameter is required"),
        ("alice", 400, "malformed resource"),
        ("acct:alice", 400, "malformed resource"),
        ("acct:nobody@127.0.0.1:8000", 404, "no user called 'nobody'"),
        ("acct:alice@elsewhere.example", 404, "is not this instance"),
        ("https://elsewhere.example/users/alice", 404, "not an actor of this instance"),
    ],
)
async def test_webfinger_errors_are_clear(
    client: httpx.AsyncClient, alice: None, resource: str | None, status: int, message: str
) -> None:
    params = {"resource": resource} if resource else {}
    response = await client.get("/.well-known/webfinger", params=params)
    assert response.status_code == status
    assert message in response.json()["error"]


async def test_host_meta_points_to_webfinger(client: httpx.AsyncClient) -> None:
    xrd = await client.get("/.well-known/host-meta")
    assert xrd.headers["content-type"].startswith("application/xrd+xml")
    assert 'template="http://127.0.0.1:8000/.well-known/webfinger?resource={uri}"' in xrd.text
    jrd = (await client.get("/.well-known/host-meta.json")).json()
    assert jrd["links"][0]["rel"] == "lrdd"


# -- NodeInfo ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "2.1"])
async def test_nodeinfo_validates_against_the_official_schema(
    client: httpx.AsyncClient, alice: None, version: str
) -> None:
    links = (await client.get("/.well-known/nodeinfo")).json()["links"]
    href = next(link["href"] for link in links if link["rel"].endswith(f"/{version}"))
    response = await client.get(href.removeprefix("http://127.0.0.1:8000"))
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    schema = json.loads((SCHEMAS / f"nodeinfo-{version}.json").read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(document)
    assert document["software"]["name"] == "fedisocial"
    assert document["usage"]["users"]["total"] == 1
    assert document["openRegistrations"] is False
    assert document["metadata"]["nodeName"] == "Test Social"


# -- actors ------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [AS2, LD, "application/ld+json"])
async def test_actor_document_has_what_mastodon_reads(
    client: httpx.AsyncClient, alice: None, accept: str
) -> None:
    response = await client.get("/users/alice", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == AS2
    assert response.headers["vary"] == "Accept"
    actor = response.json()
    base = "http://127.0.0.1:8000/users/alice"
    assert actor["id"] == base and actor["type"] == "Person"
    assert actor["preferredUsername"] == "alice" and actor["name"] == "Alice"
    for key, value in {
        "inbox": f"{base}/inbox",
        "outbox": f"{base}/outbox",
        "followers": f"{base}/followers",
        "following": f"{base}/following",
        "featured": f"{base}/collections/featured",
        "url": "http://127.0.0.1:8000/@alice",
    }.items():
        assert actor[key] == value
    assert actor["endpoints"]["sharedInbox"] == "http://127.0.0.1:8000/inbox"
    assert actor["publicKey"]["id"] == f"{base}#main-key"
    assert actor["publicKey"]["owner"] == base
    assert load_public_key(actor["publicKey"]["publicKeyPem"]).key_size == 2048  # type: ignore[union-attr]
    assert actor["icon"]["type"] == "Image" and actor["image"]["url"].endswith("header.png")
    assert actor["manuallyApprovesFollowers"] is False
    assert actor["discoverable"] is True and actor["indexable"] is True
    assert actor["published"].endswith("Z") and "attachment" not in actor  # no empty arrays
    (multikey,) = actor["assertionMethod"]
    assert multikey["type"] == "Multikey" and multikey["controller"] == base
    parse_multibase_ed25519(multikey["publicKeyMultibase"])
    # and our own reader, which handles real servers' actors, reads it back
    remote = extract_actor(normalize(actor))
    assert (remote.inbox, remote.shared_inbox) == (
        actor["inbox"],
        actor["endpoints"]["sharedInbox"],
    )


async def test_actor_terms_expand_to_their_iris(client: httpx.AsyncClient, alice: None) -> None:
    """JSON-LD check (bundled contexts, no network): every extension term is declared."""
    actor = (await client.get("/users/alice", headers={"Accept": AS2})).json()
    (expanded,) = expand(actor)
    assert "http://joinmastodon.org/ns#discoverable" in expanded
    assert "https://www.w3.org/ns/activitystreams#manuallyApprovesFollowers" in expanded
    assert "https://w3id.org/security#publicKey" in expanded
    assert "https://w3id.org/security#assertionMethod" in expanded


async def test_browsers_get_the_profile_page(client: httpx.AsyncClient, alice: None) -> None:
    for path in ("/users/alice", "/@alice"):
        response = await client.get(path, headers={"Accept": BROWSER})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["vary"] == "Accept"
        assert "@alice@127.0.0.1:8000" in response.text
        assert 'type="application/activity+json" href="http://127.0.0.1:8000/users/alice"' in (
            response.text
        )


async def test_unknown_actor_is_404_in_both_forms(client: httpx.AsyncClient) -> None:
    as2 = await client.get("/users/nobody", headers={"Accept": AS2})
    assert as2.status_code == 404 and "nobody" in as2.json()["error"]
    html = await client.get("/users/nobody", headers={"Accept": BROWSER})
    assert html.status_code == 404 and "<html" in html.text


async def test_instance_actor_is_an_application(client: httpx.AsyncClient) -> None:
    actor = (await client.get("/actor", headers={"Accept": AS2})).json()
    assert actor["type"] == "Application" and actor["id"] == "http://127.0.0.1:8000/actor"
    assert actor["publicKey"]["id"] == "http://127.0.0.1:8000/actor#main-key"
    links = (await client.get("/.well-known/nodeinfo")).json()["links"]
    assert {
        "rel": "https://www.w3.org/ns/activitystreams#Application",
        "href": "http://127.0.0.1:8000/actor",
    } in links  # FEP-2677
    finger = await client.get(
        "/.well-known/webfinger", params={"resource": "http://127.0.0.1:8000/actor"}
    )
    assert finger.json()["links"][0]["href"] == "http://127.0.0.1:8000/actor"
    browser = await client.get("/actor", headers={"Accept": BROWSER})
    assert browser.status_code == 302


async def test_front_page_and_avatars(client: httpx.AsyncClient, alice: None) -> None:
    home = await client.get("/", headers={"Accept": BROWSER})
    assert home.status_code == 200 and "Alice" in home.text and "Test Social" in home.text
    avatar = await client.get("/users/alice/avatar.png")
    assert avatar.headers["content-type"] == "image/png" and avatar.content[:4] == b"\x89PNG"
    css = await client.get("/static/style.css")
    assert css.status_code == 200


async def test_errors_say_how_to_authenticate_and_what_is_allowed(
    client: httpx.AsyncClient,
) -> None:
    """RFC 9110 §15.5.2 and §15.5.6: 401 carries WWW-Authenticate, 405 carries Allow."""
    unsigned = await client.post("/inbox", content=b"{}",
                                 headers={"Content-Type": AS2})  # fmt: skip
    assert unsigned.status_code == 401
    assert unsigned.headers["www-authenticate"].startswith("Signature")
    wrong_method = await client.delete("/.well-known/nodeinfo")
    assert wrong_method.status_code == 405 and "GET" in wrong_method.headers["allow"]
