"""HTTP signatures: replayed vectors from specs and servers, then our own story tests."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fedisocial.ap import httpsig, keys
from fedisocial.errors import SignatureError

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
KEY_ID = "https://social.example/users/alice#main-key"


def fixtures_dir() -> Path:
    """FEDISOCIAL_FIXTURES (relative to the repo root), else tests/fixtures, else ../shared."""
    configured = os.environ.get("FEDISOCIAL_FIXTURES")
    if configured:
        return REPO / configured  # an absolute path stays absolute
    local = REPO / "tests" / "fixtures"
    return local if (local / "signatures").is_dir() else REPO.parent / "shared" / "fixtures"


VECTORS = sorted((fixtures_dir() / "signatures").glob("*.json"))


@pytest.fixture(scope="module")
def rsa_key() -> httpsig.PrivateKey:
    return httpsig.generate_rsa_key()


@pytest.fixture(scope="module")
def other_rsa_key() -> httpsig.PrivateKey:
    return httpsig.generate_rsa_key()


def signed(
    method: str, url: str, body: bytes | None, key: httpsig.PrivateKey, **headers: str
) -> dict[str, str]:
    return {**headers, **httpsig.sign_request(method, url, headers, body, KEY_ID, key, now=NOW)}


# ------------------------------------------------------------------ vectors


@pytest.mark.parametrize(
    "path", VECTORS or [pytest.param(None, id="no-vectors")], ids=lambda p: p and p.stem
)
def test_signature_vector(path: Path | None) -> None:
    """draft-cavage-12 §2.3, RFC 9421 §3.2 and Mastodon's policy: our verdict is the source's.

    Spec appendix vectors are judged by the bare spec (``require_coverage=False``);
    server vectors by Mastodon's coverage rules. The RFC 9421 B.2.5 HMAC vector
    is verified with its shared secret, as a bytes key.
    """
    assert path is not None, f"no signature vectors under {fixtures_dir()}"
    # Given a request captured in a vector, and the key it names
    vector: dict[str, Any] = json.loads(path.read_text())
    headers = {
        name: ", ".join(value) if isinstance(value, list) else value
        for name, value in vector["headers"].items()
    }
    key: httpsig.VerifyKey
    if vector["algorithm"] == "hmac-sha256":
        key = base64.b64decode(vector["shared_secret_base64"])
    else:
        key = httpsig.load_public_key(vector["public_key_pem"])
    now = datetime.fromisoformat(vector["reference_time"].replace("Z", "+00:00"))
    spec_vector = "Appendix" in vector["source"]

    # When we verify it at the reference time
    try:
        parsed = httpsig.verify_request(
            vector["method"],
            vector["url"],
            headers,
            vector["body"].encode(),
            key,
            now=now,
            require_coverage=not spec_vector,
        )
    except SignatureError as exc:
        verdict, reason = False, str(exc)
    else:
        verdict, reason = True, ""
        assert (parsed.key_id, parsed.scheme) == (vector["key_id"], vector["scheme"])

    # Then we agree with the source
    assert verdict is vector["expected_valid"], reason or vector.get("failure_reason")


# ---------------------------------------------------------- sign and verify


def test_signed_get_verifies_and_names_the_key(rsa_key: httpsig.PrivateKey) -> None:
    """draft-cavage-12 §2.1: a GET signs (request-target) host date; Host keeps its port."""
    # Given a GET to a server on a non-default port
    url = "https://remote.example:8443/users/bob/outbox?page=true"

    # When we sign it
    headers = signed("GET", url, None, rsa_key, Accept="application/activity+json")

    # Then Host carries the port, nothing signs a body, and the receiver finds our key
    assert headers["Host"] == "remote.example:8443"
    assert "Digest" not in headers
    assert 'headers="(request-target) host date"' in headers["Signature"]
    public = httpsig.load_public_key(httpsig.public_key_to_pem(rsa_key))
    parsed = httpsig.verify_request("GET", url, headers, None, public, now=NOW)
    assert parsed.key_id == KEY_ID
    assert parsed.scheme == "draft-cavage"


def test_signed_post_covers_the_digest(rsa_key: httpsig.PrivateKey) -> None:
    """draft-cavage-12 §2.1 + RFC 3230: a POST also signs its Digest."""
    # Given an activity to deliver
    body = b'{"type": "Follow"}'

    # When we sign the POST
    headers = signed("POST", "https://remote.example/inbox", body, rsa_key)

    # Then the Digest is signed and the whole request verifies
    assert headers["Digest"] == httpsig.digest_header(body)
    assert 'headers="(request-target) host date digest"' in headers["Signature"]
    httpsig.verify_request(
        "POST", "https://remote.example/inbox", headers, body, rsa_key.public_key(), now=NOW
    )


def test_tampered_body_is_rejected(rsa_key: httpsig.PrivateKey) -> None:
    """RFC 3230 §4.3.2: the Digest must match the body that arrived."""
    # Given a signed POST
    headers = signed("POST", "https://remote.example/inbox", b'{"a": 1}', rsa_key)

    # When the body is changed on the way
    # Then the digest gives it away
    with pytest.raises(SignatureError, match="Digest does not match the body"):
        httpsig.verify_request(
            "POST",
            "https://remote.example/inbox",
            headers,
            b'{"a": 2}',
            rsa_key.public_key(),
            now=NOW,
        )


def test_wrong_key_is_rejected(
    rsa_key: httpsig.PrivateKey, other_rsa_key: httpsig.PrivateKey
) -> None:
    """draft-cavage-12 §2.5: only the signer's key verifies."""
    # Given a request signed with one key
    headers = signed("GET", "https://remote.example/users/bob", None, rsa_key)

    # When it is checked against another actor's key
    # Then it fails
    with pytest.raises(SignatureError, match="does not match the request"):
        httpsig.verify_request(
            "GET",
            "https://remote.example/users/bob",
            headers,
            None,
            other_rsa_key.public_key(),
            now=NOW,
        )


