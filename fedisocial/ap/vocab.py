"""ActivityStreams 2.0 vocabulary: constants, tolerant readers, ``normalize`` and extractors.

"Normalize, then extract" (GoToSocial ``internal/ap/normalize.go`` / ``extract.go``):
``normalize`` repairs the shapes remote servers really send (a string where a list
is expected, a Link where a URL is expected, ``contentMap`` without ``content``, a
type array, ``as:Public``), and the ``extract_*`` / ``parse_*`` functions then read
the few fields we act on. Everything here is pure: no I/O, no JSON-LD processing
(plain dict access is ~100x cheaper than pyld; see ``fedisocial.ap.jsonld``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import orjson

from fedisocial.errors import BadRequest, InvalidDocument

__all__ = [
    "ACTIVITY_JSON",
    "ACTOR_TYPES",
    "AS_CONTEXT",
    "AS_NS",
    "AS_PUBLIC",
    "AUTOMATED_TYPES",
    "LD_JSON",
    "LD_JSON_PROFILE",
    "MAX_JSON_DEPTH",
    "OTHER_TYPES_KEY",
    "POST_TYPES",
    "PUBLIC_ALIASES",
    "STATUS_TYPES",
    "RemoteActor",
    "WebfingerResult",
    "accepts_activity_json",
    "as_list",
    "canonical_pem",
    "check_http_url",
    "check_json_depth",
    "content_language",
    "extract_actor",
    "first",
    "get_id",
    "host_of",
    "http_url",
    "is_activity_media_type",
    "is_automated",
    "load_json",
    "mention_hrefs",
    "normalize",
    "parse_handle",
    "parse_json_object",
    "parse_webfinger",
    "same_origin",
]

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
AS_NS = AS_CONTEXT + "#"
#: The special collection meaning "everyone" (AS2 Vocabulary §5.6 / ActivityPub §5.6).
AS_PUBLIC = AS_NS + "Public"
#: Compact forms of ``AS_PUBLIC`` seen in the wild; all are read as ``AS_PUBLIC``.
PUBLIC_ALIASES = frozenset({AS_PUBLIC, "as:Public", "Public"})
ACTIVITY_JSON = "application/activity+json"
LD_JSON = "application/ld+json"
LD_JSON_PROFILE = f'{LD_JSON}; profile="{AS_CONTEXT}"'
ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})
#: actor types of automated accounts (Mastodon shows them as bots)
AUTOMATED_TYPES = frozenset({"Service", "Application"})
#: object types shown as posts (what a Create may carry to appear in feeds)
POST_TYPES = frozenset({"Note", "Article", "Page", "Question", "Event", "Video"})
#: what apps are shown as statuses (posts, and Pixelfed's and PeerTube's media objects)
STATUS_TYPES = POST_TYPES | {"Image"}
#: Deepest nesting of JSON objects and arrays we read; real documents stay near 10.
MAX_JSON_DEPTH = 64
#: Key under which ``normalize`` keeps the non-AS2 entries of a type array.
OTHER_TYPES_KEY = "_otherTypes"

# Every class term of the AS2 context document (types we can pick out of a type array).
_AS_TYPE_NAMES = (
    "Accept Activity IntransitiveActivity Add Announce Application Arrive Article Audio "
    "Block Collection CollectionPage Relationship Create Delete Dislike Document Event "
    "Follow Flag Group Ignore Image Invite Join Leave Like Link Mention Note Object Offer "
    "OrderedCollection OrderedCollectionPage Organization Page Person Place Profile "
    "Question Reject Remove Service TentativeAccept TentativeReject Tombstone Undo Update "
    "Video View Listen Read Move Travel IsFollowing IsFollowedBy IsContact IsMember"
)
_AS_TYPES = frozenset(_AS_TYPE_NAMES.split())
#: the fields that address a document (normalized: lists of ids)
ADDRESSING = ("to", "cc", "bto", "bcc", "audience")
_LANGUAGE_MAPS = (("content", "contentMap"), ("name", "nameMap"), ("summary", "summaryMap"))
_PROFILE_PAGE_REL = "http://webfinger.net/rel/profile-page"
_HANDLE_USER = re.compile(r"[^\s@/:?#]+")
_HANDLE_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?")
_PEM_ARMOR = re.compile(r"-----(BEGIN|END) ([A-Z0-9 ]+)-----")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


# -- tolerant readers -------------------------------------------------------------------


def load_json(body: bytes, what: str) -> Any:
    """``orjson.loads`` of ``body``, refusing nesting deeper than ``MAX_JSON_DEPTH``.

    Raises :class:`InvalidDocument` naming ``what`` for too deep a document, and
    ``orjson.JSONDecodeError`` for text that is not JSON (callers word that one).
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson stops at 1,024 levels
            raise InvalidDocument(_too_deep(what, MAX_JSON_DEPTH)) from exc
        raise
    check_json_depth(doc, what)
    return doc


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object; BadRequest with the reason otherwise.

    Objects and arrays nested deeper than ``MAX_JSON_DEPTH`` are refused too.
    """
    try:
        doc = load_json(body, "the body")
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not JSON") from exc
    if not isinstance(doc, dict):
        raise BadRequest("the body is JSON but not an object")
    return doc


def _children(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        return value.values()
    return value if isinstance(value, list) else ()


def check_json_depth(doc: Any, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse (InvalidDocument) parsed JSON whose objects and arrays nest deeper than ``limit``.

    orjson parses up to 1,024 levels, but the readers here, ``normalize``, pyld and the
    JSON encoders recurse: a document nested that deep would crash them. Level by level,
    without recursion.
    """
    level = [doc]
    for _ in range(limit):
        level = [child for value in level for child in _children(value)]
        if not level:
            return
    if any(isinstance(value, dict | list) for value in level):
        raise InvalidDocument(_too_deep(what, limit))


