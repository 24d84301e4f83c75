"""Cross-checks: what we sign verifies elsewhere, and what others sign verifies here.

Libraries we did not write: ``httpsig`` (draft-cavage, pycryptodome), bovine's
``bovine.crypto`` (draft-cavage as used in the fediverse) and
``http_message_signatures`` (RFC 9421).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import formatdate

import http_message_signatures as hms
import httpx
import pytest
from bovine.crypto.helper import content_digest_sha256
from bovine.crypto.http_signature import build_signature
from bovine.crypto.signature_checker import SignatureChecker
from bovine.crypto.types import CryptographicIdentifier, CryptographicSecret
from httpsig import HeaderSigner, HeaderVerifier

from fedisocial.ap import httpsig
from fedisocial.errors import SignatureError

KEY_ID = "https://social.example/users/alice#main-key"
OWNER = "https://social.example/users/alice"
BODY = b'{"type": "Follow", "actor": "https://social.example/users/alice"}'
ACTIVITY_JSON = "application/activity+json"


@pytest.fixture(scope="module")
def rsa_key() -> httpsig.PrivateKey:
    return httpsig.generate_rsa_key()


@pytest.fixture(scope="module")
def other_rsa_key() -> httpsig.PrivateKey:
    return httpsig.generate_rsa_key()


def now() -> datetime:
    return datetime.now(UTC)


def bovine_checker(public_key: httpsig.PublicKey) -> SignatureChecker:
    async def retrieve(key_id: str) -> CryptographicIdentifier | None:
        return CryptographicIdentifier(OWNER, public_key) if key_id == KEY_ID else None

    return SignatureChecker(retrieve)


# --------------------------------------------- ours -> httpsig and bovine


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "https://remote.example/users/bob/outbox?page=true", None),
        ("POST", "https://remote.example:8443/users/bob/inbox", BODY),
    ],
)
def test_our_cavage_signature_verifies_with_httpsig(
    rsa_key: httpsig.PrivateKey, method: str, url: str, body: bytes | None
) -> None:
    """draft-cavage-12 §2.5: httpsig's HeaderVerifier accepts what we sign."""
    # Given a request we signed
    headers = {"Accept": ACTIVITY_JSON}
    headers |= httpsig.sign_request(method, url, headers, body, KEY_ID, rsa_key)
    signed_names = ["(request-target)", "host", "date"] + (["digest"] if body else [])
    target = url.split("/", 3)[3]

    def verifier(path: str) -> HeaderVerifier:
        return HeaderVerifier(
            headers,
            httpsig.public_key_to_pem(rsa_key),
            required_headers=signed_names,
            method=method,
            path=path,
            sign_header="signature",
        )

    # When httpsig checks it
    # Then it is valid, and not for another path
    assert verifier("/" + target).verify() is True
    assert verifier("/elsewhere").verify() is False


@pytest.mark.parametrize(
    ("method", "body", "key_factory"),
    [
        ("GET", None, httpsig.generate_rsa_key),
        ("POST", BODY, httpsig.generate_rsa_key),
        ("GET", None, httpsig.generate_ed25519_key),
    ],
)
async def test_our_cavage_signature_verifies_with_bovine(
    method: str, body: bytes | None, key_factory: Callable[[], httpsig.PrivateKey]
) -> None:
    """draft-cavage-12 §2.5: bovine's SignatureChecker (rsa-sha256, hs2019) accepts it."""
    # Given a request we signed (bovine rebuilds (request-target) without the query)
    key = key_factory()
    url = "https://remote.example/users/bob/inbox"
    headers = {"Content-Type": ACTIVITY_JSON}
    headers |= httpsig.sign_request(method, url, headers, body, KEY_ID, key)
    lower = {name.lower(): value for name, value in headers.items()}

    async def read_body() -> bytes:
        return body or b""

    # When bovine validates it, then it names the key's owner
    checker = bovine_checker(key.public_key())
    assert await checker.validate_signature(method, url, lower, read_body) == OWNER
    # and not when the body was changed
    if body:

        async def other_body() -> bytes:
            return body + b" "

        assert await checker.validate_signature(method, url, lower, other_body) is None


