"""Actor keys: generate, PEM in and out, and FEP-521a Ed25519 Multikey.

Our own keys are RSA 2048 (what every fediverse server verifies) and Ed25519
(FEP-521a, RFC 9421 ``ed25519``). Remote keys also come as EC. Loading a PEM
is slow under OpenSSL 3, so both loaders are cached by the PEM text; a
remote ``publicKeyPem`` that cannot be used raises
:class:`~fedisocial.errors.SignatureError`, since it fails a signature.
"""

from __future__ import annotations

import functools
import re
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fedisocial.errors import SignatureError

__all__ = [
    "PrivateKey",
    "PublicKey",
    "ed25519_multibase",
    "generate_ed25519_key",
    "generate_rsa_key",
    "load_private_key",
    "load_public_key",
    "parse_multibase_ed25519",
    "private_key_to_pem",
    "public_key_to_pem",
]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def generate_rsa_key() -> rsa.RSAPrivateKey:
    """Generate the 2048-bit RSA key (e=65537) every fediverse server can verify."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def generate_ed25519_key() -> ed25519.Ed25519PrivateKey:
    """Generate an Ed25519 key, for FEP-521a Multikey and RFC 9421 ``ed25519``."""
    return ed25519.Ed25519PrivateKey.generate()


def private_key_to_pem(key: PrivateKey) -> str:
    """Serialize a private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_key_to_pem(key: PublicKey | PrivateKey) -> str:
    """Serialize a public key (or the public half of a private key) as SPKI PEM."""
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


@functools.lru_cache(maxsize=64)
def load_private_key(pem: str) -> PrivateKey:
    """Load our own PEM private key, once: parsing costs ~56 ms under OpenSSL 3.

    Our keys are ones we generated, so OpenSSL's RSA consistency check (most of
    that cost) is skipped. Raises ``ValueError`` for anything but an unencrypted
    RSA or Ed25519 key.
    """
    key = serialization.load_pem_private_key(
        pem.encode("ascii"), password=None, unsafe_skip_rsa_key_validation=True
    )
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


@functools.lru_cache(maxsize=4096)
def load_public_key(pem: str) -> PublicKey:
    """Load a remote actor's ``publicKeyPem``, tolerating odd folding; cached.

    Real servers publish PEMs with spaces instead of newlines, literal ``\\n``
    or unusual line lengths, so the base64 body is re-wrapped before parsing.
    Accepts SPKI (``PUBLIC KEY``) and PKCS#1 (``RSA PUBLIC KEY``) RSA, Ed25519
    and EC keys. Raises SignatureError on anything else.
    """
    match = _PEM_RE.search(pem.replace("\\n", "\n"))
    if match is None:
        raise SignatureError("The public key is not in PEM format")
    label, body = match.group(1), "".join(match.group(2).split())
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    text = f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"The public key PEM cannot be parsed: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise SignatureError(f"Unsupported public key type {type(key).__name__}")
    return key


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58)}
_ED25519_PUB = b"\xed\x01"  # multicodec varint of ed25519-pub


def _b58encode(data: bytes) -> str:
    number, digits = int.from_bytes(data, "big"), []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_B58[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _B58_INDEX:
            raise SignatureError(
                f"publicKeyMultibase is not base58btc: {char!r} is not a base58btc character"
            )
        number = number * 58 + _B58_INDEX[char]
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def ed25519_multibase(public_key: ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey) -> str:
    """Encode an Ed25519 key as FEP-521a ``publicKeyMultibase`` (``z6Mk...``)."""
    if isinstance(public_key, ed25519.Ed25519PrivateKey):
        public_key = public_key.public_key()
    return "z" + _b58encode(_ED25519_PUB + public_key.public_bytes_raw())


@functools.lru_cache(maxsize=4096)
def parse_multibase_ed25519(value: str) -> ed25519.Ed25519PublicKey:
    """Decode a FEP-521a ``publicKeyMultibase`` Ed25519 key; cached.

    Raises SignatureError unless it is ``z`` + base58btc(0xed 0x01 + 32 bytes).
    """
    if not value.startswith("z"):
        raise SignatureError("publicKeyMultibase must be base58btc (start with 'z')")
    data = _b58decode(value[1:])
    if len(data) != 34 or not data.startswith(_ED25519_PUB):
        raise SignatureError("publicKeyMultibase is not an Ed25519 public key")
    return ed25519.Ed25519PublicKey.from_public_bytes(data[2:])