def _too_deep(what: str, limit: int) -> str:
    return f"{what} is JSON nested deeper than {limit} levels"


def as_list(value: Any) -> list[Any]:
    """Return ``value`` as a list: ``None`` is ``[]``, a list is copied, anything else wrapped."""
    if value is None:
        return []
    if isinstance(value, list):
        return list(value)
    return [value]


def get_id(value: Any) -> str | None:
    """Return the IRI a value stands for: a string, an object's ``id``, or a Link's ``href``.

    A list yields the id of its first usable entry; anything else yields ``None``.
    """
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):
        for key in ("id", "href"):
            found = value.get(key)
            if isinstance(found, str) and found:
                return found
        return None
    if isinstance(value, list):
        for item in value:
            found_id = get_id(item)
            if found_id:
                return found_id
    return None


def mention_hrefs(doc: Mapping[str, Any]) -> list[str]:
    """The actor ids a document's ``tag`` mentions, in order."""
    return [tag["href"] for tag in as_list(doc.get("tag"))
            if isinstance(tag, dict) and tag.get("type") == "Mention"
            and isinstance(tag.get("href"), str)]  # fmt: skip


def first(value: Any) -> Any:
    """Return the first element of a list (``None`` if empty), or ``value`` itself."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value: Any) -> bool:
    return value is True


# -- URLs -------------------------------------------------------------------------------


def host_of(uri: str) -> str:
    """``host[:port]`` of a URI, lower case: a handle's domain, a delivery's host."""
    return _origin(uri)[1]


def is_automated(actor_type: str, doc: Mapping[str, Any] | None = None) -> bool:
    """Whether an actor is a bot: a Service or Application (Mastodon's ``bot``), or a
    document saying ``bot: true`` (Misskey, some bridges)."""
    return actor_type in AUTOMATED_TYPES or (doc or {}).get("bot") is True


def content_language(doc: Mapping[str, Any]) -> str | None:
    """The language tag a post is written in: its ``contentMap``'s first key (Mastodon's)."""
    content_map = doc.get("contentMap")
    if isinstance(content_map, dict):
        return next((key for key in content_map if isinstance(key, str) and key), None)
    return None


def same_origin(a: str, b: str) -> bool:
    """Whether two URIs share scheme, host and port (the trust boundary of AP)."""
    return _origin(a) == _origin(b)


@functools.lru_cache(maxsize=8192)
def _origin(uri: str) -> tuple[str, str]:
    """Scheme and lower-case ``host[:port]`` of ``uri``. Cached: processing an activity
    compares the same few ids (its own, its actor's, its object's) several times; uncached,
    ``same_origin`` was 6.6 % of a worker's py-spy samples, most in ``urlsplit``."""
    parts = urlsplit(uri)
    return parts.scheme, parts.netloc.lower()


