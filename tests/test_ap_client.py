"""A real, independent ActivityPub C2S client against a live instance over https: the `ap`
command-line client (PyPI activitypub-cli, evanp/ap), as its users run it.

FEP-d8c2 / the SWICG ActivityPub API (OAuth 2.0 authorization code + PKCE, RFC 8414
metadata, actor ``endpoints``), ActivityPub §5 (reading inbox, outbox, followers,
following, likes) and §6 (the client-to-server outbox). See :mod:`tests.apclient` for
what the client needs and how the tests drive its browser step.

``ap login`` listens on the fixed port 63546: these tests do not run in parallel.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.apclient import REQUIRE_ENV, ApClient, ApClientUnavailable, ap_client_venv
from tests.instances import Instance, eventually, make_instance
from tests.tls import Certificate, self_signed

PASSWORD = "a good password"
#: the client id `ap` 0.5.1 uses where the server says client_id_metadata_document_supported
AP_CLIENT_ID = "https://evanp.github.io/ap/cimd.json"


@pytest.fixture(scope="session")
def ap_venv() -> Path:
    """The pinned client's virtualenv (made once, cached); skipped without Python 3.12."""
    try:
        return ap_client_venv()
    except ApClientUnavailable as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{exc} ({REQUIRE_ENV}=1)")
        pytest.skip(str(exc))


