"""Local accounts: users, their actors and keys, the instance actor, usage counts."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from fedisocial.ap import httpsig
from fedisocial.ap import render as as2
from fedisocial.ap.vocab import POST_TYPES
from fedisocial.errors import BadRequest, NotFound, Unauthorized
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, Object, User, utcnow
from fedisocial.urls import USERNAME_RE, Urls

__all__ = [
    "MIN_PASSWORD",
    "NOAI_ROBOTS",
    "RESERVED_USERNAMES",
    "Usage",
    "UsernameTaken",
    "account_actor",
    "approve",
    "authenticate",
    "check_password_rules",
    "check_username",
    "create_user",
    "ensure_instance_actor",
    "find_local_actor",
    "hash_password",
    "list_users",
    "pending_users",
    "reject",
    "render_actor",
    "set_locked",
    "set_password",
    "usage",
    "verify_password",
]

#: Names that would shadow routes or confuse people (Mastodon keeps a similar list).
RESERVED_USERNAMES = frozenset(
    {"admin", "administrator", "root", "support", "help", "about", "actor", "inbox", "outbox",
     "users", "settings", "api", "oauth", "media", "static", "nodeinfo", "webfinger",
     "instance", "system", "postmaster", "webmaster", "abuse", "security"}
)  # fmt: skip

#: the shortest password an account may have (Mastodon's figure)
MIN_PASSWORD = 8
#: the longest: argon2 hashes anything, but a megabyte "password" is only a way to burn CPU
MAX_PASSWORD = 128
#: FEP-5e53's ``xRobotsTag`` of an account that opted out of AI use (the ``noai`` signal
#: DeviantArt introduced, and its companion for images)
NOAI_ROBOTS = "noai, noimageai"

_hasher = PasswordHasher()


class UsernameTaken(BadRequest):
    """Another account has this name already (names compare case-insensitively)."""


def check_username(username: str) -> None:
    """BadRequest unless ``username`` may be a new account's name."""
    if not USERNAME_RE.match(username):
        raise BadRequest(
            f"username {username!r} is not valid: use 1-30 letters, digits or underscores"
        )
    if username.lower() in RESERVED_USERNAMES:
        raise BadRequest(f"username {username!r} is reserved; pick another one")


def check_password_rules(password: str) -> None:
    """BadRequest unless ``password`` is long enough (and not absurdly long)."""
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"the password can have at most {MAX_PASSWORD} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def _new_actor(urls: Urls, username: str, actor_type: str, uri: str, key_id: str) -> Actor:
    rsa_key = httpsig.generate_rsa_key()
    ed_key = httpsig.generate_ed25519_key()
    return Actor(
        uri=uri,
        type=actor_type,
        username=username,
        domain=urls.netloc,
        local=True,
        name="",
        summary="",
        inbox=urls.inbox(username) if actor_type != "Application" else f"{uri}/inbox",
        shared_inbox=urls.shared_inbox,
        public_key_id=key_id,
        public_key_pem=httpsig.public_key_to_pem(rsa_key.public_key()),
        private_key_pem=httpsig.private_key_to_pem(rsa_key),
        ed25519_public_multibase=httpsig.ed25519_multibase(ed_key.public_key()),
        ed25519_private_pem=httpsig.private_key_to_pem(ed_key),
        fields=[],
    )


async def create_user(
    db: Database,
    urls: Urls,
    username: str,
    password: str,
    *,
    is_admin: bool = False,
    display_name: str = "",
    approved: bool = True,
    sign_up_reason: str | None = None,
) -> User:
    """Create a user and its Person actor with fresh RSA-2048 and Ed25519 keys.

    ``approved`` False: a sign-up that waits for an admin (:func:`approve`, :func:`reject`);
    it cannot sign in meanwhile. The name is checked first (:func:`check_username`,
    :class:`UsernameTaken`), then the password (:func:`check_password_rules`).
    """
    check_username(username)
    check_password_rules(password)
    password_hash = await asyncio.to_thread(hash_password, password)
    actor = account_actor(urls, username)
    actor.name = display_name or username
    async with db.transaction() as session:
        taken = await session.scalar(
            select(func.count())
            .select_from(User)
            .where(func.lower(User.username) == username.lower())
        )
        taken = taken or await session.scalar(  # a built-in account's (the assistant's)
            select(func.count()).select_from(Actor)
            .where(Actor.local.is_(True), func.lower(Actor.username) == username.lower())
        )  # fmt: skip
        if taken:
            raise UsernameTaken(f"username {username!r} is already taken")
        session.add(actor)
        await session.flush()
        user = User(actor_id=actor.id, username=username, password_hash=password_hash,
                    is_admin=is_admin, approved=approved,
                    sign_up_reason=sign_up_reason)  # fmt: skip
        session.add(user)
    return user