# --------------------------------------------- httpsig and bovine -> ours


@pytest.mark.parametrize("sign_header", ["signature", "authorization"])
def test_httpsig_signature_verifies_with_ours(
    rsa_key: httpsig.PrivateKey, sign_header: str
) -> None:
    """draft-cavage-12 §4.1 and §3.1: Signature and Authorization headers from httpsig."""
    # Given a POST signed by httpsig
    base = {
        "Host": "social.example",
        "Date": formatdate(usegmt=True),
        "Digest": httpsig.digest_header(BODY),
        "Content-Type": ACTIVITY_JSON,
    }
    signer = HeaderSigner(
        KEY_ID,
        httpsig.private_key_to_pem(rsa_key),
        algorithm="rsa-sha256",
        headers=["(request-target)", "host", "date", "digest", "content-type"],
        sign_header=sign_header,
    )
    headers = dict(signer.sign(base, method="POST", path="/users/alice/inbox").items())
    url = "https://social.example/users/alice/inbox"

    # When we verify it
    parsed = httpsig.verify_request("POST", url, headers, BODY, rsa_key.public_key(), now=now())

    # Then it is valid, and a tampered body is not
    assert parsed.key_id == KEY_ID
    with pytest.raises(SignatureError, match="Digest does not match"):
        httpsig.verify_request("POST", url, headers, BODY[:-1], rsa_key.public_key(), now=now())


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [("GET", "/users/alice/outbox?page=true", None), ("POST", "/users/alice/inbox", BODY)],
)
def test_bovine_signature_verifies_with_ours(
    rsa_key: httpsig.PrivateKey,
    other_rsa_key: httpsig.PrivateKey,
    method: str,
    target: str,
    body: bytes | None,
) -> None:
    """draft-cavage-12 §2.3: bovine's signing string (lower-case sha-256 Digest) verifies."""
    # Given a request signed by bovine, as bovine's signed_get / signed_post build it
    helper = build_signature("social.example", method.lower(), target).with_field(
        "date", formatdate(usegmt=True)
    )
    if body is not None:
        helper.with_field("digest", content_digest_sha256(body))
    helper.with_field("content-type", ACTIVITY_JSON)
    signature = helper.sign_for_http_draft(CryptographicSecret(KEY_ID, rsa_key))
    headers = {**helper.headers, "signature": signature}
    url = "https://social.example" + target

    # When we verify it
    parsed = httpsig.verify_request(method, url, headers, body, rsa_key.public_key(), now=now())

    # Then it is valid, and not under another key
    assert parsed.key_id == KEY_ID
    with pytest.raises(SignatureError, match="does not match the request"):
        other = other_rsa_key.public_key()
        httpsig.verify_request(method, url, headers, body, other, now=now())


# ------------------------------------------------------ RFC 9421 both ways


RFC9421_CASES = [
    pytest.param(hms.algorithms.RSA_V1_5_SHA256, httpsig.generate_rsa_key, False, id="rsa-no-alg"),
    pytest.param(hms.algorithms.RSA_V1_5_SHA256, httpsig.generate_rsa_key, True, id="rsa-alg"),
    pytest.param(hms.algorithms.ED25519, httpsig.generate_ed25519_key, True, id="ed25519-alg"),
    pytest.param(hms.algorithms.ED25519, httpsig.generate_ed25519_key, False, id="ed25519-no-alg"),
]


