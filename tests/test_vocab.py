"""Replay real fediverse documents through ``fedisocial.ap.vocab`` (normalize, then extract).

Every file under tests/fixtures/activitypub/ is replayed; the odd shapes called out in
tests/fixtures/README.md get their own stories below.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from fedisocial.ap.vocab import (
    ACTIVITY_JSON,
    ACTOR_TYPES,
    AS_PUBLIC,
    LD_JSON_PROFILE,
    OTHER_TYPES_KEY,
    accepts_activity_json,
    as_list,
    canonical_pem,
    extract_actor,
    first,
    get_id,
    normalize,
    parse_handle,
    parse_json_object,
    parse_webfinger,
)
from fedisocial.errors import BadRequest, InvalidDocument

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "activitypub"
ALL_DOCUMENTS = sorted(FIXTURES.rglob("*.json"))
ADDRESSING = ("to", "cc", "bto", "bcc", "audience")


def load(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    return data


def fixture_id(path: Path) -> str:
    return str(path.relative_to(FIXTURES))


def is_actor(doc: dict[str, Any]) -> bool:
    return normalize(doc).get("type") in ACTOR_TYPES


# Expected per actor fixture: (type, inbox, shared inbox, key id).
ACTORS = {
    "activityrelay/actor-application.json": (
        "Application",
        "https://relay.mastodon.host/inbox",
        "https://relay.mastodon.host/inbox",
        "https://relay.mastodon.host/actor#main-key",
    ),
    "friendica/actor-person.json": (
        "Person",
        "https://soc.schuerz.at/inbox/jakob",
        "https://soc.schuerz.at/inbox",
        "https://soc.schuerz.at/profile/jakob#main-key",
    ),
    "gotosocial/actor-person-moved.json": (
        "Person",
        "http://localhost:8080/users/the_mighty_zork/inbox",
        None,  # GoToSocial publishes no shared inbox
        "http://localhost:8080/users/the_mighty_zork/main-key",
    ),
    "lemmy/group-community.json": (
        "Group",
        "https://enterprise.lemmy.ml/c/tenforward/inbox",
        "https://enterprise.lemmy.ml/inbox",
        "https://enterprise.lemmy.ml/c/tenforward#main-key",
    ),
    "mastodon/actor-person-fields-emoji-focalpoint.json": (
        "Person",
        "https://mastodon.social/users/emelie/inbox",
        "https://mastodon.social/inbox",
        "https://mastodon.social/users/emelie#main-key",
    ),
    "mastodon/actor-person-pem-with-spaces.json": (
        "Person",
        "https://activitypub.academy/users/brauca_darradiul/inbox",
        "https://activitypub.academy/inbox",
        "https://activitypub.academy/users/brauca_darradiul#main-key",
    ),
    "mastodon/actor-service-bot.json": (
        "Service",
        "https://mastodont.cat/users/fediverse/inbox",
        "https://mastodont.cat/inbox",
        "https://mastodont.cat/users/fediverse#main-key",
    ),
    "mastodon/actor-type-array-vcard.json": (
        "Person",
        "https://ap.example.com/users/foo/inbox",
        "https://ap.example.com/inbox",
        "https://ap.example.com/users/foo#main-key",
    ),
    "misskey/actor-person.json": (
        "Person",
        "https://misskey.io/users/83ssedkv53/inbox",
        "https://misskey.io/inbox",
        "https://misskey.io/users/83ssedkv53#main-key",
    ),
    "mitra/actor-multikey.json": (
        "Person",
        "https://wizard.casa/users/hongminhee/inbox",
        None,
        "https://wizard.casa/users/hongminhee#main-key",
    ),
    "oeee-cafe/actor-person.json": (
        "Person",
        "https://oeee.cafe/ap/users/3609fd4e-d51d-4db8-9f04-4189815864dd/inbox",
        "https://oeee.cafe/inbox",
        "https://oeee.cafe/ap/users/3609fd4e-d51d-4db8-9f04-4189815864dd#main-key",
    ),
    "peertube/actor-videochannel-group.json": (
        "Group",
        "https://spectra.video/video-channels/fediforum_demos/inbox",
        "https://spectra.video/inbox",
        "https://spectra.video/video-channels/fediforum_demos#main-key",
    ),
    "pleroma/actor-person.json": (
        "Person",
        "https://queer.hacktivis.me/users/lanodan/inbox",
        "https://queer.hacktivis.me/inbox",
        "https://queer.hacktivis.me/users/lanodan#main-key",
    ),
}


# -- replay every document -------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_DOCUMENTS, ids=fixture_id)
def test_every_fixture_is_read_without_error(path: Path) -> None:
    # Given a real document from a fediverse server
    doc = json.loads(path.read_text(encoding="utf-8"))
    pristine = copy.deepcopy(doc)
    kind = path.parent.name

    # When it goes through the reader made for it / Then it is understood
    if kind == "webfinger":
        result = parse_webfinger(doc)
        assert result.subject and result.subject.startswith("acct:")
        assert result.actor_url and result.actor_url in result.aliases
    elif kind == "nodeinfo":  # we serve NodeInfo but do not read it (schema tests below)
        assert isinstance(doc, dict)
    elif is_actor(doc):
        actor = extract_actor(normalize(doc))
        expected = ACTORS[fixture_id(path)]
        assert (actor.type, actor.inbox, actor.shared_inbox, actor.public_key_id) == expected
        assert actor.name is None or isinstance(actor.name, str)
        assert actor.public_key_owner == actor.id
        assert actor.public_key_pem is not None
        load_pem_public_key(actor.public_key_pem.encode())
    else:
        normalized = normalize(doc)
        for key in ADDRESSING:
            assert isinstance(normalized[key], list)
            assert all(isinstance(iri, str) for iri in normalized[key])
        assert "object" not in doc or normalized["object"] == doc["object"]
    # And the document itself was not touched
    assert doc == pristine


def test_every_actor_fixture_has_an_expectation() -> None:
    # Given the actor documents among the fixtures
    actors = {fixture_id(p) for p in ALL_DOCUMENTS if p.parent.name not in ("webfinger", "nodeinfo")
              and is_actor(json.loads(p.read_text(encoding="utf-8")))}  # fmt: skip
    # Then each is checked against the expectation table above
    assert actors == set(ACTORS)


# -- odd shapes from the fixtures README ---------------------------------------------


def test_type_array_picks_the_as2_type_and_keeps_the_rest() -> None:
    # Given Mastodon's 2017 actor whose type is ["Person", "vcard:individual"]
    doc = load("mastodon/actor-type-array-vcard.json")
    # When it is normalized
    normalized = normalize(doc)
    # Then the AS2 type is acted on and the vCard type is kept aside
    assert normalized["type"] == "Person"
    assert normalized[OTHER_TYPES_KEY] == ["vcard:individual"]
    assert doc["type"] == ["Person", "vcard:individual"]
    assert extract_actor(doc).type == "Person"


def test_pem_folded_with_spaces_is_rebuilt() -> None:
    # Given an actor whose publicKeyPem has spaces where the newlines should be
    doc = load("mastodon/actor-person-pem-with-spaces.json")
    raw = doc["publicKey"]["publicKeyPem"]
    assert "\n" not in raw.strip()
    # When it is extracted
    pem = extract_actor(doc).public_key_pem
    # Then the PEM has its armor lines and a 64-column body again
    assert pem is not None
    lines = pem.splitlines()
    assert lines[0] == "-----BEGIN PUBLIC KEY-----"
    assert lines[-1] == "-----END PUBLIC KEY-----"
    assert all(len(line) <= 64 and " " not in line for line in lines[1:-1])
    assert "".join(lines[1:-1]) == "".join(raw.split()[3:-3])
    load_pem_public_key(pem.encode())


def test_canonical_pem_keeps_a_well_formed_key_and_unarmored_text() -> None:
    # Given a well-formed PEM and some text that is not PEM at all
    pem = load("misskey/actor-person.json")["publicKey"]["publicKeyPem"]
    # Then the PEM comes back unchanged and the other text is left alone
    assert canonical_pem(pem) == pem
    assert canonical_pem("not a key") == "not a key"


def test_missing_context_is_tolerated() -> None:
    # Given a Lemmy activity without any @context and with "to" as a list
    doc = load("lemmy/announce-create-page.json")
    assert "@context" not in doc
    # When it is normalized
    normalized = normalize(doc)
    # Then it reads like any other, and its embedded object is left as given
    assert normalized["type"] == "Announce"
    assert normalized["to"] == [AS_PUBLIC]
    assert normalized["object"] is doc["object"]
    assert "@context" not in normalized


def test_misskey_top_level_shared_inbox() -> None:
    # Given a Misskey actor that only has the top-level sharedInbox
    doc = load("misskey/actor-person.json")
    del doc["endpoints"]
    # When it is extracted
    actor = extract_actor(doc)
    # Then the shared inbox is still found
    assert actor.shared_inbox == "https://misskey.io/inbox"
    assert actor.discoverable is True
    assert actor.manually_approves_followers is False


def test_gotosocial_key_id_is_a_path_not_a_fragment() -> None:
    # Given a GoToSocial actor, whose key id is .../main-key rather than ...#main-key
    actor = extract_actor(load("gotosocial/actor-person-moved.json"))
    # Then the key id is read as given, and its owner is the actor
    assert actor.public_key_id == "http://localhost:8080/users/the_mighty_zork/main-key"
    assert "#" not in actor.public_key_id
    assert actor.public_key_owner == actor.id
    assert actor.featured == "http://localhost:8080/users/the_mighty_zork/collections/featured"


def test_to_and_cc_as_strings_become_lists() -> None:
    # Given a GoToSocial Delete without id whose to/cc are plain strings
    doc = load("gotosocial/delete-note-no-id.json")
    assert isinstance(doc["to"], str)
    # When it is normalized
    normalized = normalize(doc)
    # Then they are lists, and the object is still the bare URI it was
    assert normalized["to"] == [AS_PUBLIC]
    assert normalized["cc"] == ["http://localhost:8080/users/admin/followers"]
    assert normalized["object"] == doc["object"]
    assert "id" not in normalized


def test_contentmap_fills_a_missing_content() -> None:
    # Given a Note with contentMap only
    doc = {"type": "Note", "contentMap": {"de": "<p>Hallo</p>", "en": "<p>Hello</p>"}}
    # When it is normalized
    normalized = normalize(doc)
    # Then content is the first language, and a given content wins
    assert normalized["content"] == "<p>Hallo</p>"
    assert normalize({**doc, "content": "<p>Hi</p>"})["content"] == "<p>Hi</p>"


def test_public_aliases_and_addressing_objects_become_ids() -> None:
    # Given addressing written every way servers write it
    doc = {"type": "Note", "to": "as:Public", "cc": ["Public", {"id": "https://a.example/f"}],
           "audience": {"type": "Link", "href": "https://a.example/c/main"}}  # fmt: skip
    # When it is normalized
    normalized = normalize(doc)
    # Then every entry is an IRI and Public is the full IRI
    assert normalized["to"] == [AS_PUBLIC]
    assert normalized["cc"] == [AS_PUBLIC, "https://a.example/f"]
    assert normalized["audience"] == ["https://a.example/c/main"]
    assert normalized["bto"] == [] and normalized["bcc"] == []


def test_single_attachment_object_becomes_a_list() -> None:
    # Given an Owncast Note whose attachment is one object, not a list
    doc = load("owncast/note-attachment-object.json")
    assert isinstance(doc["attachment"], dict)
    # Then normalize makes it a one-element list
    assert normalize(doc)["attachment"] == [doc["attachment"]]


def test_url_list_of_links_becomes_the_html_page() -> None:
    # Given a PeerTube Video whose url lists every rendition as a Link
    doc = load("peertube/video.json")
    # Then url is the HTML page
    assert (
        normalize(doc)["url"]
        == "https://tilvids.com/videos/watch/e7946124-7b72-4ad7-9d22-844a84bb2de1"
    )
    assert normalize({"url": {"type": "Link", "href": "https://a.example/x"}})["url"] == (
        "https://a.example/x"
    )
    assert "url" not in normalize({"url": []})


def test_actor_icons_pick_the_largest_peertube_avatar() -> None:
    # Given a PeerTube channel with a 48px and a 120px avatar
    actor = extract_actor(load("peertube/actor-videochannel-group.json"))
    # Then the widest one is used
    assert actor.icon_url is not None and "559b141a" in actor.icon_url
    assert actor.image_url is not None and actor.image_url.endswith(".png")


def test_a_mitra_actor_with_fep_521a_multikeys_is_read() -> None:
    # Given a Mitra actor with RSA and Ed25519 Multikeys (FEP-521a) beside its publicKey
    actor = extract_actor(load("mitra/actor-multikey.json"))
    # Then its RSA publicKey is the key we verify with
    assert actor.public_key_id == "https://wizard.casa/users/hongminhee#main-key"
    assert actor.public_key_owner == actor.id and actor.public_key_pem
    assert actor.manually_approves_followers is True


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"type": "Note", "id": "https://a.example/n", "inbox": "https://a.example/i"}, "not an"),
        ({"type": "Person", "inbox": "https://a.example/i"}, "no id"),
        ({"type": "Person", "id": "https://a.example/p"}, "no inbox"),
        ([], "JSON object"),
    ],
)
def test_unusable_actor_documents_are_refused(doc: Any, reason: str) -> None:
    # When a document that is not a usable actor is extracted / Then it is refused clearly
    with pytest.raises(InvalidDocument, match=reason):
        extract_actor(doc)


def mastodon_like_actor(**changes: Any) -> dict[str, Any]:
    doc = load("mastodon/actor-service-bot.json")
    for dotted, value in changes.items():
        *parents, name = dotted.split(".")
        target = doc
        for parent in parents:
            target = target[parent]
        target[name] = value
    return doc


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("id", "https://{{DOMAIN}}/users/admin", "the actor id .* does not name a real host"),
        ("id", "https:///users/admin", "does not name a real host"),
        ("id", "ftp://mastodon.example/users/admin", "is not an http\\(s\\) URL"),
        ("id", "https://user:pw@mastodon.example/users/admin", "has user info"),
        ("id", "https://mastodon.example:port/users/admin", "is not a valid URL"),
        ("inbox", "https://{{DOMAIN}}/inbox", "the inbox of .* does not name a real host"),
        ("inbox", "javascript:alert(1)", "is not an http\\(s\\) URL"),
        ("endpoints.sharedInbox", "https:///inbox", "the shared inbox of .* real host"),
        ("publicKey.id", "urn:key:1", "the key id of .* is not an http\\(s\\) URL"),
        ("followers", "https://ex ample/followers", "the followers of .* whitespace"),
    ],
)
def test_actor_uris_must_be_http_urls_on_real_hosts(field: str, value: str, reason: str) -> None:
    # Given a real actor document with one URI we would store replaced by a bad one
    doc = mastodon_like_actor(**{field: value})
    if field == "id":  # keep the key on the actor's origin, so that only the id is wrong
        doc["publicKey"]["id"] = doc["publicKey"]["owner"] = value
    # When it is extracted / Then it is refused, saying which URI and why
    with pytest.raises(InvalidDocument, match=reason):
        extract_actor(doc)


# -- tolerant readers ------------------------------------------------------------------


def test_json_depth_is_capped_at_64_levels() -> None:
    # Given objects and arrays nested exactly to the cap, and one level more
    at_cap = b'{"a":' + b"[" * 63 + b"1" + b"]" * 63 + b"}"
    over = b'{"a":' + b"[" * 64 + b"1" + b"]" * 64 + b"}"
    # Then the first is read and the second refused, before anything walks it
    assert parse_json_object(at_cap)["a"]
    with pytest.raises(InvalidDocument, match="the body is JSON nested deeper than 64 levels"):
        parse_json_object(over)


def test_tolerant_readers() -> None:
    assert as_list(None) == [] and as_list("a") == ["a"] and as_list(["a"]) == ["a"]
    assert get_id("https://a.example/x") == "https://a.example/x"
    assert get_id({"id": "https://a.example/x", "type": "Note"}) == "https://a.example/x"
    assert get_id({"type": "Link", "href": "https://a.example/l"}) == "https://a.example/l"
    assert get_id([{"type": "Note"}, "https://a.example/y"]) == "https://a.example/y"
    assert get_id({"type": "Note"}) is None and get_id(3) is None
    assert first(["a", "b"]) == "a" and first([]) is None and first("a") == "a"


# -- WebFinger, NodeInfo schemas, handles --------------------------------------------------------


def test_webfinger_accepts_the_ld_json_profile_type() -> None:
    # Given a JRD whose self link uses the ld+json profile media type (RFC 7033 §4.4)
    jrd = {"subject": "acct:a@b.example", "links": [
        {"rel": "self", "type": "text/html", "href": "https://b.example/@a"},
        {"rel": "self", "type": LD_JSON_PROFILE, "href": "https://b.example/users/a"},
    ]}  # fmt: skip
    # Then that link is the actor, and no aliases is an empty tuple
    result = parse_webfinger(jrd)
    assert result.actor_url == "https://b.example/users/a"
    assert result.aliases == () and result.profile_url is None


def test_webfinger_without_actor_link() -> None:
    # Given a JRD with no ActivityPub self link / Then there is no actor URL
    assert parse_webfinger({"subject": "acct:a@b.example", "links": []}).actor_url is None
    with pytest.raises(InvalidDocument):
        parse_webfinger([])  # type: ignore[arg-type]


def nodeinfo_validator(version: str) -> jsonschema.Draft4Validator:
    schema = json.loads((ROOT / "schemas" / f"nodeinfo-{version}.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


@pytest.mark.parametrize("name", ["nodeinfo/mastodon-social-2.0.json", "nodeinfo/akkoma-2.0.json"])
def test_nodeinfo_fixtures_validate_against_the_official_2_0_schema(name: str) -> None:
    # Given a real NodeInfo 2.0 document and the official schema (jhass/nodeinfo)
    validator = nodeinfo_validator("2.0")
    # Then it validates: both servers stay within the 2.0 enums and required keys
    errors = [error.message for error in validator.iter_errors(load(name))]
    assert errors == []


def test_nodeinfo_2_1_schema_is_stricter_about_the_version() -> None:
    # Given a 2.0 document checked against the 2.1 schema
    errors = list(nodeinfo_validator("2.1").iter_errors(load("nodeinfo/mastodon-social-2.0.json")))
    # Then only the version string is wrong
    assert [list(error.path) for error in errors] == [["version"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice@example.org", ("alice", "example.org")),
        ("@alice@Example.ORG", ("alice", "example.org")),
        ("acct:alice@example.org", ("alice", "example.org")),
        ("  alice@localhost:8001 ", ("alice", "localhost:8001")),
        ("alice@bücher.example", ("alice", "xn--bcher-kva.example")),
    ],
)
def test_parse_handle(text: str, expected: tuple[str, str]) -> None:
    assert parse_handle(text) == expected


@pytest.mark.parametrize(
    "text", ["alice", "@alice", "alice@", "@@example.org", "a b@example.org", "alice@ex ample",
             "alice@host:port", "https://example.org/@alice", "a@b@c.example", ""],
)  # fmt: skip
def test_parse_handle_refuses_what_is_not_a_handle(text: str) -> None:
    with pytest.raises(BadRequest, match="not a fediverse handle"):
        parse_handle(text)


# -- content negotiation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (ACTIVITY_JSON, True),
        (LD_JSON_PROFILE, True),
        ('application/ld+json;profile="https://www.w3.org/ns/activitystreams"', True),
        ("application/ld+json", True),
        ("Application/Activity+JSON; charset=utf-8", True),
        ("application/activity+json, application/ld+json", True),
        ("text/html, application/activity+json;q=0.1", True),
        ("application/activity+json;q=0", False),
        ("application/activity+json;q=0.0, text/html", False),
        ('application/ld+json; profile="https://www.w3.org/ns/json-ld#expanded"', False),
        ("application/json", False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_accepts_activity_json(accept: str, expected: bool) -> None:
    assert accepts_activity_json(accept) is expected
