"""Interop: implementations we did not write, against a real instance on loopback.

- ``activitypub-testing`` (npm, pinned in tests/interop/package.json) runs its
  ActivityPub test cases against our actor, our outbox, a post from that outbox
  and the owner's inbox. Without node or the package the test is skipped with a
  message (a failure when FEDISOCIAL_REQUIRE_INTEROP=1).
- A bovine actor (tests/interop/bovine_remote.py) follows, posts, is refused and
  reads. Every request it makes is signed by bovine's own signer; what our
  server delivers to it is verified by bovine's own checker.

Our side is a `fedisocial serve` process per instance, driven through the
command line and HTTP only.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import httpx
import pytest
from bovine.clients.signed_http import legacy_digest_method
from bovine.crypto import generate_rsa_public_private_key

from tests.instances import Instance, make_instance
from tests.interop.bovine_remote import ACTIVITY_JSON, BovineRemote, bovine_remote
from tests.interop.packages import NODE_MODULES, node_for

T = TypeVar("T")

PASSWORD = "a good password"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
APT_PACKAGE = NODE_MODULES / "activitypub-testing"

#: activitypub-testing cases that report ``inapplicable`` on our actor, and why that is
#: right for us. Every other case it runs must pass; these must stay exactly
#: ``inapplicable`` (neither failing nor passing unnoticed).
NOT_APPLICABLE = {
    # AP §5.7 and §5.8: `likes` and `shares` belong to objects, not actors; the same
    # two cases are run on a post from our outbox below, and pass there.
    "likes-collection-must-be-a-collection": "`likes` is a property of posts, not actors",
    "shares-collection-must-be-a-collection": "`shares` is a property of posts, not actors",
    # The inbox is the owner's home feed: an anonymous GET gets 401. `test actor` has
    # no way to give this case credentials; it is run with the owner's below, and passes.
    "inbox-must-be-an-orderedcollection": "reading the inbox needs the owner's credentials",
    # Its default submission is an empty Note (refused with 400, as Mastodon refuses an
    # empty status), so it sees no Location; given a Note with content below, it passes.
    "outbox-wraps-object-with-create-checked-using-get-location": "its default submission "
    "is an empty Note: 400; passes with a Note that has content, below",
    # These two POST with fetch's default Content-Type, text/plain, where ActivityPub §6
    # says clients MUST send application/ld+json: 415, so no Location to follow.
    **dict.fromkeys(
        [
            "post-outbox-server-overwrites-id-property",
            "outbox-post-server-adds-to-outbox-collection-checked-by-outbox-get",
        ],
        "its client posts JSON as text/plain (fetch's default); AP §6 requires "
        "application/ld+json: 415",
    ),
}
#: cases that fail on purpose, and why we differ
DIFFERENT_ON_PURPOSE = {
    # Mastodon refuses an empty status too ("Text can't be blank"); so do we, with a 400
    # that says so. (Its default submission is a Note with no content and no attachment.)
    "outbox-post-must-accept-non-activity-object": "a Note with no content and no attachment "
    "is refused (400), as Mastodon refuses an empty status",
    # `liked` is its actor's only, as Mastodon keeps favourites private; the case fetches
    # it without the credentials it was given.
    "liked-collection-must-be-a-collection": "`liked` is its actor's only (favourites are "
    "private, as on Mastodon); the case reads it without credentials",
    # A client's `content` with no markup is plain text, rendered like our own posts
    # (paragraphs, links, mentions, hashtags): "v1" is served as "<p>v1</p>".
    "create-then-update-modifies-object-checked-by-get": "content without markup is plain "
    "text, served rendered (<p>v1</p>), and the case compares it with the raw text",
}
#: cases that must have run and passed on the actor (guards against a case going missing)
ACTOR_CASES = {
    "actor-objects-must-have-inbox-outbox-properties",
    "actor-must-serve-as2-object-to-get",
    "outbox-must-be-an-orderedcollection",
    "followers-collection-must-be-a-collection",
    "following-collection-must-be-a-collection",
}


# -- our instances -------------------------------------------------------------------------


@dataclass
class Site:
    """A running instance with one user, alice, who has posted a few public notes."""

    instance: Instance
    notes: list[str]

    @property
    def alice(self) -> str:
        return f"{self.instance.base_url}/users/alice"

    @property
    def bearer(self) -> str:
        """An OAuth access token of alice's (`fedisocial token create`), as a header value."""
        made = run(self.instance, "token", "create", "alice", "--scopes", "read,write")
        token = next(line for line in made.splitlines() if line and " " not in line.strip())
        return f"Bearer {token.strip()}"