def test_key_id_is_known_before_the_key_is_fetched(rsa_key: httpsig.PrivateKey) -> None:
    """draft-cavage-12 §2.1.1: keyId tells the receiver which key (and owner) to fetch."""
    # Given a signed request
    headers = signed("GET", "https://remote.example/users/bob", None, rsa_key)

    # When we only parse it
    parsed = httpsig.parse_signature("GET", "https://remote.example/users/bob", headers)

    # Then the keyId, and so the owner to check against the actor, is available
    assert parsed.key_id == KEY_ID
    assert parsed.key_id.split("#")[0] == "https://social.example/users/alice"
    assert parsed.algorithm == "rsa-sha256"


def test_old_date_is_rejected(rsa_key: httpsig.PrivateKey) -> None:
    """Mastodon signed_request.rb: Date within 12 hours back and 1 hour ahead."""
    # Given a request signed three days ago
    url = "https://remote.example/users/bob"
    headers = signed("GET", url, None, rsa_key, Date="Sat, 31 Oct 2026 12:00:00 GMT")

    # When it arrives now
    # Then it is too old
    with pytest.raises(SignatureError, match="Date is 3 days old, outside the 12 hour window"):
        httpsig.verify_request("GET", url, headers, None, rsa_key.public_key(), now=NOW)


def test_date_from_the_future_is_rejected(rsa_key: httpsig.PrivateKey) -> None:
    """Mastodon signed_request.rb: at most one hour of clock skew."""
    # Given a request dated two hours ahead
    url = "https://remote.example/users/bob"
    headers = signed("GET", url, None, rsa_key, Date="Tue, 03 Nov 2026 14:00:00 GMT")

    # When it arrives now
    # Then the clock skew is too large
    with pytest.raises(SignatureError, match="2 hours in the future"):
        httpsig.verify_request("GET", url, headers, None, rsa_key.public_key(), now=NOW)


def test_ed25519_signs_as_hs2019() -> None:
    """draft-cavage-12 §2.1.3: hs2019 takes its algorithm from the key."""
    # Given an Ed25519 key
    key = httpsig.generate_ed25519_key()

    # When it signs a POST
    headers = signed("POST", "https://remote.example/inbox", b"{}", key)

    # Then it says hs2019 and verifies with the Ed25519 public key
    assert 'algorithm="hs2019"' in headers["Signature"]
    httpsig.verify_request(
        "POST", "https://remote.example/inbox", headers, b"{}", key.public_key(), now=NOW
    )


