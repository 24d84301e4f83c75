"""Remote actors and objects: resolve handles, fetch documents, cache actors.

``lookup`` is what ``fedisocial lookup`` runs; ``fetch_actor`` is the cached
path every key lookup and delivery takes.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fedisocial.ap.client import FederationClient
from fedisocial.ap.vocab import (
    ACTOR_TYPES,
    POST_TYPES,
    RemoteActor,
    as_list,
    extract_actor,
    get_id,
    host_of,
    http_url,
    normalize,
    parse_handle,
    same_origin,
)
from fedisocial.errors import FedisocialError, InvalidDocument, NotFound
from fedisocial.social.content import clean_remote_post, sanitize
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Object, utcnow
from fedisocial.store.rows import check_uri_lengths, object_columns

__all__ = [
    "fetch_actor",
    "fetch_object",
    "fetch_parents",
    "fetch_recent_posts",
    "lookup",
    "resolve_handle",
    "save_actor",
    "signer_of",
    "store_actor",
]


def _opts_out_of_ai(doc: dict[str, Any]) -> bool:
    """FEP-5e53: the actor's ``xRobotsTag`` (an ``X-Robots-Tag`` value, or a list of them)
    carries ``noai``."""
    value = doc.get("xRobotsTag")
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and "noai" in {part.strip().lower() for part in v.split(",")}
               for v in values)  # fmt: skip


def _handle_domain(remote: RemoteActor) -> str:
    return host_of(remote.id)


async def store_actor(db: Database, doc: dict[str, Any]) -> Actor:
    """Insert or refresh the cached row of a remote actor from its document."""
    async with db.transaction() as session:
        return await save_actor(session, doc)


async def save_actor(session: AsyncSession, doc: dict[str, Any]) -> Actor:
    """:func:`store_actor` inside the caller's transaction."""
    remote = extract_actor(normalize(doc))
    check_uri_lengths("actor", {"id": remote.id, "inbox": remote.inbox})
    if len(remote.preferred_username or "") > 255:
        raise InvalidDocument("the actor's preferredUsername is longer than 255 characters")
    actor = await session.scalar(select(Actor).where(Actor.uri == remote.id))
    if actor is None:
        actor = Actor(uri=remote.id, local=False)
        session.add(actor)
    elif actor.local:
        raise InvalidDocument(f"{remote.id} is one of our own actors")
    actor.type = remote.type
    actor.username = remote.preferred_username or remote.id.rsplit("/", 1)[-1]
    actor.domain = _handle_domain(remote)
    actor.name = remote.name or ""
    actor.summary = sanitize(remote.summary or "")
    actor.url = http_url(remote.url)
    actor.inbox = remote.inbox
    actor.shared_inbox = remote.shared_inbox
    actor.outbox = remote.outbox
    actor.followers_url = remote.followers
    actor.following_url = remote.following
    actor.featured_url = remote.featured
    actor.icon_url = http_url(remote.icon_url)
    actor.image_url = http_url(remote.image_url)
    actor.public_key_id = remote.public_key_id or ""
    actor.public_key_pem = remote.public_key_pem or ""
    actor.manually_approves_followers = remote.manually_approves_followers
    actor.discoverable = remote.discoverable
    # Mastodon's ``indexable``: posts may be found by full-text search only when it says so
    actor.indexable = doc.get("indexable") is True
    actor.noai = _opts_out_of_ai(doc)
    actor.fields = []
    actor.data = doc
    actor.fetched_at = utcnow()
    return actor


async def fetch_actor(
    db: Database, client: FederationClient, uri: str, *, max_age: timedelta, refresh: bool = False
) -> Actor:
    """The actor at ``uri``: from the cache while fresh, else fetched (signed) and stored."""
    async with db.session() as session:
        actor = await session.scalar(select(Actor).where(Actor.uri == uri))
    if actor is not None:
        age = utcnow() - actor.fetched_at if actor.fetched_at else None
        if actor.local or (not refresh and age is not None and age < max_age):
            return actor
    doc = await client.get_json(uri)
    if urlsplit(str(doc.get("id", ""))).netloc != urlsplit(uri).netloc:
        raise InvalidDocument(f"{uri} returned a document whose id is on another host")
    return await store_actor(db, doc)


