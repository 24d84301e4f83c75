"""Every AS2 document we send or serve, built in one place from plain values.

Notes, activities, actors, Tombstones, collections and collection pages, and
media attachments come out of the functions here, so a post and its edit, or a
page and its collection, cannot disagree on shape. Callers (``social``,
``studio``, ``web``) turn their rows into the frozen dataclasses below and pass
the URIs they minted with :class:`fedisocial.urls.Urls`.

Every document is :func:`compact`: AS2 Core says that
"the absence of any items in [an] array MUST be represented by omitting the
property entirely or by setting the value to null", so no ``"tag": []``,
``"cc": []`` or ``"orderedItems": []`` ever leaves this module.
https://www.w3.org/TR/activitystreams-core/
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fedisocial.ap.jsonld import ACTOR_CONTEXT, AS_CONTEXT_URL, OBJECT_CONTEXT
from fedisocial.urls import Urls

__all__ = [
    "TRAINED_ALGORITHMIC_MEDIA",
    "ActivityType",
    "Actor",
    "Attachment",
    "Mention",
    "Note",
    "activity",
    "actor",
    "attachment",
    "collection_page",
    "compact",
    "embedded",
    "iso",
    "note",
    "ordered_collection",
    "served_tombstone",
    "tombstone",
]

#: IPTC digital source type of images made by a trained model
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

ActivityType = Literal[
    "Create",
    "Update",
    "Delete",
    "Announce",
    "Like",
    "Undo",
    "Follow",
    "Accept",
    "Reject",
    "Block",
    "Add",
    "Remove",
]


def iso(moment: datetime) -> str:
    """``2026-11-26T07:39:30Z``: the timestamp shape every server parses."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def compact(value: Any) -> Any:
    """``value`` with every empty array property removed, at any depth (AS2 Core)."""
    if isinstance(value, Mapping):
        return {k: compact(v) for k, v in value.items() if not (isinstance(v, list) and not v)}
    if isinstance(value, list):
        return [compact(item) for item in value]
    return value


# -- attachments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    """A media file of a post; ``description`` is its alt text."""

    media_type: str
    url: str
    description: str
    width: int
    height: int
    blurhash: str | None
    focal_point: tuple[float, float] = (0.0, 0.0)
    #: made by a model: labeled with the IPTC digital source type
    ai_generated: bool = False
    kind: Literal["Image", "Document"] = "Image"


def attachment(media: Attachment) -> dict[str, Any]:
    """The ``Image`` (or ``Document``) Mastodon, GoToSocial and Misskey show inline.

    The alt text goes in ``name`` (Mastodon) and ``summary`` (servers that read
    that); AI-made media carry ``digitalSourceType``.
    """
    doc: dict[str, Any] = {
        "type": media.kind,
        "mediaType": media.media_type,
        "url": media.url,
        "name": media.description,
        "summary": media.description,
        "width": media.width,
        "height": media.height,
        "blurhash": media.blurhash,
        "focalPoint": list(media.focal_point),
    }
    if media.ai_generated:
        doc["digitalSourceType"] = TRAINED_ALGORITHMIC_MEDIA
    return doc


# -- notes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    """An actor a post mentions: its id and full handle (``user@host``)."""

    href: str
    acct: str


@dataclass(frozen=True)
class Note:
    """A post, with its addressing already decided (see ``fedisocial.ap.addressing``).

    ``attachments`` are documents made by :func:`attachment` (or kept from the
    stored post on an edit); ``updated`` is set on edits.
    """

    id: str
    attributed_to: str
    content: str
    published: datetime
    to: Sequence[str]
    cc: Sequence[str]
    in_reply_to: str | None = None
    summary: str | None = None
    mentions: Sequence[Mention] = ()
    hashtags: Sequence[str] = ()
    attachments: Sequence[Mapping[str, Any]] = ()
    updated: datetime | None = None


def _tags(post: Note, urls: Urls) -> list[dict[str, str]]:
    tags = [{"type": "Mention", "href": m.href, "name": f"@{m.acct}"} for m in post.mentions]
    tags += [{"type": "Hashtag", "href": urls.hashtag(t), "name": f"#{t}"} for t in post.hashtags]
    return tags


