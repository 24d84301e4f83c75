"""The instance as apps read it first, on SQLite and PostgreSQL: ``/api/v1/instance``,
``/api/v2/instance``, peers, custom emojis, rules and preferences.

https://docs.joinmastodon.org/methods/instance/, https://docs.joinmastodon.org/entities/Instance/
(Mastodon 4.3's shapes), https://docs.joinmastodon.org/methods/preferences/.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from mastodon.versions import parse_version_string

from fedisocial import __version__
from fedisocial.app import Context
from fedisocial.config import Settings, load_settings
from fedisocial.social.accounts import create_user
from fedisocial.store.models import Actor
from tests.c2s_helpers import person

VERSION = re.compile(r"^4\.3\.0 \(compatible; fedisocial \d+\.\d+\.\d+\)$")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Limits other than the defaults, to see that the answers read the real ones."""
    return load_settings(tmp_path / "none.toml", environ={
        "FEDISOCIAL_BASE_URL": "http://127.0.0.1:8000", "FEDISOCIAL_DATA_DIR": str(tmp_path),
        "FEDISOCIAL_ALLOW_PRIVATE_NETWORKS": "true", "FEDISOCIAL_INSTANCE_NAME": "Test Social",
        "FEDISOCIAL_INSTANCE_DESCRIPTION": "Pictures and people.",
        "FEDISOCIAL_MEDIA_MAX_BYTES": "8000000", "FEDISOCIAL_MEDIA_MAX_PIXELS": "20000000",
        "FEDISOCIAL_MEDIA_MAX_DESCRIPTION": "1000", "FEDISOCIAL_REGISTRATIONS": "open",
    })  # fmt: skip


async def remote(context: Context, uri: str, domain: str) -> None:
    async with context.db.transaction() as session:
        session.add(Actor(uri=uri, local=False, type="Person", username=uri.rsplit("/", 1)[1],
                          domain=domain, inbox=f"{uri}/inbox", public_key_id=f"{uri}#key",
                          public_key_pem="-", fields=[]))  # fmt: skip


@pytest.mark.parametrize("path", ["/api/v2/instance", "/api/v2/instance/"])
async def test_instance_v2_has_mastodon_43s_shape_and_our_real_limits(
    client: httpx.AsyncClient, context: Context, path: str
) -> None:
    # Given an instance with an admin, a user, and a post
    await create_user(context.db, context.urls, "carol", "a good password", is_admin=True)
    alice = await person(context, "alice")
    poster = await context.outbox.actor_of(alice.name)
    await context.outbox.post(poster, "Hello")
    # When an app asks about it
    answer = await client.get(path)
    # Then it gets the v2 Instance, public and cacheable
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "public, max-age=180"
    body = answer.json()
    assert {"domain", "title", "version", "source_url", "description", "usage", "thumbnail",
            "icon", "languages", "configuration", "registrations", "api_versions", "contact",
            "rules"} <= set(body)  # fmt: skip
    assert body["domain"] == "127.0.0.1:8000" and body["title"] == "Test Social"
    assert body["description"] == "Pictures and people."
    assert VERSION.match(body["version"]) and __version__ in body["version"]
    assert parse_version_string(body["version"]) == (4, 3, 0)
    assert body["api_versions"] == {"mastodon": 2}
    assert body["usage"]["users"]["active_month"] == 2
    assert body["thumbnail"]["url"] == "http://127.0.0.1:8000/static/preview.png"
    config = body["configuration"]
    assert config["urls"]["streaming"] == "ws://127.0.0.1:8000"
    assert config["urls"]["about"] == "http://127.0.0.1:8000/about"
    assert config["statuses"]["max_characters"] == 5000
    assert config["statuses"]["max_media_attachments"] == 4
    media = config["media_attachments"]
    assert media["supported_mime_types"] == ["image/jpeg", "image/png", "image/webp"]
    assert media["image_size_limit"] == 8_000_000 and media["image_matrix_limit"] == 20_000_000
    assert media["description_limit"] == 1000 and media["video_size_limit"] == 0
    assert config["vapid"] == {"public_key": ""}
    assert body["registrations"]["enabled"] is True
    assert body["registrations"]["approval_required"] is False
    assert body["contact"]["account"]["acct"] == "carol"
    assert body["rules"] == []
    # and the thumbnail it names is there
    thumbnail = await client.get("/static/preview.png")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"