def test_a_cavage_signature_for_another_host_is_refused(rsa_key: httpsig.PrivateKey) -> None:
    """draft-cavage-12 §2.3: ``host`` binds the signature to the server it was made for."""
    # Given a POST signed for other.example, with the Host header it signed
    body = b'{"type": "Like"}'
    headers = signed("POST", "https://other.example/inbox", body, rsa_key)
    assert headers["Host"] == "other.example"

    # When it is replayed to our inbox (same path), Host header and all
    # Then it is refused, saying which host was signed
    refused = r"signed for host other\.example, not ours \(our\.example\)"
    with pytest.raises(SignatureError, match=refused):
        httpsig.parse_signature("POST", "https://our.example/inbox", headers)
    # And at other.example itself (whatever the case of its name, and its default port) it verifies
    url, public = "https://OTHER.example:443/inbox", rsa_key.public_key()
    httpsig.verify_request("POST", url, headers, body, public, now=NOW)


def test_an_rfc9421_signature_for_another_authority_is_refused(
    rsa_key: httpsig.PrivateKey,
) -> None:
    """RFC 9421 §2.2.3/§2.2.2: ``@authority`` and ``@target-uri`` are the server's own."""
    # Given a POST signed with RFC 9421 for other.example, sent with that Host header
    body = b'{"type": "Like"}'
    url = "https://other.example/inbox"
    headers = {"Host": "other.example"}
    headers |= httpsig.sign_request_rfc9421("POST", url, headers, body, KEY_ID, rsa_key, now=NOW)

    # When it reaches our inbox / Then it is refused, saying which host it was meant for
    with pytest.raises(SignatureError, match=r"signed for host other\.example"):
        httpsig.parse_signature("POST", "https://our.example/inbox", headers)


def test_rfc9421_signature_roundtrip(rsa_key: httpsig.PrivateKey) -> None:
    """RFC 9421 §3.1 and §3.2: our RFC 9421 signature verifies, Content-Digest covered."""
    # Given a POST signed with RFC 9421
    url, body = "https://remote.example:8443/inbox", b'{"type": "Like"}'
    headers = httpsig.sign_request_rfc9421("POST", url, {}, body, KEY_ID, rsa_key, now=NOW)

    # When it arrives
    parsed = httpsig.verify_request("POST", url, headers, body, rsa_key.public_key(), now=NOW)

    # Then Mastodon's required components are covered
    assert parsed.scheme == "rfc9421"
    assert parsed.components == ("@method", "@target-uri", "content-digest")
    assert headers["Content-Digest"] == httpsig.content_digest_header(body)


def test_rfc9421_signature_params_are_rebuilt_byte_exactly() -> None:
    """RFC 9421 §2.3 + RFC 8941 §4.1: @signature-params is the inner list serialized again."""
    # Given a Signature-Input with a token alg, an escaped keyid and assorted parameters
    key, url = httpsig.generate_ed25519_key(), "https://social.example/users/alice/outbox"
    created = int(NOW.timestamp())
    inner = (
        f'("@method" "@target-uri");created={created};keyid="k\\"1";alg=ed25519'
        ";nonce=:AAEC:;q=1.5;flag=?0"
    )
    headers = {"Signature-Input": f"sig1={inner}", "Signature": "sig1=:AAEC:"}

    # When it is parsed
    parsed = httpsig.parse_signature("GET", url, headers)

    # Then the signature base ends with exactly those bytes, tokens and strings kept apart
    assert parsed.signing_strings[0].endswith(b'\n"@signature-params": ' + inner.encode())
    assert (parsed.key_id, parsed.algorithm) == ('k"1', "ed25519")
    # and a signature over that base verifies
    signature = base64.b64encode(key.sign(parsed.signing_strings[0])).decode()
    headers["Signature"] = f"sig1=:{signature}:"
    httpsig.verify_request("GET", url, headers, None, key.public_key(), now=NOW)


