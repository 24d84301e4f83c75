"""Bundled JSON-LD context documents and pyld helpers that never touch the network.

Only the contexts in ``fedisocial/ap/contexts/`` are served to pyld, tagged ``static``
so pyld resolves each one once per process; any other context URL raises
``InvalidDocument``. pyld costs 1-7 ms per document (DESIGN.md, performance notes),
so use it only where JSON-LD semantics matter (LD signatures, odd contexts); the
inbox reads plain JSON through ``fedisocial.ap.vocab.normalize``.

Where the bundled texts come from (copied byte for byte):

- ``activitystreams.json``: fedify-dev/fedify
  ``packages/vocab-runtime/src/contexts/activitystreams.json`` (the document served at
  https://www.w3.org/ns/activitystreams).
- ``security-v1.json``: the https://w3id.org/security/v1 text as vendored in a raw string
  by affinidi/affinidi-ssi-dart (``lib/src/credentials/proof/``); same terms as Fedify's
  preloaded copy.
- ``security-multikey-v1.json``: digitalbazaar/multikey-context
  ``contexts/multikey-v1.jsonld``.
- ``security-data-integrity-v1.json``: w3c/vc-data-integrity ``contexts/data-integrity/v1``.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib.resources import files
from typing import Any

from fedisocial.errors import InvalidDocument

__all__ = [
    "ACTOR_CONTEXT",
    "AS_CONTEXT_URL",
    "BUNDLED_CONTEXTS",
    "DATA_INTEGRITY_V1_URL",
    "MULTIKEY_V1_URL",
    "OBJECT_CONTEXT",
    "SECURITY_V1_URL",
    "bundled_context",
    "compact",
    "document_loader",
    "expand",
]

AS_CONTEXT_URL = "https://www.w3.org/ns/activitystreams"
SECURITY_V1_URL = "https://w3id.org/security/v1"
MULTIKEY_V1_URL = "https://w3id.org/security/multikey/v1"
DATA_INTEGRITY_V1_URL = "https://w3id.org/security/data-integrity/v1"

#: Context URL -> file name under ``fedisocial/ap/contexts/``.
BUNDLED_CONTEXTS: dict[str, str] = {
    AS_CONTEXT_URL: "activitystreams.json",
    SECURITY_V1_URL: "security-v1.json",
    MULTIKEY_V1_URL: "security-multikey-v1.json",
    DATA_INTEGRITY_V1_URL: "security-data-integrity-v1.json",
}

_PENDING = "https://purl.archive.org/socialweb/pending#"
#: FEP-5e53's terms, under the FEP's permanent address
FEP_5E53 = "https://w3id.org/fep/5e53#"

#: The ``@context`` of our actor documents, Mastodon-style. The term definitions are
#: copied from Mastodon's ``ContextHelper::CONTEXT_EXTENSION_MAP``
#: (mastodon/mastodon ``app/helpers/context_helper.rb``, formerly
#: ``app/lib/activitypub/adapter.rb``). ``assertionMethod`` is ours: FEP-521a keys are
#: ``Multikey`` objects (declared by multikey/v1), but the ``assertionMethod`` property
#: itself is only defined by the DID and Data Integrity contexts, so without this
#: line a JSON-LD processor would drop our keys.
ACTOR_CONTEXT: list[Any] = [
    AS_CONTEXT_URL,
    SECURITY_V1_URL,
    MULTIKEY_V1_URL,
    {
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "toot": "http://joinmastodon.org/ns#",
        "featured": {"@id": "toot:featured", "@type": "@id"},
        "discoverable": "toot:discoverable",
        "indexable": "toot:indexable",
        "schema": "http://schema.org#",
        "PropertyValue": "schema:PropertyValue",
        "value": "schema:value",
        "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
        "blurhash": "toot:blurhash",
        "assertionMethod": {"@id": "https://w3id.org/security#assertionMethod", "@type": "@id"},
        # FEP-4ccd (https://purl.archive.org/socialweb/pending), inline
        "pendingFollowers": {"@id": _PENDING + "pendingFollowers", "@type": "@id"},
        "pendingFollowing": {"@id": _PENDING + "pendingFollowing", "@type": "@id"},
        # FEP-5e53 (opt-out preference signals): the FEP names no namespace of its own yet
        "xRobotsTag": FEP_5E53 + "xRobotsTag",
    },
]

#: Our own JSON-LD namespace (terms documented in FEDERATION.md)
FEDISOCIAL_NS = "https://fedisocial.github.io/ns#"

#: The @context of the objects and activities we send: AS2 plus Mastodon's
#: extension terms, declared inline so receivers never fetch a context of ours.
OBJECT_CONTEXT: list[Any] = [
    AS_CONTEXT_URL,
    {
        "sensitive": "as:sensitive",
        "Hashtag": "as:Hashtag",
        "toot": "http://joinmastodon.org/ns#",
        "Emoji": "toot:Emoji",
        "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
        "blurhash": "toot:blurhash",
        "fedisocial": FEDISOCIAL_NS,
        "digitalSourceType": {"@id": "fedisocial:digitalSourceType", "@type": "@id"},
    },
]


def _canonical_url(url: str) -> str:
    # Documents name the same context as http://..., with a trailing "#" or "/".
    if url.startswith("http://"):
        url = "https://" + url[len("http://") :]
    return url.rstrip("#/")


@cache
def _load(name: str) -> dict[str, Any]:
    text = files("fedisocial.ap").joinpath("contexts", name).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def bundled_context(url: str) -> dict[str, Any]:
    """Return a fresh copy of a bundled context document; ``InvalidDocument`` if unknown."""
    name = BUNDLED_CONTEXTS.get(_canonical_url(url))
    if name is None:
        raise InvalidDocument(
            f"unknown JSON-LD context {url!r}: only bundled contexts are used, "
            f"never fetched ({', '.join(BUNDLED_CONTEXTS)})"
        )
    return copy.deepcopy(_load(name))


def document_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pyld document loader serving only the bundled contexts, tagged ``static``.

    Raises ``InvalidDocument`` for any other URL; it never opens a connection.
    """
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": bundled_context(url),
        "tag": "static",
    }


def _invalid(error: Exception) -> InvalidDocument:
    cause: Any = error
    while cause is not None:
        if isinstance(cause, InvalidDocument):
            return cause
        details = getattr(cause, "details", None)
        nested = details.get("cause") if isinstance(details, dict) else None
        cause = getattr(cause, "cause", None) or nested
    return InvalidDocument(f"JSON-LD processing failed: {error.args[0] if error.args else error}")


def expand(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Expand a document with pyld using only the bundled contexts (never the network).

    Raises ``InvalidDocument`` for unknown contexts or invalid JSON-LD.
    """
    from pyld import jsonld  # imported on first use: ~9 MB that most processes never need

    try:
        expanded: list[dict[str, Any]] = jsonld.expand(doc, {"documentLoader": document_loader})
    except jsonld.JsonLdError as error:
        raise _invalid(error) from error
    return expanded


def compact(doc: dict[str, Any] | list[Any], context: Any) -> dict[str, Any]:
    """Compact a (possibly expanded) document against ``context`` with the bundled loader.

    Raises ``InvalidDocument`` for unknown contexts or invalid JSON-LD.
    """
    from pyld import jsonld

    try:
        compacted: dict[str, Any] = jsonld.compact(
            doc, context, {"documentLoader": document_loader}
        )
    except jsonld.JsonLdError as error:
        raise _invalid(error) from error
    return compacted