def account_actor(urls: Urls, username: str, actor_type: str = "Person") -> Actor:
    """A new actor (not stored) of an account at ``/users/USERNAME``, with fresh keys and
    its collections: a person's, or a built-in ``Service`` account's (the assistant)."""
    actor = _new_actor(urls, username, actor_type, urls.actor(username), urls.actor_key(username))
    actor.url = urls.profile(username)
    actor.outbox = urls.outbox(username)
    actor.followers_url = urls.followers(username)
    actor.following_url = urls.following(username)
    actor.featured_url = urls.featured(username)
    actor.icon_url = urls.avatar(username)
    actor.image_url = urls.header(username)
    return actor


@functools.cache
def _decoy_hash() -> str:
    """A hash to check unknown names against, so they take as long as known ones."""
    return hash_password("not anybody's password")


async def authenticate(db: Database, username: str, password: str) -> Actor:
    """The actor of the local account with these credentials, or Unauthorized.

    argon2 takes tens of milliseconds of CPU, so it runs in a thread.
    """
    query = (
        select(User, Actor)
        .join(Actor, Actor.id == User.actor_id)
        .where(func.lower(User.username) == username.lower())
    )
    async with db.session() as session:
        row = (await session.execute(query)).first()
    password_hash = row[0].password_hash if row is not None else _decoy_hash()
    matches = await asyncio.to_thread(verify_password, password_hash, password)
    if row is None or not matches:
        raise Unauthorized("Wrong username or password")
    if not row[0].approved:
        raise Unauthorized("This account is waiting for an admin's approval")
    actor: Actor = row[1]
    return actor


async def ensure_instance_actor(db: Database, urls: Urls) -> Actor:
    """The Application actor whose key signs the server's own fetches; made once."""
    query = select(Actor).where(Actor.uri == urls.instance_actor)
    async with db.session() as session:
        existing = await session.scalar(query)
    if existing is not None:
        return existing
    actor = _new_actor(urls, urls.netloc, "Application", urls.instance_actor,
                       urls.instance_actor_key)  # fmt: skip
    actor.name = urls.netloc
    actor.url = urls.about
    actor.outbox = f"{urls.instance_actor}/outbox"
    actor.manually_approves_followers = True
    actor.discoverable = False
    actor.indexable = False
    try:
        async with db.transaction() as session:
            session.add(actor)
    except IntegrityError:  # another process made it first
        async with db.session() as session:
            return (await session.scalars(query)).one()
    return actor


async def find_local_actor(db: Database, urls: Urls, username: str) -> Actor:
    """The local actor called ``username`` (case-insensitive), or NotFound."""
    async with db.session() as session:
        actor = await session.scalar(
            select(Actor).where(
                Actor.local.is_(True),
                Actor.domain == urls.netloc,
                func.lower(Actor.username) == username.lower(),
            )
        )
    if actor is None:
        raise NotFound(f"no user called {username!r} on this instance")
    return actor


async def set_locked(db: Database, urls: Urls, username: str, *, locked: bool) -> Actor:
    """Make a local account approve each follower (``manuallyApprovesFollowers``), or not."""
    actor = await find_local_actor(db, urls, username)
    async with db.transaction() as session:
        row = await session.get_one(Actor, actor.id)
        row.manually_approves_followers = locked
    return row


async def list_users(db: Database) -> list[tuple[User, Actor]]:
    async with db.session() as session:
        rows = await session.execute(
            select(User, Actor).join(Actor, User.actor_id == Actor.id).order_by(User.id)
        )
        return [(user, actor) for user, actor in rows]


async def pending_users(db: Database) -> list[tuple[User, Actor]]:
    """Sign-ups waiting for an admin, the oldest first."""
    async with db.session() as session:
        rows = await session.execute(
            select(User, Actor)
            .join(Actor, User.actor_id == Actor.id)
            .where(User.approved.is_(False))
            .order_by(User.created_at, User.id)
        )
        return [(user, actor) for user, actor in rows]