@pytest.mark.parametrize(
    ("query", "lines"),
    [
        # RFC 9421 §2.2.8, first example: an empty value is signed as empty
        ("param=value&foo=bar&baz=batman&qux=",
         ['"@query-param";name="baz": batman', '"@query-param";name="qux": ',
          '"@query-param";name="param": value']),
        # RFC 9421 §2.2.8, second example: names and values decoded, then re-encoded
        ("var=this%20is%20a%20big%0Avalue&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something",
         ['"@query-param";name="var": this%20is%20a%20big%0Avalue',
          '"@query-param";name="bar": with%20plus%20whitespace',
          '"@query-param";name="fa%C3%A7ade%22%3A%20": something']),
    ],
)  # fmt: skip
def test_rfc9421_query_param_components_are_signed_as_the_spec_shows(
    query: str, lines: list[str]
) -> None:
    """RFC 9421 §2.2.8: ``@query-param`` with its ``name`` parameter, one line per name."""
    # Given a request whose signature covers named query parameters, and the spec's base for it
    key, url = httpsig.generate_ed25519_key(), f"https://www.example.com/parameters?{query}"
    components = " ".join(line.split(": ", 1)[0] for line in lines)
    inner = f'({components});created={int(NOW.timestamp())};keyid="k"'
    spec_base = "\n".join([*lines, f'"@signature-params": {inner}']).encode()
    signature = base64.b64encode(key.sign(spec_base)).decode()
    headers = {"Signature-Input": f"sig1={inner}", "Signature": f"sig1=:{signature}:"}

    # When it arrives
    parsed = httpsig.verify_request("GET", url, headers, None, key.public_key(), now=NOW,
                                    require_coverage=False)  # fmt: skip

    # Then our signature base is the spec's, byte for byte
    assert parsed.signing_strings == (spec_base,)
    # And a parameter the request does not have is an error that names it
    missing = headers | {"Signature-Input": 'sig1=("@query-param";name="pet");keyid="k"'}
    with pytest.raises(SignatureError, match='query parameter "pet" is missing'):
        httpsig.parse_signature("GET", url, missing)


def test_non_ascii_base64_is_a_signature_error() -> None:
    """draft-cavage-12 §2.1.6, RFC 3230 §4.3.2: a stray non-ASCII byte fails the signature."""
    # Given a Signature and a Digest with a Latin-1 character in their base64
    url = "https://social.example/inbox"
    bad_signature = {"Signature": 'keyId="k",headers="date",signature="AAé="', "Date": "x"}

    # When they are read, then it is a SignatureError, not a crash
    with pytest.raises(SignatureError, match="not valid base64"):
        httpsig.parse_signature("POST", url, bad_signature)
    with pytest.raises(SignatureError, match="not valid base64"):
        httpsig.check_digests({"Digest": "SHA-256=AAé="}, b"")


def test_unsigned_request_is_rejected() -> None:
    """draft-cavage-12 §4 / RFC 9421 §4: no Signature header, nothing to verify."""
    with pytest.raises(SignatureError, match="not signed"):
        httpsig.parse_signature("POST", "https://social.example/inbox", {"Host": "x"})


async def test_httpx_auth_signs_every_request(rsa_key: httpsig.PrivateKey) -> None:
    """STYLE.md 3: call sites pass auth=, the remote inbox sees a valid signature."""
    # Given a remote inbox that verifies what it receives
    seen: list[str] = []

    def inbox(request: httpx.Request) -> httpx.Response:
        parsed = httpsig.verify_request(
            request.method,
            str(request.url),
            request.headers,
            request.content,
            rsa_key.public_key(),
            now=datetime.now(UTC),
        )
        seen.append(parsed.key_id)
        return httpx.Response(202)

    auth = httpsig.HttpSignatureAuth(KEY_ID, rsa_key)
    async with httpx.AsyncClient(transport=httpx.MockTransport(inbox), auth=auth) as client:
        # When we deliver an activity to a server on a non-default port
        response = await client.post("https://remote.example:8443/inbox", content=b"{}")

    # Then it was accepted as signed by us
    assert response.status_code == 202
    assert seen == [KEY_ID]


# -------------------------------------------------------------------- keys


def test_key_helpers_are_reexported() -> None:
    """STYLE.md 11: callers keep importing key helpers from httpsig; they live in keys."""
    for name in keys.__all__:
        assert name in httpsig.__all__
        assert getattr(httpsig, name) is getattr(keys, name)


def test_pem_with_spaces_loads() -> None:
    """Real Mastodon actor (activitypub.academy) whose publicKeyPem has spaces for newlines."""
    # Given the actor document
    path = fixtures_dir() / "activitypub" / "mastodon" / "actor-person-pem-with-spaces.json"
    pem = json.loads(path.read_text())["publicKey"]["publicKeyPem"]
    assert "\n" not in pem.strip()

    # When we load its key
    key = httpsig.load_public_key(pem)

    # Then it is the RSA key, parsed once and cached
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 2048
    assert httpsig.load_public_key(pem) is key