def note(post: Note, urls: Urls) -> dict[str, Any]:
    """The ``Note`` of a local post: tags, addressing, media, and its collections' URLs.

    A ``summary`` is a content warning, so it makes the post ``sensitive``, as on Mastodon.
    """
    doc: dict[str, Any] = {
        "@context": OBJECT_CONTEXT,
        "id": post.id,
        "type": "Note",
        "attributedTo": post.attributed_to,
        "content": post.content,
        "published": iso(post.published),
        "url": post.id,
        "to": list(post.to),
        "cc": list(post.cc),
        "inReplyTo": post.in_reply_to,
        "summary": post.summary or None,
        "sensitive": bool(post.summary),
        "tag": _tags(post, urls),
        "attachment": [dict(a) for a in post.attachments],
        "replies": urls.replies(post.id),
        "likes": urls.likes(post.id),
        "shares": urls.shares(post.id),
    }
    if post.updated is not None:
        doc["updated"] = iso(post.updated)
    result: dict[str, Any] = compact(doc)
    return result


# -- activities -------------------------------------------------------------------------------


def activity(
    kind: ActivityType,
    id: str,
    actor: str,
    obj: str | Mapping[str, Any],
    *,
    published: datetime,
    to: Sequence[str] = (),
    cc: Sequence[str] = (),
) -> dict[str, Any]:
    """An activity of ``actor`` on ``obj`` (an id, or the embedded object)."""
    doc: dict[str, Any] = {
        "@context": OBJECT_CONTEXT,
        "id": id,
        "type": kind,
        "actor": actor,
        "object": obj,
        "published": iso(published),
        "to": list(to),
        "cc": list(cc),
    }
    result: dict[str, Any] = compact(doc)
    return result


def embedded(kind: ActivityType, id: str, actor: str, obj: str) -> dict[str, Any]:
    """A past ``Follow`` or ``Block``, as embedded in the Undo, Accept or Reject of it."""
    return {"id": id, "type": kind, "actor": actor, "object": obj}


def tombstone(
    id: str, *, former_type: str | None = None, deleted: datetime | None = None
) -> dict[str, Any]:
    """What is left of a deleted object (no ``@context``: it is embedded or stored)."""
    doc: dict[str, Any] = {"id": id, "type": "Tombstone"}
    if former_type is not None:
        doc["formerType"] = former_type
    if deleted is not None:
        doc["deleted"] = iso(deleted)
    return doc


def served_tombstone(stone: Mapping[str, Any]) -> dict[str, Any]:
    """A :func:`tombstone` as the document served (410) at the deleted object's id."""
    result: dict[str, Any] = compact({"@context": AS_CONTEXT_URL, **stone})
    return result


# -- collections ------------------------------------------------------------------------------