async def _pending(session: Any, username: str) -> User:
    user = await session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None:
        raise NotFound(f"no account called {username!r} on this instance")
    if user.approved:
        raise BadRequest(f"@{user.username} is not waiting for approval")
    return user  # type: ignore[no-any-return]


async def approve(db: Database, username: str) -> User:
    """Let a waiting sign-up in: it can sign in from now on."""
    async with db.transaction() as session:
        user = await _pending(session, username)
        user.approved = True
    return user


async def reject(db: Database, username: str) -> User:
    """Refuse a waiting sign-up: the account and its actor are deleted (nothing of it was
    ever federated: it could not sign in), so the name is free again."""
    async with db.transaction() as session:
        user = await _pending(session, username)
        # the user row goes with its actor (ON DELETE CASCADE)
        await session.execute(delete(Actor).where(Actor.id == user.actor_id))
    return user


async def set_password(db: Database, user_id: int, new: str) -> None:
    """Give an account a new password (BadRequest unless it follows the rules). The caller has
    checked the current one (throttled, as sign-in is) and ends the other sessions."""
    check_password_rules(new)
    new_hash = await asyncio.to_thread(hash_password, new)
    async with db.transaction() as session:
        row = await session.get_one(User, user_id)
        row.password_hash = new_hash


@dataclass(frozen=True)
class Usage:
    """The counts NodeInfo reports."""

    users_total: int
    active_month: int
    active_halfyear: int
    local_posts: int


async def usage(db: Database) -> Usage:
    now = utcnow()
    async with db.session() as session:
        total = await session.scalar(select(func.count()).select_from(User)) or 0

        async def active_since(days: int) -> int:
            since = now - timedelta(days=days)
            query = select(func.count()).select_from(User).where(User.last_active_at >= since)
            return await session.scalar(query) or 0

        month = await active_since(30)
        halfyear = await active_since(180)
        posts = await session.scalar(
            select(func.count())
            .select_from(Object)
            .where(Object.local.is_(True), Object.type.in_(POST_TYPES))
            .where(Object.deleted_at.is_(None))
        )
    return Usage(total, month, halfyear, posts or 0)


def render_actor(actor: Actor) -> dict[str, Any]:
    """The AS2 document of a local actor (see :func:`fedisocial.ap.render.actor`).

    People's actors name our OAuth endpoints (FEP-d8c2), and where C2S clients upload media
    and have remote objects fetched (``uploadMedia``, ``proxyUrl``); local actors live
    at our base URL, so the actor's own origin is it. An account that opted out of AI use
    says so with FEP-5e53's ``xRobotsTag``.
    """
    parts = urlsplit(actor.uri)
    urls = Urls(f"{parts.scheme}://{parts.netloc}")
    person = actor.type in ("Person", "Service")  # a bot is a Service
    doc = as2.actor(
        as2.Actor(
            id=actor.uri,
            type=actor.type,
            username=actor.username,
            name=actor.name,
            summary=actor.summary,
            url=actor.url,
            published=actor.created_at,
            inbox=actor.inbox,
            outbox=actor.outbox,
            shared_inbox=actor.shared_inbox,
            public_key_id=actor.public_key_id,
            public_key_pem=actor.public_key_pem,
            ed25519_multibase=actor.ed25519_public_multibase,
            manually_approves_followers=actor.manually_approves_followers,
            discoverable=actor.discoverable,
            indexable=actor.indexable,
            followers=actor.followers_url,
            following=actor.following_url,
            featured=actor.featured_url,
            liked=urls.liked(actor.username) if person else None,
            pending_followers=urls.pending_followers(actor.username) if person else None,
            pending_following=urls.pending_following(actor.username) if person else None,
            icon=actor.icon_url,
            image=actor.image_url,
            fields=[(field["name"], field["value"]) for field in actor.fields],
            oauth_authorization_endpoint=urls.oauth_authorize if person else None,
            oauth_token_endpoint=urls.oauth_token if person else None,
            upload_media=urls.upload_media(actor.username) if person else None,
            proxy_url=urls.proxy if person else None,
        )
    )
    if actor.noai:  # FEP-5e53: treat it as if served with ``X-Robots-Tag: noai, noimageai``
        doc["xRobotsTag"] = NOAI_ROBOTS
    return doc