def test_garbage_pem_is_a_signature_error() -> None:
    """A broken publicKeyPem fails the signature, not the server."""
    with pytest.raises(SignatureError):
        httpsig.load_public_key("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----")
    with pytest.raises(SignatureError):
        httpsig.load_public_key("hello")


def test_private_key_pem_roundtrip_is_cached(rsa_key: httpsig.PrivateKey) -> None:
    """DESIGN.md performance: our private key is loaded from PEM once."""
    # Given our key as stored
    pem = httpsig.private_key_to_pem(rsa_key)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")

    # When it is loaded twice
    # Then the second load is the same object
    assert httpsig.load_private_key(pem) is httpsig.load_private_key(pem)


def test_multibase_roundtrip() -> None:
    """FEP-521a: publicKeyMultibase is z + base58btc(0xed01 + 32 bytes)."""
    # Given an Ed25519 key
    key = httpsig.generate_ed25519_key().public_key()

    # When it is encoded as Multikey and decoded back
    value = httpsig.ed25519_multibase(key)
    back = httpsig.parse_multibase_ed25519(value)

    # Then it is the same key
    assert value.startswith("z6Mk")
    assert back.public_bytes_raw() == key.public_bytes_raw()


def test_multibase_from_a_real_actor() -> None:
    """FEP-521a: Mitra's Multikey in assertionMethod parses."""
    # Given a Mitra actor with an Ed25519 Multikey
    path = fixtures_dir() / "activitypub" / "mitra" / "actor-multikey.json"
    methods = json.loads(path.read_text())["assertionMethod"]
    value = next(m["publicKeyMultibase"] for m in methods if m["publicKeyMultibase"][:4] == "z6Mk")

    # When we parse it and encode it again
    key = httpsig.parse_multibase_ed25519(value)

    # Then nothing changed
    assert httpsig.ed25519_multibase(key) == value
    with pytest.raises(SignatureError):
        httpsig.parse_multibase_ed25519("z" + value[2:])


# ----------------------------------------------------------------- digests


@pytest.mark.parametrize("name", ["SHA-256", "sha-256"])
def test_digest_algorithm_name_in_either_case(name: str) -> None:
    """RFC 3230 §4.1.1: digest algorithm names are case-insensitive."""
    # Given a Digest header spelled as some servers do
    body = b"Hello world"
    value = name + httpsig.digest_header(body).removeprefix("SHA-256")

    # When it is checked
    # Then it matches, and a different body does not
    httpsig.check_digests({"digest": value}, body)
    with pytest.raises(SignatureError, match="Digest does not match the body"):
        httpsig.check_digests({"Digest": value}, b"Hello world!")


def test_content_digest_sha512_and_malformed() -> None:
    """RFC 9530 §2 and RFC 8941 §3.2: Content-Digest is a dictionary with lower-case keys."""
    # Given a body and its SHA-512 Content-Digest
    body = b'{"hello": "world"}'
    sha512 = base64.b64encode(hashlib.sha512(body).digest()).decode()

    # When checked
    # Then SHA-512 passes, and an upper-case key is malformed
    httpsig.check_digests({"Content-Digest": f"sha-512=:{sha512}:"}, body)
    with pytest.raises(SignatureError, match="structured-field"):
        httpsig.check_digests({"Content-Digest": f"SHA-512=:{sha512}:"}, body)
    with pytest.raises(SignatureError, match="no SHA-256 or SHA-512"):
        httpsig.check_digests({"Digest": "MD5=HUXZLQLMuI/KZ5KDcJPcOA==, UNIXsum=30637"}, body)


def test_expired_signature_is_rejected(rsa_key: httpsig.PrivateKey) -> None:
    """draft-cavage-12 §2.1.5: a signature is not valid after expires."""
    # Given a request whose signature expired two hours ago
    url = "https://remote.example/users/bob"
    headers = signed("GET", url, None, rsa_key)
    created = int((NOW - timedelta(hours=3)).timestamp())
    expires = int((NOW - timedelta(hours=2)).timestamp())
    headers["Signature"] += f',created="{created}",expires="{expires}"'

    # When it arrives now
    # Then it is refused
    with pytest.raises(SignatureError, match="expired"):
        httpsig.verify_request("GET", url, headers, None, rsa_key.public_key(), now=NOW)