def ordered_collection(
    id: str,
    total: int,
    *,
    first: str | None = None,
    last: str | None = None,
    items: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """An ``OrderedCollection``: paged (``first``/``last``) or with its ``items`` inline."""
    doc: dict[str, Any] = {
        "@context": OBJECT_CONTEXT,
        "id": id,
        "type": "OrderedCollection",
        "totalItems": total,
    }
    for key, value in (("first", first), ("last", last)):
        if value is not None:
            doc[key] = value
    if items is not None:
        doc["orderedItems"] = list(items)
    result: dict[str, Any] = compact(doc)
    return result


def collection_page(
    id: str,
    part_of: str,
    items: Sequence[Any],
    *,
    next: str | None = None,
    prev: str | None = None,
) -> dict[str, Any]:
    """An ``OrderedCollectionPage`` of ``part_of``, items newest first.

    A page always has ``orderedItems``, empty ones too, as Mastodon's pages do: clients
    walking pages (the ``ap`` client) stop with an error at a page without items.
    """
    doc: dict[str, Any] = {
        "@context": OBJECT_CONTEXT,
        "id": id,
        "type": "OrderedCollectionPage",
        "partOf": part_of,
    }
    for key, value in (("next", next), ("prev", prev)):
        if value is not None:
            doc[key] = value
    result: dict[str, Any] = {**compact(doc), "orderedItems": compact(list(items))}
    return result


# -- actors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """A local actor (``Person``, ``Service`` or ``Application``) and its keys."""

    id: str
    #: ``Person``, ``Service`` or ``Application``
    type: str
    username: str
    name: str
    summary: str
    url: str | None
    published: datetime
    inbox: str
    outbox: str | None
    shared_inbox: str | None
    public_key_id: str
    public_key_pem: str
    #: the FEP-521a Ed25519 key, multibase-encoded
    ed25519_multibase: str | None
    manually_approves_followers: bool = False
    discoverable: bool = True
    indexable: bool = True
    followers: str | None = None
    following: str | None = None
    featured: str | None = None
    #: collections only the actor reads: ``liked``, FEP-4ccd's pending follows
    liked: str | None = None
    pending_followers: str | None = None
    pending_following: str | None = None
    icon: str | None = None
    image: str | None = None
    #: profile fields: (name, value) pairs
    fields: Sequence[tuple[str, str]] = ()
    #: where C2S clients get tokens (ActivityPub §4.1, FEP-d8c2): both or neither
    oauth_authorization_endpoint: str | None = None
    oauth_token_endpoint: str | None = None
    #: where C2S clients upload files and have remote objects fetched (ActivityPub §4.1)
    upload_media: str | None = None
    proxy_url: str | None = None


#: the type of an avatar or header by its file's extension (uploads keep their format)
_IMAGE_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


def _png(url: str) -> dict[str, Any]:
    """An avatar or header: PNG (the drawn defaults) unless its name says JPEG or WebP."""
    kind = _IMAGE_TYPES.get(url.rsplit(".", 1)[-1].lower(), "image/png")
    return {"type": "Image", "mediaType": kind, "url": url}


def _endpoints(person: Actor) -> dict[str, Any]:
    endpoints: dict[str, Any] = {"sharedInbox": person.shared_inbox}
    if person.oauth_authorization_endpoint and person.oauth_token_endpoint:
        endpoints["oauthAuthorizationEndpoint"] = person.oauth_authorization_endpoint
        endpoints["oauthTokenEndpoint"] = person.oauth_token_endpoint
    if person.upload_media:
        endpoints["uploadMedia"] = person.upload_media
    if person.proxy_url:
        endpoints["proxyUrl"] = person.proxy_url
    return endpoints


def actor(person: Actor) -> dict[str, Any]:
    """The AS2 document of a local actor, with every field Mastodon reads.

    See https://docs.joinmastodon.org/spec/activitypub/#as and FEP-521a for
    ``assertionMethod``.
    """
    doc: dict[str, Any] = {
        "@context": ACTOR_CONTEXT,
        "id": person.id,
        "type": person.type,
        "preferredUsername": person.username,
        "name": person.name,
        "summary": person.summary,
        "url": person.url,
        "published": iso(person.published),
        "inbox": person.inbox,
        "outbox": person.outbox,
        "manuallyApprovesFollowers": person.manually_approves_followers,
        "discoverable": person.discoverable,
        "indexable": person.indexable,
        "endpoints": _endpoints(person),
        "publicKey": {
            "id": person.public_key_id,
            "owner": person.id,
            "publicKeyPem": person.public_key_pem,
        },
        "assertionMethod": [
            {
                "id": f"{person.id}#ed25519-key",
                "type": "Multikey",
                "controller": person.id,
                "publicKeyMultibase": person.ed25519_multibase,
            }
        ],
        "attachment": [
            {"type": "PropertyValue", "name": name, "value": value} for name, value in person.fields
        ],
    }
    for key, value in (
        ("followers", person.followers),
        ("following", person.following),
        ("featured", person.featured),
        ("liked", person.liked),
        ("pendingFollowers", person.pending_followers),
        ("pendingFollowing", person.pending_following),
    ):
        if value:
            doc[key] = value
    if person.icon:
        doc["icon"] = _png(person.icon)
    if person.image:
        doc["image"] = _png(person.image)
    result: dict[str, Any] = compact(doc)
    return result