@pytest.mark.parametrize("path", ["/api/v1/instance", "/api/v1/instance/"])
async def test_instance_v1_has_the_older_shape_with_stats(
    client: httpx.AsyncClient, context: Context, path: str
) -> None:
    await person(context, "alice")
    await remote(context, "https://one.example/users/a", "one.example")
    answer = await client.get(path)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["uri"] == "127.0.0.1:8000" and body["title"] == "Test Social"
    assert body["short_description"] == "Pictures and people."
    assert VERSION.match(body["version"])
    assert body["urls"] == {"streaming_api": "ws://127.0.0.1:8000"}
    assert body["stats"] == {"user_count": 1, "status_count": 0, "domain_count": 1}
    assert body["thumbnail"] == "http://127.0.0.1:8000/static/preview.png"
    assert body["registrations"] is True and body["approval_required"] is False
    assert body["invites_enabled"] is False
    config = body["configuration"]
    assert config["statuses"]["max_characters"] == 5000
    assert config["media_attachments"]["image_size_limit"] == 8_000_000
    assert config["polls"]["max_options"] == 0
    # no admin: no contact account
    assert body["contact_account"] is None and body["rules"] == []


@pytest.mark.parametrize(("mode", "enabled", "approval"),
                         [("closed", False, False), ("approval", True, True)])  # fmt: skip
async def test_registrations_follow_the_setting(
    client: httpx.AsyncClient, context: Context, mode: str, enabled: bool, approval: bool
) -> None:
    context.settings = replace(context.settings, registrations=mode)
    v1 = (await client.get("/api/v1/instance")).json()
    v2 = (await client.get("/api/v2/instance")).json()
    assert v1["registrations"] is enabled and v1["approval_required"] is approval
    assert v2["registrations"]["enabled"] is enabled
    assert v2["registrations"]["approval_required"] is approval


async def test_peers_are_the_domains_of_the_remote_accounts_we_know(
    client: httpx.AsyncClient, context: Context
) -> None:
    assert (await client.get("/api/v1/instance/peers")).json() == []
    await person(context, "alice")
    for uri, domain in (("https://b.example/users/x", "b.example"),
                        ("https://b.example/users/y", "b.example"),
                        ("https://a.example/@z", "a.example")):  # fmt: skip
        await remote(context, uri, domain)
    answer = await client.get("/api/v1/instance/peers")
    assert answer.status_code == 200
    assert answer.json() == ["a.example", "b.example"]
    stats = (await client.get("/api/v1/instance")).json()["stats"]
    assert stats["domain_count"] == 2


async def test_custom_emojis_and_rules_are_empty_lists(
    client: httpx.AsyncClient, context: Context
) -> None:
    for path in ("/api/v1/custom_emojis", "/api/v1/instance/rules"):
        answer = await client.get(path)
        assert answer.status_code == 200 and answer.json() == []


async def test_preferences_are_mastodons_keys_for_a_users_token(
    client: httpx.AsyncClient, context: Context
) -> None:
    alice = await person(context, "alice", scope="read:accounts")
    answer = await client.get("/api/v1/preferences", headers=alice.auth)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "posting:default:visibility": "public", "posting:default:sensitive": False,
        "posting:default:language": None, "reading:expand:media": "default",
        "reading:expand:spoilers": False,
    }  # fmt: skip
    assert answer.headers["cache-control"] == "private, no-store"
    # without a token, with a bad one, or without the scope: refused
    assert (await client.get("/api/v1/preferences")).status_code == 401
    bad = await client.get("/api/v1/preferences", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    writer = await person(context, "bob", scope="write")
    narrow = await client.get("/api/v1/preferences", headers=writer.auth)
    assert narrow.status_code == 403 and "read:accounts" in narrow.json()["error"]


async def test_the_instance_activity_is_not_served(
    client: httpx.AsyncClient, context: Context
) -> None:
    assert (await client.get("/api/v1/instance/activity")).status_code == 404