def run(instance: Instance, *args: str, stdin: str = "") -> str:
    done = instance.cli(*args, stdin=stdin)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def _site(root: Path, *, authorized_fetch: bool) -> Iterator[Site]:
    instance = make_instance(root)
    if authorized_fetch:
        config = root / "fedisocial.toml"
        text = config.read_text()
        assert "authorized_fetch = false" in text
        config.write_text(text.replace("authorized_fetch = false", "authorized_fetch = true"))
    try:
        run(instance, "user", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")
        instance.start()
        texts = ["Hello, fediverse! #interop", "A second post", "And a third"]
        notes = [run(instance, "post", "alice", text).split()[1] for text in texts]
        yield Site(instance, notes)
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from _site(tmp_path_factory.mktemp("open"), authorized_fetch=False)


@pytest.fixture(scope="module")
def secure_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from _site(tmp_path_factory.mktemp("secure"), authorized_fetch=True)


def stored(instance: Instance, uri: str) -> bool:
    """Whether the instance's database (SQLite, read-only) holds the object or activity."""
    path = instance.root / "data" / "fedisocial.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return (
            connection.execute("SELECT 1 FROM objects WHERE uri=?", (uri,)).fetchone() is not None
        )


def as2(url: str, **headers: str) -> dict[str, Any]:
    response = httpx.get(url, headers={"Accept": ACTIVITY_JSON, **headers})
    response.raise_for_status()
    doc: dict[str, Any] = response.json()
    return doc


# -- activitypub-testing (npm) -------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    slug: str
    outcome: str
    info: str