@dataclass
class Site:
    """Two https instances sharing a certificate: alice, carol, dora, erin and lena (who
    approves her followers) on ``one``; bob on ``two``."""

    cert: Certificate
    one: Instance
    two: Instance
    root: Path
    #: the ap client's virtualenv
    venv: Path

    def handle(self, name: str, instance: Instance | None = None) -> str:
        return f"{name}@{(instance or self.one).netloc}"

    def actor_id(self, name: str, instance: Instance | None = None) -> str:
        return f"{(instance or self.one).base_url}/users/{name}"

    def ap(self, person: str) -> ApClient:
        return ApClient(venv=self.venv, home=self.root / "homes" / person, cert=self.cert)

    def cli(self, *args: str, instance: Instance | None = None) -> str:
        """`fedisocial ARGS…` on ``one`` (or ``instance``), which must succeed; its output."""
        done = (instance or self.one).cli(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout


def _create_users(instance: Instance, *names: str) -> None:
    for name in names:
        created = instance.cli("user", "create", name, "--password-stdin", stdin=f"{PASSWORD}\n")
        assert created.returncode == 0, created.stderr


@pytest.fixture(scope="module")
def site(ap_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("ap")
    cert = self_signed(root / "tls")
    one, two = make_instance(root / "one", tls=cert), make_instance(root / "two", tls=cert)
    _create_users(one, "alice", "carol", "dora", "erin", "lena")
    _create_users(two, "bob")
    assert one.cli("user", "set", "lena", "--locked").returncode == 0
    here = Site(cert, one, two, root, ap_venv)
    try:
        one.start()
        two.start()
        yield here
    finally:
        one.stop()
        two.stop()


@dataclass
class Story:
    """What exists before alice's `ap` reads it: her post, carol's post; alice and carol
    follow each other; carol liked and boosted alice's post."""

    alice_post: str
    carol_post: str


def _posted(output: str) -> str:
    """The post's id in what `fedisocial post` prints."""
    return next(word for word in output.split() if "/statuses/" in word)


@pytest.fixture(scope="module")
def story(site: Site) -> Story:
    alice_post = _posted(site.cli("post", "alice", "Hello from alice, over https"))
    site.cli("follow", "alice", site.handle("carol"))
    site.cli("follow", "carol", site.handle("alice"))
    carol_post = _posted(site.cli("post", "carol", "Carol writes to her followers"))
    site.cli("like", "carol", alice_post)
    site.cli("boost", "carol", alice_post)
    return Story(alice_post, carol_post)


@pytest.fixture(scope="module")
def alice(site: Site, story: Story) -> ApClient:
    """alice's `ap`, logged in."""
    ap = site.ap("alice")
    ap.login(site.handle("alice"), "alice", PASSWORD)
    return ap


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded."""
    assert done.returncode == 0 and "Traceback" not in done.stderr, (done.stdout, done.stderr)
    return done.stdout


# -- logging in: authorization code + PKCE through our sign-in and consent pages -----------------


def test_ap_login_with_a_handle_saves_a_working_token(site: Site) -> None:
    # Given alice's ap, never logged in
    ap = site.ap("alice-handle")
    # When she logs in with her handle and allows it in the browser
    done = ap.login(site.handle("alice"), "alice", PASSWORD)
    # Then the token file has a Bearer token (and a refresh token) for her actor
    token = ap.token()
    assert token is not None, done
    assert token["actor_id"] == site.actor_id("alice")
    assert token["token_type"] == "Bearer" and token["access_token"]
    assert token["refresh_token"] and token["scope"] == ["read", "write"]
    # and it works: whoami reads her actor with it
    assert ok(ap.run_ap("whoami")).strip() == site.handle("alice")


def test_ap_login_with_an_actor_id(site: Site) -> None:
    ap = site.ap("carol-id")
    ap.login(site.actor_id("carol"), "carol", PASSWORD)
    token = ap.token()
    assert token is not None and token["actor_id"] == site.actor_id("carol")
    assert ok(ap.run_ap("whoami")).strip() == site.handle("carol")


def test_a_denied_login_exits_0_and_saves_no_token(site: Site) -> None:
    # Given alice's ap; When she presses Deny on the consent page
    ap = site.ap("alice-deny")
    done = ap.login(site.handle("alice"), "alice", PASSWORD, decision="deny")
    # Then the client says so (and exits 0 all the same), and there is no token
    assert done.returncode == 0
    assert "Access denied" in done.stdout
    assert ap.token() is None


# -- reading (ActivityPub §5) with the token --------------------------------------------------


def rows(table: str) -> list[list[str]]:
    """The rows of a table `ap` prints (tabulate: a header, a rule, then one line each)."""
    return [line.split() for line in table.splitlines()[2:] if line.strip()]


def test_ap_outbox_lists_her_activities(alice: ApClient, story: Story) -> None:
    # When alice reads her outbox; Then it lists a Create whose object is her post
    listed = rows(ok(alice.run_ap("outbox")))
    creates = [row[0] for row in listed if row[1] == "Create"]
    assert creates, listed
    assert story.alice_post in ok(alice.run_ap("get", creates[0]))


def test_ap_inbox_lists_what_she_receives(alice: ApClient, site: Site, story: Story) -> None:
    # When alice reads her inbox; Then carol's post is there, by carol: the post itself (the
    # home feed's items) or the Create that brought it (the activities received, §5.2)
    listed = rows(ok(alice.run_ap("inbox")))
    by_carol = [row[0] for row in listed if row[1] == site.handle("carol")]
    assert any(item == story.carol_post or story.carol_post in ok(alice.run_ap("get", item))
               for item in by_carol), listed  # fmt: skip


def test_ap_followers_and_following(alice: ApClient, site: Site) -> None:
    assert [site.handle("carol"), "carol"] in rows(ok(alice.run_ap("followers")))
    assert [site.handle("carol"), "carol"] in rows(ok(alice.run_ap("following")))


def test_ap_get_a_post(alice: ApClient, story: Story) -> None:
    note = json.loads(ok(alice.run_ap("get", story.alice_post)))
    assert note["id"] == story.alice_post and note["type"] == "Note"
    assert note["content"] == "<p>Hello from alice, over https</p>"


def test_ap_likes_of_a_post(alice: ApClient, site: Site, story: Story) -> None:
    assert site.handle("carol") in [
        row[1] for row in rows(ok(alice.run_ap("likes", story.alice_post)))
    ]


def test_ap_shares_of_a_post(alice: ApClient, site: Site, story: Story) -> None:
    listed = rows(ok(alice.run_ap("shares", story.alice_post)))
    assert site.handle("carol") in [row[1] for row in listed], listed


def test_a_revoked_token_is_refused(site: Site) -> None:
    # Given carol's ap, logged in, reading her inbox
    ap = site.ap("carol-revoke")
    ap.login(site.handle("carol"), "carol", PASSWORD)
    ok(ap.run_ap("inbox"))
    # When its token is revoked (RFC 7009), as the client would
    token = ap.token()
    assert token is not None
    answer = httpx.post(
        f"{site.one.base_url}/oauth/revoke", verify=site.cert.client_context(),
        data={"token": token["access_token"], "client_id": AP_CLIENT_ID},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    # Then its next read of the inbox is refused: 401
    done = ap.run_ap("inbox")
    assert done.returncode != 0 and "401 Client Error" in done.stderr, done.stderr


# -- writing (ActivityPub §6): the outbox POST --------------------------------------------------


@pytest.fixture(scope="module")
def lena(site: Site, story: Story) -> ApClient:
    """lena's `ap`, logged in; she approves her followers, and carol has asked."""
    site.cli("follow", "carol", site.handle("lena"))
    ap = site.ap("lena")
    ap.login(site.handle("lena"), "lena", PASSWORD)
    return ap


def test_ap_create_note_public(alice: ApClient, site: Site) -> None:
    # When alice posts a public note with ap
    created = json.loads(ok(alice.run_ap("create", "note", "--public", "Posted with ap")))
    # Then the server answers with the stored Create, its ids ours
    assert created["type"] == "Create" and created["id"].startswith(site.one.base_url)
    # and it is in her outbox, and in the feed of carol, who follows her
    assert created["id"] in ok(alice.run_ap("outbox"))
    assert eventually(lambda: "Posted with ap" in site.cli("feed", "carol"))


def test_a_note_posted_with_ap_reaches_a_follower_on_another_instance(site: Site) -> None:
    # Given bob, on the second instance, follows erin
    site.cli("follow", "bob", site.handle("erin"), instance=site.two)
    assert eventually(lambda: site.handle("bob", site.two) in site.cli("followers", "erin"))
    # When erin posts a public note with ap
    ap = site.ap("erin")
    ap.login(site.handle("erin"), "erin", PASSWORD)
    ok(ap.run_ap("create", "note", "--public", "From erin's ap to the other instance"))
    # Then it is delivered to bob's instance, into his feed
    assert eventually(lambda: "From erin's ap to the other instance"
                      in site.cli("feed", "bob", instance=site.two))  # fmt: skip


def test_ap_upload_an_image(alice: ApClient, site: Site) -> None:
    # Given a PNG; When alice uploads it with alt text
    image = site.root / "dot.png"
    Image.new("RGB", (8, 8), (200, 40, 40)).save(image)
    out = ok(alice.run_ap("upload", str(image), "--public", "--description", "A red square"))
    # Then the server answers 201 with the Image (ap prints it as a Python dict)
    assert "'type': 'Image'" in out and site.one.base_url in out, out


def test_ap_follow_an_account_of_another_instance(alice: ApClient, site: Site) -> None:
    # When alice follows bob, on the second instance
    bob = site.handle("bob", site.two)
    followed = json.loads(ok(alice.run_ap("follow", bob)))
    assert followed["type"] == "Follow"
    # Then bob's instance has her as a follower
    assert eventually(lambda: site.handle("alice") in site.cli("followers", "bob",
                                                               instance=site.two))  # fmt: skip


def test_ap_like_and_undo_like(alice: ApClient, site: Site, story: Story) -> None:
    # When alice likes carol's post; Then carol's post lists her like
    ok(alice.run_ap("like", story.carol_post))

    def likers() -> list[str]:
        return [row[1] for row in rows(ok(alice.run_ap("likes", story.carol_post)))]

    assert site.handle("alice") in likers()
    # When she takes it back; Then it is gone
    ok(alice.run_ap("undo", "like", story.carol_post))
    assert site.handle("alice") not in likers()


def test_ap_share(alice: ApClient, site: Site, story: Story) -> None:
    out = ok(alice.run_ap("share", story.carol_post))
    assert out.startswith(f"Share activity: {site.one.base_url}/"), out
    sharers = [row[1] for row in rows(ok(alice.run_ap("shares", story.carol_post)))]
    assert site.handle("alice") in sharers


def test_ap_pending_followers(lena: ApClient, site: Site) -> None:
    listed = rows(ok(lena.run_ap("pending", "followers")))
    assert site.handle("carol") in [row[1] for row in listed], listed


def test_ap_accept_follower(lena: ApClient, site: Site) -> None:
    out = ok(lena.run_ap("accept", "follower", site.handle("carol")))
    assert f"Accepted follower {site.handle('carol')}" in out
    assert eventually(lambda: site.handle("carol") in ok(lena.run_ap("followers")))


# -- what comes from another server, read through our proxyUrl ---------------------------------


def test_ap_inbox_with_a_post_from_another_instance(site: Site) -> None:
    # Given dora follows bob, on the second instance, and bob posts
    site.cli("follow", "dora", site.handle("bob", site.two))
    assert eventually(lambda: site.handle("bob", site.two) in site.cli("following", "dora"))
    post = _posted(site.cli("post", "bob", "Hello from the other instance", instance=site.two))
    assert eventually(lambda: post in site.cli("feed", "dora"))
    # When dora reads her inbox with ap (it names bob by his handle: a fetch of his actor,
    # through the proxyUrl of her server, as he is on another one)
    ap = site.ap("dora")
    ap.login(site.handle("dora"), "dora", PASSWORD)
    listed = rows(ok(ap.run_ap("inbox")))
    # Then bob's post is there, by bob
    assert [post, site.handle("bob", site.two)] in [row[:2] for row in listed], listed