@pytest.mark.parametrize(("algorithm", "key_factory", "include_alg"), RFC9421_CASES)
def test_http_message_signatures_signature_verifies_with_ours(
    algorithm: type[hms.HTTPSignatureAlgorithm],
    key_factory: Callable[[], httpsig.PrivateKey],
    include_alg: bool,
) -> None:
    """RFC 9421 §3.2 + RFC 9530: a request signed by http_message_signatures verifies here."""
    # Given a POST signed by http_message_signatures, Content-Digest covered
    key = key_factory()
    request = httpx.Request(
        "POST",
        "https://social.example:8443/users/alice/inbox",
        headers={"Content-Type": ACTIVITY_JSON},
        content=BODY,
    )
    resolver = hms.MappingKeyResolver(public_keys={}, private_keys={KEY_ID: key})
    hms.HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver).sign(
        request,
        key_id=KEY_ID,
        label="sig1",
        include_alg=include_alg,
        covered_component_ids=("@method", "@target-uri", "@authority", "content-type"),
        body=BODY,
    )

    # When we verify it
    url, public = str(request.url), key.public_key()
    parsed = httpsig.verify_request("POST", url, request.headers, BODY, public, now=now())

    # Then it is valid with content-digest covered, and a tampered body is not
    assert parsed.scheme == "rfc9421"
    assert "content-digest" in parsed.components
    with pytest.raises(SignatureError, match="Content-Digest does not match"):
        httpsig.verify_request("POST", url, request.headers, BODY + b" ", public, now=now())


@pytest.mark.parametrize(("algorithm", "key_factory", "include_alg"), RFC9421_CASES)
def test_our_rfc9421_signature_verifies_with_http_message_signatures(
    algorithm: type[hms.HTTPSignatureAlgorithm],
    key_factory: Callable[[], httpsig.PrivateKey],
    include_alg: bool,
) -> None:
    """RFC 9421 §3.2: http_message_signatures verifies what sign_request_rfc9421 makes."""
    # Given a POST we signed with RFC 9421
    key = key_factory()
    url = "https://remote.example:8443/users/bob/inbox?x=1"
    headers = {"Content-Type": ACTIVITY_JSON}
    headers |= httpsig.sign_request_rfc9421(
        "POST", url, headers, BODY, KEY_ID, key, include_alg=include_alg
    )
    request = httpx.Request("POST", url, headers=headers, content=BODY)
    public_keys = {KEY_ID: key.public_key()}
    resolver = hms.MappingKeyResolver(public_keys=public_keys, private_keys={})
    verifier = hms.HTTPMessageVerifier(signature_algorithm=algorithm, key_resolver=resolver)

    # When http_message_signatures verifies it, body included
    results = verifier.verify(
        request, body=BODY, require_components=("@method", "@target-uri", "content-digest")
    )

    # Then it names our key and covered the body
    assert [result.parameters["keyid"] for result in results] == [KEY_ID]
    assert results[0].body == BODY
    with pytest.raises(hms.InvalidSignature):
        verifier.verify(request, body=BODY + b" ")


def test_http_message_signatures_query_param_signature_verifies_with_ours(
    rsa_key: httpsig.PrivateKey,
) -> None:
    """RFC 9421 §2.2.8: a signature over ``@query-param`` components verifies here."""
    # Given a GET signed by http_message_signatures over two named query parameters
    url = "https://social.example/users/alice/outbox?page=true&min%20id=a+b%7E&Pet=dog"
    request = httpx.Request("GET", url)
    resolver = hms.MappingKeyResolver(public_keys={}, private_keys={KEY_ID: rsa_key})
    signer = hms.HTTPMessageSigner(signature_algorithm=hms.algorithms.RSA_V1_5_SHA256,
                                   key_resolver=resolver)  # fmt: skip
    covered = ("@method", "@target-uri", '"@query-param";name="Pet"',
               '"@query-param";name="min%20id"')  # fmt: skip
    signer.sign(request, key_id=KEY_ID, label="sig1", covered_component_ids=covered)

    # When we verify it
    public = rsa_key.public_key()
    parsed = httpsig.verify_request("GET", url, request.headers, None, public, now=now())

    # Then it is valid, and a changed parameter value is not
    assert parsed.components.count("@query-param") == 2
    changed = url.replace("Pet=dog", "Pet=cat")
    with pytest.raises(SignatureError, match="does not match"):
        httpsig.verify_request("GET", changed, request.headers, None, public, now=now())