class ActivityPubTesting:
    """The activitypub-testing command line, run with node from tests/interop."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.version = json.loads((APT_PACKAGE / "package.json").read_text())["version"]

    def _run(self, *args: str) -> str:
        environ = {**os.environ, "ACTIVITYPUB_TESTING_DEFAULT_TEST_TIME_LIMIT": "T10S"}
        done = subprocess.run(
            [self.node, str(APT_PACKAGE / "src" / "cli.js"), *args],
            capture_output=True, text=True, timeout=120, check=False, env=environ,
        )  # fmt: skip
        # `run test` exits 1 when its case failed; the outcome is asserted by the caller
        assert done.stdout.strip(), f"activitypub-testing {args[:2]} printed nothing: {done.stderr}"
        return done.stdout

    def test_actor(self, actor: str, *, authorization: str) -> list[Outcome]:
        """`test actor`: every case that applies to an actor URL, as newline-delimited JSON."""
        out = self._run("test", "actor", actor, f"--input.authorization={authorization}")
        return [_outcome(json.loads(line)) for line in out.splitlines() if line.strip()]

    def run_test(self, slug: str, **inputs: str) -> Outcome:
        """`run test`: one case with the inputs given (``--input.NAME=VALUE``)."""
        flags = [f"--input.{name}={value}" for name, value in inputs.items()]
        return _outcome(json.loads(self._run("run", "test", f"--slug={slug}", *flags)))


def _outcome(assertion: dict[str, Any]) -> Outcome:
    result = assertion["result"]
    return Outcome(assertion["test"]["slug"], result["outcome"], str(result.get("info", "")))


@pytest.fixture
def activitypub_testing() -> ActivityPubTesting:
    return ActivityPubTesting(node_for("activitypub-testing", "src/cli.js"))


def summary(title: str, outcomes: list[Outcome]) -> str:
    counts = {k: sum(o.outcome == k for o in outcomes) for k in ("passed", "inapplicable")}
    others = len(outcomes) - sum(counts.values())
    lines = [
        f"{title}: {len(outcomes)} cases, {counts['passed']} passed, "
        f"{counts['inapplicable']} inapplicable, {others} other"
    ]
    for o in sorted(outcomes, key=lambda o: (o.outcome, o.slug)):
        known = {**NOT_APPLICABLE, **DIFFERENT_ON_PURPOSE}
        why = known.get(o.slug, o.info) if o.outcome != "passed" else ""
        lines.append(f"  {o.outcome:<12} {o.slug}{'  (' + why + ')' if why else ''}")
    return "\n".join(lines)


def _expected(slug: str) -> str:
    if slug in NOT_APPLICABLE:
        return "inapplicable"
    return "failed" if slug in DIFFERENT_ON_PURPOSE else "passed"


def test_activitypub_testing_passes_on_our_actor(
    activitypub_testing: ActivityPubTesting, site: Site
) -> None:
    """ActivityPub §4.1, §5: every case activitypub-testing runs on an actor passes or is N/A."""
    # Given alice, with three public posts, on a running instance
    # When activitypub-testing tests her actor (with her credentials for the §6 cases)
    outcomes = activitypub_testing.test_actor(site.alice, authorization=site.bearer)
    print(summary(f"activitypub-testing {activitypub_testing.version} on {site.alice}", outcomes))

    # Then each case passed, except the allow-listed ones, which are exactly inapplicable
    assert len({o.slug for o in outcomes}) == len(outcomes), "a case ran twice"
    unexpected = [o for o in outcomes if o.outcome != _expected(o.slug)]
    assert not unexpected, unexpected
    assert not ACTOR_CASES - {o.slug for o in outcomes if o.outcome == "passed"}


def test_activitypub_testing_passes_on_our_outbox_post_and_inbox(
    activitypub_testing: ActivityPubTesting, site: Site
) -> None:
    """AP §5.1-§5.2, §5.7-§5.8, §3.2: a post from our outbox, its collections, the inbox."""
    # Given a post taken from alice's outbox, as a remote server would find it
    actor = as2(site.alice)
    page = as2(as2(actor["outbox"])["first"])
    note = page["orderedItems"][0]["object"]
    assert note["id"] in site.notes

    # When activitypub-testing runs the cases that take a post, the inbox case with an
    # OAuth token of alice's (her inbox is her home feed), and the C2S cases that take a
    # submission with a Note that has content
    bearer = site.bearer
    note_with_content = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Note",
                         "content": "Posted by activitypub-testing", "to": [PUBLIC]}  # fmt: skip
    outcomes = [
        activitypub_testing.run_test(
            "actor-must-serve-as2-object-to-get", id=note["id"], time="T10S"
        ),
        activitypub_testing.run_test(
            "likes-collection-must-be-a-collection", object=json.dumps(as2(note["id"]))
        ),
        activitypub_testing.run_test(
            "shares-collection-must-be-a-collection", object=json.dumps(as2(note["id"]))
        ),
        activitypub_testing.run_test(
            "inbox-must-be-an-orderedcollection",
            object=json.dumps(actor),
            authorization=bearer,
            time="T10S",
        ),
        *(
            activitypub_testing.run_test(
                slug,
                outbox=actor["outbox"],
                authorization=bearer,
                submission=json.dumps(note_with_content),
            )
            for slug in (
                "outbox-wraps-object-with-create-checked-using-get-location",
                "outbox-post-must-accept-non-activity-object",
            )
        ),
    ]
    title = f"activitypub-testing {activitypub_testing.version} on {note['id']}"
    print(summary(title, outcomes))

    # Then every one of them passed
    assert [o for o in outcomes if o.outcome != "passed"] == []


# -- a bovine actor ------------------------------------------------------------------------


async def cli(instance: Instance, *args: str) -> str:
    """A `fedisocial` command, off the event loop (the bovine server shares the loop)."""
    return await asyncio.to_thread(run, instance, *args)


async def eventually(check: Callable[[], T | Awaitable[T]], what: str, seconds: float = 20) -> T:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


async def bovine_post(
    remote: BovineRemote, url: str, body: str, **client_options: Any
) -> tuple[int, dict[str, Any]]:
    """POST ``body``, signed by bovine's SignedHttpClient; the status and the JSON answer."""
    async with remote.client(**client_options) as bovine:
        response = await bovine.client.post(url, body)
        return response.status, json.loads(await response.text() or "{}")


