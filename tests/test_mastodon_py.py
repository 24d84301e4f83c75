"""Mastodon.py (the Python library most bots and scripts use) against a live instance, on
SQLite and PostgreSQL: app registration, the authorization-code flow through our sign-in
and consent pages, the client_credentials grant, and feature detection by version.

https://mastodonpy.readthedocs.io/ — version 2.3.3, pinned in pyproject's ``test`` extra.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from mastodon import Mastodon, StreamListener
from mastodon.errors import MastodonAPIError, MastodonUnauthorizedError
from PIL import Image

from fedisocial.auth.clients import OOB
from tests.mastoclient import (
    BACKENDS,
    LiveInstance,
    approve,
    database_url,
    live_instance,
    user_token,
)

SCOPES = ["read", "write", "follow", "push"]


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[LiveInstance]:  # fmt: skip
    """One live instance per backend for the whole module (starting one takes seconds)."""
    root = tmp_path_factory.mktemp(f"mastodon_py_{request.param}")
    with database_url(request.param, root / "db") as url, live_instance(root / "site", url) as it:
        yield it


def registered(live: LiveInstance, name: str = "Mastodon.py test") -> tuple[str, str]:
    website = "https://example.com/bot"
    return Mastodon.create_app(name, scopes=SCOPES, redirect_uris=OOB, website=website,
                               api_base_url=live.base_url)  # fmt: skip


def test_create_app_then_the_code_flow_gives_a_token_for_the_scopes_asked(
    live: LiveInstance,
) -> None:
    # Given an app registered by Mastodon.py (a form, redirect_uris as one string)
    client_id, client_secret = registered(live)
    api = Mastodon(client_id=client_id, client_secret=client_secret,
                   api_base_url=live.base_url, version_check_mode="created")  # fmt: skip
    # When it builds the authorization URL (from our RFC 8414 metadata) ...
    url = api.auth_request_url(redirect_uris=OOB, scopes=SCOPES, allow_http=True)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{live.base_url}/oauth/authorize"
    assert parse_qs(parts.query)["force_login"] == ["False"]
    # ... and the person signs in and allows it, copying the out-of-band code
    code = approve(url, live.username, live.password)
    token = api.log_in(code=code, redirect_uri=OOB, scopes=SCOPES, allow_http=True)
    # Then Mastodon.py holds a token for every scope it asked
    assert token and api.access_token == token
    app = api.app_verify_credentials()
    assert app.name == "Mastodon.py test" and app.website == "https://example.com/bot"
    assert list(app.scopes) == SCOPES and list(app.redirect_uris) == [OOB]
    # and the token is the user's: user methods answer
    assert api.preferences()["posting:default:visibility"] == "public"


def test_instance_and_feature_detection_by_version(live: LiveInstance) -> None:
    # version_check_mode="created" reads /api/v1/instance and /api/v2/instance at once,
    # and warnings are errors in this suite: a 4.3 version without api_versions would warn
    api = Mastodon(api_base_url=live.base_url, version_check_mode="created")
    assert (api.mastodon_major, api.mastodon_minor, api.mastodon_patch) == (4, 3, 0)
    assert api.mastodon_api_version == 2
    assert api.verify_minimum_version("4.3.0", cached=True)
    assert not api.verify_minimum_version("4.4.0", cached=True)
    v2 = api.instance_v2()
    assert v2.domain == urlsplit(live.base_url).netloc
    assert v2.configuration.statuses.max_characters == 5000
    assert v2.configuration.statuses.max_media_attachments == 4
    assert "image/png" in v2.configuration.media_attachments.supported_mime_types
    assert api.instance().version.startswith("4.3.0 (compatible; fedisocial ")
    v1 = api.instance_v1()
    assert v1.uri == v2.domain and v1.stats.user_count == 1
    assert list(api.instance_peers()) == [] and list(api.custom_emojis()) == []
    assert list(api.instance_rules()) == [] and api.instance_health() is True
    info = api.oauth_authorization_server_info()
    assert "client_credentials" in info.grant_types_supported


def test_a_client_credentials_token_verifies_its_app_but_acts_for_nobody(
    live: LiveInstance,
) -> None:
    client_id, client_secret = registered(live, "An app alone")
    # When the app asks for its own token (Mastodon's "obtaining client app access")
    answer = httpx.post(f"{live.base_url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client_id,
        "client_secret": client_secret, "scope": "read write"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"] == "read write"
    api = Mastodon(access_token=answer.json()["access_token"], api_base_url=live.base_url,
                   version_check_mode="created")  # fmt: skip
    # Then the app is verified, public reads work, and user methods get Mastodon's 422
    assert api.app_verify_credentials().name == "An app alone"
    assert api.instance_v2().title
    with pytest.raises(MastodonAPIError) as refused:
        api.preferences()
    assert refused.value.args[1] == 422
    assert "requires an authenticated user" in str(refused.value)
    # and a wrong token is refused as Mastodon.py expects
    stranger = Mastodon(access_token="nope", api_base_url=live.base_url)
    with pytest.raises(MastodonUnauthorizedError):
        stranger.app_verify_credentials()


def test_log_in_then_read_the_account(live: LiveInstance) -> None:
    client_id, client_secret = registered(live)
    api = Mastodon(client_id=client_id, client_secret=client_secret,
                   api_base_url=live.base_url, version_check_mode="created")  # fmt: skip
    url = api.auth_request_url(redirect_uris=OOB, scopes=SCOPES, allow_http=True)
    api.log_in(code=approve(url, live.username, live.password), redirect_uri=OOB,
               scopes=SCOPES, allow_http=True)  # fmt: skip
    assert api.me().acct == live.username


def test_the_harness_lands_on_a_redirect_too(live: LiveInstance, tmp_path: Path) -> None:
    # an app with a loopback redirect gets its code in the redirect's query
    client_id, client_secret = Mastodon.create_app(
        "Redirecting", scopes=["read"], redirect_uris="http://127.0.0.1:9/callback",
        api_base_url=live.base_url)  # fmt: skip
    api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=live.base_url)
    url = api.auth_request_url(redirect_uris="http://127.0.0.1:9/callback", scopes=["read"],
                               state="xyz", allow_http=True)  # fmt: skip
    code = approve(url, live.username, live.password)
    token = api.log_in(code=code, redirect_uri="http://127.0.0.1:9/callback", scopes=["read"],
                       allow_http=True, to_file=tmp_path / "token.secret")  # fmt: skip
    assert token and (tmp_path / "token.secret").read_text().startswith(token)


def test_a_day_with_mastodon_py_post_read_reply_search_and_stream(
    live: LiveInstance,
) -> None:
    # Given alice and bob, each signed in to their own app through the code flow
    if "bob" not in httpx.get(f"{live.base_url}/api/v1/accounts/lookup",
                              params={"acct": "bob"}).text:  # fmt: skip
        live.create_user("bob")
    alice = Mastodon(access_token=user_token(live), api_base_url=live.base_url,
                     version_check_mode="created")  # fmt: skip
    bob = Mastodon(access_token=user_token(live, username="bob"), api_base_url=live.base_url,
                   version_check_mode="created")  # fmt: skip
    # alice posts a picture with alt text
    buffer = io.BytesIO()
    Image.new("RGB", (90, 60), (20, 160, 90)).save(buffer, "PNG")
    media = alice.media_post(io.BytesIO(buffer.getvalue()), mime_type="image/png",
                             description="A green rectangle", file_name="green.png")  # fmt: skip
    assert media.type == "image" and media.meta.original.width == 90
    posted = alice.status_post("A green day #colours", media_ids=[media.id])
    assert posted.media_attachments[0].description == "A green rectangle"
    assert posted.id in [s.id for s in alice.timeline_home()]
    # bob finds her, follows her, replies and likes
    [found] = [a for a in bob.account_search("alice") if a.acct == "alice"]
    bob.account_follow(found.id)
    reply = bob.status_post("Lovely green", in_reply_to_id=posted.id)
    bob.status_favourite(posted.id)
    context = alice.status_context(posted.id)
    assert [s.id for s in context.descendants] == [reply.id]
    kinds = {(n.type, n.account.acct) for n in alice.notifications()}
    assert {("follow", "bob"), ("mention", "bob"), ("favourite", "bob")} <= kinds
    assert bob.timeline_home()[0].id == reply.id

    # bob's user stream gets alice's next post as she makes it
    class Updates(StreamListener):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def on_update(self, status: Any) -> None:
            self.seen.append(status.content)

    updates = Updates()
    handle = bob.stream_user(updates, run_async=True)
    try:
        time.sleep(1.0)  # the stream is open before the post
        alice.status_post("Streamed to bob")
        deadline = time.monotonic() + 20
        while not any("Streamed to bob" in text for text in updates.seen):
            assert time.monotonic() < deadline, f"no update streamed: {updates.seen}"
            time.sleep(0.2)
    finally:
        handle.close()