@functools.cache
def _actors_by_key_id() -> Select[Actor]:
    """The actors publishing the key ``:key_id``, the latest fetched first (built once)."""
    newest = Actor.fetched_at.desc()
    return select(Actor).where(Actor.public_key_id == bindparam("key_id")).order_by(newest)


async def signer_of(
    db: Database, client: FederationClient, key_id: str, *, max_age: timedelta,
    refresh: bool = False,
) -> Actor:  # fmt: skip
    """The actor owning the key ``key_id`` (cached by key id; fetched when unknown).

    Key ids are usually ``ACTOR#main-key`` (Mastodon) but may be a path of their
    own (GoToSocial's ``ACTOR/main-key``), which serves the actor or a key
    document naming its ``owner``. ``refresh`` refetches: keys rotate, so a
    failed verification is retried once with a fresh key.

    A key is its actor's only when it is on the actor's origin and names the
    actor as owner (``extract_actor`` refuses anything else), so an actor that
    claims someone else's key id cannot shadow the real owner's key.
    """
    if not refresh:
        async with db.session() as session:
            stored = await session.scalars(_actors_by_key_id(), {"key_id": key_id})
        # rows stored before keys were tied to their actor's origin may squat a key id
        cached = next((actor for actor in stored if same_origin(actor.uri, key_id)), None)
        if cached is not None:
            return cached
    document_url = key_id.split("#", 1)[0]
    doc = await client.get_json(document_url)
    if normalize(doc).get("type") in ACTOR_TYPES:
        if not same_origin(str(doc.get("id", "")), document_url):
            raise InvalidDocument(f"{document_url} returned an actor on another host")
        actor = await store_actor(db, doc)
    else:
        owner = get_id(doc.get("owner")) or get_id(doc.get("controller"))
        if not owner or not same_origin(owner, key_id):
            raise InvalidDocument(f"key {key_id} names no actor on its own host")
        actor = await fetch_actor(db, client, owner, max_age=max_age, refresh=True)
    if actor.public_key_id != key_id:
        raise InvalidDocument(f"{actor.uri} does not publish the key {key_id}")
    return actor


async def resolve_handle(
    db: Database, client: FederationClient, username: str, host: str, *, max_age: timedelta
) -> Actor:
    """The actor behind ``username@host``: our own, a cached one, or found by WebFinger."""
    async with db.session() as session:
        cached = await session.scalar(
            select(Actor).where(
                Actor.domain == host.lower(), func.lower(Actor.username) == username.lower()
            )
        )
    if cached is not None and (cached.local or (
        cached.fetched_at is not None and utcnow() - cached.fetched_at < max_age
    )):  # fmt: skip
        return cached
    finger = await client.webfinger(username, host)
    if not finger.actor_url:
        raise NotFound(f"@{username}@{host} has no ActivityPub actor")
    return await fetch_actor(db, client, finger.actor_url, max_age=max_age)


async def fetch_object(
    db: Database, client: FederationClient, uri: str, *, received: dict[str, Any] | None = None
) -> Object:
    """An object by id: from the store, else fetched from its origin and stored.

    The fetch is signed (by the instance actor) through the guarded client. The
    document is kept as received; a post's row shows its sanitized copy and keeps
    the received one in ``original``. ``received``: the document already fetched
    from ``uri`` (Mastodon's ``prefetched_body``), so it is not fetched twice.
    """
    async with db.session() as session:
        stored = await session.scalar(select(Object).where(Object.uri == uri))
    if stored is not None:
        return stored
    if received is None:
        received = await client.get_json(uri)
    doc = normalize(received)
    if doc.get("id") != uri and not same_origin(str(doc.get("id", "")), uri):
        raise InvalidDocument(f"{uri} returned a document whose id is on another host")
    author = get_id(doc.get("attributedTo")) or get_id(doc.get("actor"))
    if author and not same_origin(author, uri):
        raise InvalidDocument(f"{uri} claims an author on another host ({author})")
    data, original = received, None
    if author and doc.get("type") in POST_TYPES:
        data, original = clean_remote_post(doc, author), received
    row = Object(uri=str(doc.get("id") or uri), local=False, data=data, original=original,
                 **object_columns(doc))  # fmt: skip
    try:
        async with db.transaction() as session:
            session.add(row)
    except IntegrityError:  # fetched concurrently by someone else
        async with db.session() as session:
            return (await session.scalars(select(Object).where(Object.uri == row.uri))).one()
    return row