async def bovine_get(remote: BovineRemote, url: str) -> tuple[int, str, dict[str, Any]]:
    """GET ``url`` signed by bovine's SignedHttpClient: status, media type, JSON."""
    async with remote.client() as bovine:
        response = await bovine.client.get(url)
        return response.status, response.content_type, json.loads(await response.text())


async def anonymous(method: str, url: str, body: str = "") -> tuple[int, dict[str, Any]]:
    """The same request with no signature at all."""
    headers = {"Accept": ACTIVITY_JSON, "Content-Type": ACTIVITY_JSON}
    async with aiohttp.ClientSession() as session:
        response = await session.request(method, url, data=body or None, headers=headers)
        return response.status, json.loads(await response.text() or "{}")


def object_id(value: str | dict[str, Any]) -> str:
    return value if isinstance(value, str) else str(value["id"])


async def test_bovine_follow_is_answered_with_an_accept_bovine_verifies(site: Site) -> None:
    """AP §7.5 + draft-cavage-12: a bovine-signed Follow, answered with a signed Accept."""
    async with bovine_remote() as remote:
        # Given a bovine actor on its own loopback port
        activities, _ = remote.factories()
        follow = remote.publish(activities.follow(site.alice).build())

        # When it sends alice a Follow, signed by bovine
        status, _ = await bovine_post(remote, f"{site.alice}/inbox", json.dumps(follow))

        # Then 202, the Follow is stored, and an Accept of it reaches bovine's inbox, signed with
        # alice's key as bovine's SignatureChecker sees it
        assert status == 202
        assert stored(site.instance, follow["id"])
        accepts = await eventually(lambda: remote.received("Accept"), "an Accept reached bovine")
        (accept,) = accepts
        assert accept.signer == site.alice, accept.headers
        assert accept.activity["actor"] == site.alice
        assert object_id(accept.activity["object"]) == follow["id"]
        assert remote.actor_id in await cli(site.instance, "followers", "alice")

        # And as a follower it reads alice's followers-only post with a bovine-signed
        # GET, where an anonymous GET gets 401
        posted = await cli(site.instance, "post", "alice", "Hi followers", "--visibility=followers")
        private_note = posted.split()[1]
        status, media_type, doc = await bovine_get(remote, private_note)
        assert (status, media_type, doc["id"]) == (200, ACTIVITY_JSON, private_note)
        assert (await anonymous("GET", private_note))[0] == 401