@functools.lru_cache(maxsize=4096)
def _is_real_host(host: str) -> bool:
    """An IP literal or a DNS name (internationalized names allowed), not a placeholder.

    Cached: every URL of every received post asks, and hosts repeat.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.removesuffix(".").split(".")
    return all(_DNS_LABEL.fullmatch(label) for label in labels)


def check_http_url(url: str, what: str) -> str:
    """Return ``url`` if it is an http(s) URL on a real host; InvalidDocument naming ``what``.

    Refused: other schemes, an empty or placeholder host (``{{DOMAIN}}``), user info
    (``user@host``), a bad port, and whitespace or control characters anywhere.
    """
    if any(char <= " " or char == "\x7f" for char in url):
        raise InvalidDocument(f"{what} {url!r} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidDocument(f"{what} {url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("https", "http"):
        raise InvalidDocument(f"{what} {url!r} is not an http(s) URL")
    if "@" in parts.netloc:
        raise InvalidDocument(f"{what} {url!r} has user info before its host")
    if not parts.hostname or not _is_real_host(parts.hostname):
        raise InvalidDocument(f"{what} {url!r} does not name a real host")
    return url


def http_url(value: Any) -> str | None:
    """``value`` if :func:`check_http_url` accepts it, else None: for links that are dropped.

    Every URL taken from a remote document passes here (or through
    :func:`check_http_url`) before it is stored or put in HTML: ``javascript:``,
    ``data:``, relative, host-less and placeholder-host URLs are dropped.
    """
    if not isinstance(value, str):
        return None
    try:
        return check_http_url(value, "link")
    except InvalidDocument:
        return None


# -- normalize --------------------------------------------------------------------------


def _as2_type(value: str) -> str:
    for prefix in (AS_NS, "as:"):
        if value.startswith(prefix) and value[len(prefix) :] in _AS_TYPES:
            return value[len(prefix) :]
    return value


def _normalize_type(out: dict[str, Any]) -> None:
    value = out.get("type")
    if isinstance(value, str):
        out["type"] = _as2_type(value)
        return
    if not isinstance(value, list):
        return
    # e.g. Mastodon 2017 ["Person", "vcard:individual"]: act on the AS2 type, keep the rest.
    names = [_as2_type(item) for item in value if isinstance(item, str)]
    chosen = next((name for name in names if name in _AS_TYPES), names[0] if names else None)
    if chosen is None:
        del out["type"]
        return
    out["type"] = chosen
    others = [name for name in names if name != chosen]
    if others:
        out[OTHER_TYPES_KEY] = others


def _public(iri: str) -> str:
    return AS_PUBLIC if iri in PUBLIC_ALIASES else iri


def _addressing(value: Any) -> list[str]:
    ids = (get_id(item) for item in as_list(value))
    return [_public(iri) for iri in ids if iri]


def _url(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, Mapping):  # a Link (href) or, rarely, an object with its own url
        return _str(value.get("href")) or _url(value.get("url"))
    if isinstance(value, list):
        # PeerTube lists every rendition as a Link; the HTML page is the one to show.
        html = [v for v in value if isinstance(v, Mapping) and v.get("mediaType") == "text/html"]
        for candidate in html + value:
            found = _url(candidate)
            if found:
                return found
    return None


def normalize(doc: dict[str, Any]) -> dict[str, Any]:
    """Return a repaired shallow copy of a received AS2 document; ``doc`` is not mutated.

    - ``type``: a type array becomes its AS2 type (``as:``/full IRIs compacted); the
      other entries are kept under ``OTHER_TYPES_KEY``.
    - ``to``, ``cc``, ``bto``, ``bcc``, ``audience``: always lists of id strings, with
      ``as:Public`` / ``Public`` expanded to ``AS_PUBLIC``.
    - ``content`` / ``name`` / ``summary``: taken from the first language of
      ``contentMap`` / ``nameMap`` / ``summaryMap`` when missing.
    - ``attachment`` and ``tag``: lists when present.
    - ``url``: a string (a Link's ``href``, the first usable entry of a list).

    ``object`` and every other value are left as given, and nested objects are shared
    with ``doc``: normalize an embedded object on its own when you process it. A missing
    ``@context`` is tolerated. Raises ``InvalidDocument`` if ``doc`` is not a JSON object.
    """
    if not isinstance(doc, dict):
        raise InvalidDocument(f"expected a JSON object, got {type(doc).__name__}")
    out = dict(doc)
    _normalize_type(out)
    for key in ADDRESSING:
        out[key] = _addressing(out.get(key))
    for plain, mapped in _LANGUAGE_MAPS:
        language_map = out.get(mapped)
        if out.get(plain) is None and isinstance(language_map, Mapping) and language_map:
            out[plain] = next(iter(language_map.values()))
    for key in ("attachment", "tag"):
        if key in out:
            out[key] = as_list(out[key])
    if "url" in out:
        url = _url(out["url"])
        if url is None:
            del out["url"]
        else:
            out["url"] = url
    return out


# -- actors -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteActor:
    """The fields of a remote actor document that we act on."""

    id: str
    type: str
    inbox: str
    preferred_username: str | None = None
    name: str | None = None
    summary: str | None = None
    url: str | None = None
    outbox: str | None = None
    shared_inbox: str | None = None
    followers: str | None = None
    following: str | None = None
    featured: str | None = None
    public_key_id: str | None = None
    public_key_owner: str | None = None
    public_key_pem: str | None = None
    icon_url: str | None = None
    image_url: str | None = None
    manually_approves_followers: bool = False
    discoverable: bool = False


def canonical_pem(pem: str) -> str:
    """Rebuild a PEM block with its armor lines and 64-column base64 body.

    Some stored actor documents fold the PEM onto one line with spaces instead of
    newlines (e.g. Fedify's activitypub.academy fixture); strict parsers reject that.
    Text without PEM armor is returned unchanged.
    """
    armor = _PEM_ARMOR.findall(pem)
    if len(armor) != 2 or armor[0][0] != "BEGIN" or armor[1][0] != "END":
        return pem
    label = armor[0][1]
    body = "".join(_PEM_ARMOR.sub("", pem).split())
    lines = [body[start : start + 64] for start in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


def _public_key(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    # Usually one object; a few servers send a list of keys. Take the first with a PEM.
    for key in as_list(doc.get("publicKey")):
        if isinstance(key, Mapping) and isinstance(key.get("publicKeyPem"), str):
            return key
    return {}


def _image_url(value: Any) -> str | None:
    images = [item for item in as_list(value) if item is not None]
    # PeerTube sends several avatar sizes: take the widest.
    sized = [i for i in images if isinstance(i, Mapping) and isinstance(i.get("width"), int)]
    if sized:
        images = sorted(sized, key=lambda image: image["width"], reverse=True)
    for image in images:
        found = _url(image.get("url") if isinstance(image, Mapping) else image)
        if found:
            return found
    return None


def _shared_inbox(doc: Mapping[str, Any]) -> str | None:
    endpoints = doc.get("endpoints")
    if isinstance(endpoints, Mapping):
        found = get_id(endpoints.get("sharedInbox"))
        if found:
            return found
    return get_id(doc.get("sharedInbox"))  # Misskey also puts it at the top level


def extract_actor(doc: dict[str, Any]) -> RemoteActor:
    """Read an actor document (raw or already normalized) into a ``RemoteActor``.

    ``shared_inbox`` comes from ``endpoints.sharedInbox`` or Misskey's top-level
    ``sharedInbox``; ``public_key_pem`` is returned in canonical PEM form. Raises
    ``InvalidDocument`` when the document is not an actor, lacks ``id`` / ``inbox``,
    names a URI that is not http(s) on a real host (id, inbox, shared inbox, key id,
    followers), or a key on another origin or owned by someone else.
    """
    doc = normalize(doc)
    kind = doc.get("type")
    if kind not in ACTOR_TYPES:
        raise InvalidDocument(f"not an actor: type is {kind!r}, expected one of "
                              f"{', '.join(sorted(ACTOR_TYPES))}")  # fmt: skip
    actor_id, inbox = _str(doc.get("id")), get_id(doc.get("inbox"))
    if not actor_id or not inbox:
        missing = "id" if not actor_id else "inbox"
        raise InvalidDocument(f"actor document has no {missing}: {actor_id or '(no id)'}")
    key = _public_key(doc)
    pem = _str(key.get("publicKeyPem"))
    actor = RemoteActor(
        id=actor_id,
        type=kind,
        inbox=inbox,
        preferred_username=_str(doc.get("preferredUsername")),
        name=_str(doc.get("name")),
        summary=_str(doc.get("summary")),
        url=_str(doc.get("url")),
        outbox=get_id(doc.get("outbox")),
        shared_inbox=_shared_inbox(doc),
        followers=get_id(doc.get("followers")),
        following=get_id(doc.get("following")),
        featured=get_id(doc.get("featured")),
        public_key_id=_str(key.get("id")),
        public_key_owner=get_id(key.get("owner")),
        public_key_pem=canonical_pem(pem) if pem else None,
        icon_url=_image_url(doc.get("icon")),
        image_url=_image_url(doc.get("image")),
        manually_approves_followers=_bool(doc.get("manuallyApprovesFollowers")),
        discoverable=_bool(doc.get("discoverable")),
    )
    _check_uris(actor)
    _check_key(actor)
    return actor


def _check_uris(actor: RemoteActor) -> None:
    """The URIs we store and send to must be real http(s) URLs."""
    check_http_url(actor.id, "the actor id")
    stored = {"the inbox": actor.inbox, "the shared inbox": actor.shared_inbox,
              "the key id": actor.public_key_id, "the followers": actor.followers}  # fmt: skip
    for what, url in stored.items():
        if url is not None:
            check_http_url(url, f"{what} of {actor.id}")


def _check_key(actor: RemoteActor) -> None:
    """A key speaks for the actor only if it lives on the actor's origin and names it as owner.

    Keys are found by id: an actor claiming a key id on another origin would shadow the
    real owner's key, and that owner's signatures would stop verifying.
    """
    key_id, owner = actor.public_key_id, actor.public_key_owner
    if key_id is not None and not same_origin(key_id, actor.id):
        raise InvalidDocument(f"the key {key_id} is not on the actor's host ({actor.id})")
    if owner is not None and owner != actor.id:
        raise InvalidDocument(f"the key {key_id} is owned by {owner}, not by {actor.id}")


# -- WebFinger, handles --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebfingerResult:
    """What a WebFinger JRD (RFC 7033) tells us about an account."""

    subject: str | None
    aliases: tuple[str, ...]
    actor_url: str | None
    profile_url: str | None


def _links(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [link for link in as_list(doc.get("links")) if isinstance(link, Mapping)]


def parse_webfinger(jrd: dict[str, Any]) -> WebfingerResult:
    """Read a JRD: subject, aliases, the ActivityPub actor and the profile page.

    The actor is the ``self`` link whose type is ``application/activity+json`` or
    ``application/ld+json`` with the ActivityStreams profile; ``actor_url`` is ``None``
    when there is none. Raises ``InvalidDocument`` if ``jrd`` is not a JSON object.
    """
    if not isinstance(jrd, dict):
        raise InvalidDocument(f"WebFinger answer is not a JSON object: {type(jrd).__name__}")
    actor_url = profile_url = None
    for link in _links(jrd):
        href, rel = _str(link.get("href")), link.get("rel")
        if not href:
            continue
        if rel == "self" and actor_url is None and is_activity_media_type(link.get("type")):
            actor_url = href
        elif rel == _PROFILE_PAGE_REL and profile_url is None:
            profile_url = href
    aliases = tuple(alias for alias in as_list(jrd.get("aliases")) if isinstance(alias, str))
    return WebfingerResult(_str(jrd.get("subject")), aliases, actor_url, profile_url)


def parse_handle(text: str) -> tuple[str, str]:
    """Split ``alice@host``, ``@alice@host`` or ``acct:alice@host[:port]`` into (user, host).

    The host is lowercased (internationalized names become punycode). Raises
    ``BadRequest`` when the text is not a handle.
    """
    handle = text.strip()
    if handle[:5].lower() == "acct:":
        handle = handle[5:]
    user, at, host = handle.removeprefix("@").partition("@")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        host = ""
    if not at or not _HANDLE_USER.fullmatch(user) or not _HANDLE_HOST.fullmatch(host):
        raise BadRequest(f"not a fediverse handle: {text!r} (expected user@host)")
    return user, host


# -- content negotiation ----------------------------------------------------------------


def _media_range(text: str) -> tuple[str, dict[str, str]]:
    kind, *params = text.split(";")
    parsed: dict[str, str] = {}
    for param in params:
        name, _, value = param.partition("=")
        parsed[name.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), parsed


def _is_activity(kind: str, params: Mapping[str, str]) -> bool:
    if kind == ACTIVITY_JSON:
        return True
    if kind != LD_JSON:
        return False
    profile = params.get("profile")  # may list several space-separated IRIs
    return profile is None or AS_CONTEXT in profile.split()


def is_activity_media_type(value: Any) -> bool:
    """Tell whether a media type names ActivityStreams JSON (either accepted spelling)."""
    return isinstance(value, str) and _is_activity(*_media_range(value))


def _quality(params: Mapping[str, str]) -> float:
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 1.0


@lru_cache(maxsize=512)
def accepts_activity_json(accept_header: str) -> bool:
    """Tell whether an ``Accept`` header asks for ActivityStreams rather than HTML.

    True for ``application/activity+json`` and ``application/ld+json`` (plain or with
    the ActivityStreams profile) unless given ``q=0``; browsers' ``text/html, */*``
    headers are false. Cached: the same few headers arrive over and over.
    """
    if "json" not in accept_header.lower():
        return False
    return any(
        _is_activity(kind, params) and _quality(params) > 0
        for kind, params in map(_media_range, _split_header(accept_header))
    )


def _split_header(header: str) -> Iterable[str]:
    return (part for part in header.split(",") if part.strip())