#: posts read from a remote outbox when a profile is first shown, at most (its first page)
RECENT_POSTS = 20


async def fetch_recent_posts(
    db: Database, client: FederationClient, actor: Actor, *, limit: int = RECENT_POSTS
) -> list[Object]:
    """The newest posts of a remote ``actor`` from the first page of its outbox, stored.

    For a profile we know nothing of yet (Mastodon fetches nothing; GoToSocial and
    Elk show the outbox). Bounded: two GETs (the collection, its ``first`` page)
    through the guarded client, at most ``limit`` posts. Only ``Create`` items that
    embed a post by ``actor`` on its own origin are kept, each sanitized and stored
    as :func:`fetch_object` stores a post (an item already stored stays as it is).
    """
    if actor.local or not actor.outbox or not same_origin(actor.outbox, actor.uri):
        return []
    collection = normalize(await client.get_json(actor.outbox))
    first = collection.get("first")
    if isinstance(first, str):
        if not same_origin(first, actor.uri):
            return []
        first = normalize(await client.get_json(first))
    page = first if isinstance(first, dict) else collection
    items = as_list(page.get("orderedItems", page.get("items")))
    found: list[Object] = []
    for item in items[:limit]:
        if not isinstance(item, dict) or normalize(item).get("type") != "Create":
            continue
        post = item.get("object")
        if not isinstance(post, dict):
            continue
        doc = normalize(post)
        uri = get_id(doc.get("id"))
        if doc.get("type") not in POST_TYPES or not uri or not same_origin(uri, actor.uri):
            continue
        if get_id(doc.get("attributedTo")) != actor.uri:
            continue
        try:
            found.append(await fetch_object(db, client, uri, received=post))
        except InvalidDocument:
            continue
    return found


#: posts a thread's page fetches above a remote reply whose parent we miss, at most
PARENTS = 8
#: and the posts it looks at going up (those we have are stepped over), at most
_MAX_STEPS = 64


async def fetch_parents(
    db: Database, client: FederationClient, row: Object, *, max_age: timedelta,
    limit: int = PARENTS,
) -> list[Object]:  # fmt: skip
    """Fetch and store the posts ``row`` replies to that we miss, going up the thread.

    Mastodon's ``ThreadResolveWorker``, done when someone opens the thread: each parent
    through the guarded client (signed), with its author (so it shows as a post), at most
    ``limit`` of them; stops at the first that fails or is no post. Those we have are
    stepped over.
    """
    found: list[Object] = []
    uri, seen = row.in_reply_to, {row.uri}
    while uri and uri not in seen and len(found) < limit and len(seen) <= _MAX_STEPS:
        seen.add(uri)
        async with db.session() as session:
            stored = await session.scalar(select(Object).where(Object.uri == uri))
        if stored is None:
            if http_url(uri) is None:
                break
            try:
                stored = await fetch_object(db, client, uri)
                if stored.type not in POST_TYPES or not stored.actor_uri:
                    break
                await fetch_actor(db, client, stored.actor_uri, max_age=max_age)
            except FedisocialError:  # gone, refused, unreachable: the thread shows what we have
                break
            found.append(stored)
        uri = stored.in_reply_to
    return found


async def lookup(db: Database, client: FederationClient, query: str) -> dict[str, Any]:
    """Resolve a handle (WebFinger) or URL and return the remote document.

    Actors found this way are cached, so ``lookup`` also warms the actor table.
    """
    if query.startswith(("https://", "http://")):
        url = query
    else:
        username, host = parse_handle(query)
        finger = await client.webfinger(username, host)
        if not finger.actor_url:
            raise InvalidDocument(f"WebFinger for {query} names no ActivityPub actor")
        url = finger.actor_url
    doc = await client.get_json(url)
    if normalize(doc).get("type") in ACTOR_TYPES:
        await store_actor(db, doc)
    return doc