async def test_bovine_note_mentioning_alice_reaches_her_home_feed(site: Site) -> None:
    """AP §7.2 (Create): a bovine-signed Create{Note} mentioning alice lands in her feed."""
    async with bovine_remote() as remote:
        # Given a bovine actor's public note that mentions alice
        activities, objects = remote.factories()
        mention = {"type": "Mention", "href": site.alice, "name": f"@alice@{site.instance.netloc}"}
        content = "<p>Moo, @alice! Sent by bovine.</p>"
        note = objects.note(content=content, to={site.alice}, tag=[mention]).as_public().build()
        create = remote.publish(activities.create(remote.publish(note)).build())

        # When it delivers the Create to alice's inbox, signed by bovine
        status, _ = await bovine_post(remote, f"{site.alice}/inbox", json.dumps(create))

        # Then 202, and the note shows in alice's home feed
        assert status == 202

        async def in_feed() -> list[dict[str, Any]]:
            feed = json.loads(await cli(site.instance, "feed", "alice", "--json"))
            return [item for item in feed if item.get("id") == note["id"]]

        (item,) = await eventually(in_feed, "bovine's note is in alice's feed")
        assert "Sent by bovine" in item["content"]
        assert item["attributedTo"] == remote.actor_id


async def _unsigned(remote: BovineRemote, inbox: str, body: str) -> tuple[int, dict[str, Any]]:
    return await anonymous("POST", inbox, body)


async def _wrong_key(remote: BovineRemote, inbox: str, body: str) -> tuple[int, dict[str, Any]]:
    _, other_private_pem = generate_rsa_public_private_key()
    return await bovine_post(remote, inbox, body, private_pem=other_private_pem)


async def _tampered(remote: BovineRemote, inbox: str, body: str) -> tuple[int, dict[str, Any]]:
    # bovine signs the Digest of the original body; the body sent is changed on the way
    tampered = body.replace('"Follow"', '"Follow", "summary": "changed in transit"')
    assert tampered != body
    signed_digest = legacy_digest_method(body.encode())
    return await bovine_post(remote, inbox, tampered, digest_method=lambda _: signed_digest)


@pytest.mark.parametrize(
    ("send", "reason"),
    [
        (_unsigned, "not signed"),
        (_wrong_key, "signature does not match the request"),
        (_tampered, "Digest does not match"),
    ],
    ids=["unsigned", "wrong-key", "tampered-body"],
)
async def test_unsigned_wrongly_signed_or_tampered_posts_get_401(
    site: Site,
    send: Callable[[BovineRemote, str, str], Awaitable[tuple[int, dict[str, Any]]]],
    reason: str,
) -> None:
    """AP §7.1 + draft-cavage-12 §2.5 + RFC 3230: the inbox refuses, saying why."""
    async with bovine_remote() as remote:
        # Given a Follow from a bovine actor
        activities, _ = remote.factories()
        follow = remote.publish(activities.follow(site.alice).build())

        # When it reaches alice's inbox unsigned, signed with another key, or changed
        status, answer = await send(remote, f"{site.alice}/inbox", json.dumps(follow))

        # Then 401 with the reason, and the Follow was neither stored nor acted on
        assert status == 401, answer
        assert reason.lower() in answer.get("error", "").lower(), answer
        assert not stored(site.instance, follow["id"])
        assert remote.actor_id not in await cli(site.instance, "followers", "alice")
        assert remote.received("Accept") == []


@pytest.mark.parametrize("secure", [False, True], ids=["open", "authorized-fetch"])
async def test_bovine_signed_get_reads_our_actor_and_post(
    request: pytest.FixtureRequest, secure: bool
) -> None:
    """AP §3.2 + draft-cavage-12: bovine's signed GET gets AS2; secure mode refuses anonymous."""
    site: Site = request.getfixturevalue("secure_site" if secure else "site")
    async with bovine_remote() as remote:
        for url in (site.alice, site.notes[0]):
            # When the bovine actor fetches alice and one of her posts with a signed GET
            status, media_type, doc = await bovine_get(remote, url)

            # Then 200 with the AS2 document
            assert (status, media_type, doc["id"]) == (200, ACTIVITY_JSON, url), doc

            # and an anonymous GET gets it too, unless the instance is in secure mode
            status, answer = await anonymous("GET", url)
            assert status == (401 if secure else 200), answer
            if secure:
                assert "signed requests" in answer.get("error", ""), answer
