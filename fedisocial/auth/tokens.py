"""Bearer tokens (RFC 6750): minted, stored hashed, checked, listed and revoked.

A token is 32 random bytes (URL-safe base64); the database keeps only its SHA-256, so a
copy of the database lets nobody act as anyone. The same goes for refresh tokens,
authorization codes, client secrets and session ids (:func:`digest`). These secrets are
long and random, so a fast hash is enough (a password needs argon2; these need no salt).

Errors say why in the ``WWW-Authenticate`` header, as RFC 6750 §3 asks: 401 with
``error="invalid_token"`` for an unknown, expired or revoked token, 403 with
``error="insufficient_scope"`` (and the scope needed) for a token that may not do this.

A token is a user's (:class:`Grant`: the authorization-code flow, ``fedisocial token
create``) or an app's own (a :class:`ClientGrant` without a user: the client_credentials
grant, RFC 6749 §4.4), which reads only what anyone may and gets 422
:class:`UserRequired` from methods that act for someone, as on Mastodon.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from fedisocial.auth.scopes import covers_all, parse_scope
from fedisocial.errors import Forbidden, NotFound, Unauthorized, Unprocessable
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, OAuthClient, OAuthToken, User, utcnow

__all__ = [
    "AppGrant",
    "ClientGrant",
    "Grant",
    "InsufficientScope",
    "InvalidToken",
    "TokenRow",
    "UserRequired",
    "authenticate_bearer",
    "authorized_apps",
    "bearer_challenge",
    "create_personal_token",
    "digest",
    "list_tokens",
    "new_secret",
    "require_scopes",
    "revoke_app",
    "revoke_token",
]

#: the realm of our Bearer challenges
REALM = "fedisocial"


def new_secret() -> str:
    """A fresh token, code, secret or session id: 32 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the database keeps of a secret: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_challenge(error: str | None = None, description: str = "", scope: str = "") -> str:
    """A ``WWW-Authenticate: Bearer …`` value (RFC 6750 §3)."""
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description.replace(chr(34), chr(39))}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(parts)


class InvalidToken(Unauthorized):
    """401: the token is unknown, expired or revoked (``error="invalid_token"``)."""

    def __init__(self, description: str) -> None:
        headers = {"WWW-Authenticate": bearer_challenge("invalid_token", description),
                   "Cache-Control": "no-store"}  # fmt: skip
        super().__init__(description, headers=headers)


class InsufficientScope(Forbidden):
    """403: the token is good but its grant does not cover this (``insufficient_scope``)."""

    def __init__(self, needed: Sequence[str]) -> None:
        scope = " ".join(needed)
        description = f"This action needs the scope {scope}"
        headers = {"WWW-Authenticate": bearer_challenge("insufficient_scope", description, scope),
                   "Cache-Control": "no-store"}  # fmt: skip
        super().__init__(description, headers=headers)


class UserRequired(Unprocessable):
    """422: an app's own token (client_credentials) where a user must act (Mastodon's
    ``require_user!``: "This method requires an authenticated user")."""

    def __init__(self) -> None:
        super().__init__("This method requires an authenticated user")


@dataclass(frozen=True)
class ClientGrant:
    """What any valid access token stands for: the client it was issued to, its scopes.

    A bare ClientGrant is an app's own token (client_credentials): no user behind it."""

    token_id: int
    client_id: int
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Grant(ClientGrant):
    """A user's token: whose it is, besides its client and scopes."""

    actor: Actor
    user_id: int


async def authenticate_bearer(db: Database, token: str) -> ClientGrant:
    """The grant of an access token (a :class:`Grant` when it is a user's), or InvalidToken
    saying why not (one query)."""
    query = (
        select(OAuthToken, User, Actor)
        .outerjoin(User, User.id == OAuthToken.user_id)
        .outerjoin(Actor, Actor.id == User.actor_id)
        .where(OAuthToken.access_hash == digest(token))
    )
    async with db.session() as session:
        row = (await session.execute(query)).first()
    if row is None:
        raise InvalidToken("The access token is not known here")
    found, user, actor = row
    if found.revoked_at is not None:
        raise InvalidToken("The access token was revoked")
    if found.expires_at is not None and found.expires_at <= utcnow():
        raise InvalidToken("The access token expired")
    scopes = tuple(found.scope.split())
    if found.user_id is None:
        return ClientGrant(found.id, found.client_id, scopes)
    if user is None or actor is None:  # its user is gone (deleted with its tokens, normally)
        raise InvalidToken("The access token is not known here")
    if not user.approved:
        raise InvalidToken("The account is waiting for an admin's approval")
    return Grant(found.id, found.client_id, scopes, actor=actor, user_id=user.id)


def require_scopes(grant: ClientGrant, needed: Sequence[str]) -> None:
    """InsufficientScope unless the grant covers every scope of ``needed``."""
    if not covers_all(grant.scopes, needed):
        raise InsufficientScope(needed)


# -- tokens for scripts (``fedisocial token``) -------------------------------------------------


@dataclass(frozen=True)
class TokenRow:
    """One token as ``fedisocial token list`` shows it."""

    id: int
    username: str
    client_name: str
    scope: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


async def _user(db: Database, username: str) -> User:
    async with db.session() as session:
        user = await session.scalar(
            select(User).where(func.lower(User.username) == username.lower())
        )
    if user is None:
        raise NotFound(f"no user called {username!r} on this instance")
    return user


async def create_personal_token(
    db: Database, username: str, scope: str, name: str = ""
) -> tuple[str, int]:
    """A token for ``username`` that does not expire, under a new app of its own, as Mastodon's
    Development → New application gives: (token, its id)."""
    scopes = " ".join(parse_scope(scope))
    user = await _user(db, username)
    token = new_secret()
    async with db.transaction() as session:
        client = OAuthClient(
            client_id=new_secret(), kind="registered", name=name or f"{username}'s script",
            redirect_uris=[], scopes=scopes, owner_id=user.id,
        )  # fmt: skip
        session.add(client)
        await session.flush()
        row = OAuthToken(access_hash=digest(token), client_id=client.id, user_id=user.id,
                         scope=scopes)  # fmt: skip
        session.add(row)
        await session.flush()
    return token, row.id


async def list_tokens(db: Database, username: str | None = None) -> list[TokenRow]:
    """Every token (of ``username``), oldest first, revoked ones included."""
    query = (
        select(OAuthToken, User.username, OAuthClient.name)
        .join(User, User.id == OAuthToken.user_id)
        .join(OAuthClient, OAuthClient.id == OAuthToken.client_id)
        .order_by(OAuthToken.id)
    )
    if username is not None:
        query = query.where(User.id == (await _user(db, username)).id)
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [
        TokenRow(t.id, name, client, t.scope, t.created_at, t.expires_at, t.revoked_at)
        for t, name, client in rows
    ]


async def revoke_token(db: Database, token_id: int) -> None:
    """Revoke one token (and its refresh token) by id; NotFound when there is none."""
    async with db.transaction() as session:
        row = await session.get(OAuthToken, token_id)
        if row is None:
            raise NotFound(f"no token with id {token_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()


# -- apps a user authorized --------------------------------------------------------------------


@dataclass(frozen=True)
class AppGrant:
    """A client a user gave access to, with what it may do and since when."""

    client_pk: int
    client_id: str
    name: str
    kind: str
    website: str | None
    scopes: tuple[str, ...]
    authorized_at: datetime
    tokens: int


async def authorized_apps(db: Database, user_id: int) -> list[AppGrant]:
    """The clients holding live tokens of this user, most recently authorized first."""
    now = utcnow()
    query = (
        select(OAuthToken, OAuthClient)
        .join(OAuthClient, OAuthClient.id == OAuthToken.client_id)
        .where(OAuthToken.user_id == user_id, OAuthToken.revoked_at.is_(None))
        .order_by(OAuthToken.id)
    )
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    apps: dict[int, AppGrant] = {}
    for token, client in rows:
        if token.expires_at is not None and token.expires_at <= now and not token.refresh_hash:
            continue
        seen = apps.get(client.id)
        scopes = dict.fromkeys((*(seen.scopes if seen else ()), *token.scope.split()))
        apps[client.id] = AppGrant(
            client.id, client.client_id, client.name or client.client_id, client.kind,
            client.website, tuple(scopes), seen.authorized_at if seen else token.created_at,
            (seen.tokens if seen else 0) + 1,
        )  # fmt: skip
    return sorted(apps.values(), key=lambda app: app.authorized_at, reverse=True)


async def revoke_app(db: Database, user_id: int, client_pk: int) -> int:
    """Revoke every token this user gave this client; how many there were (NotFound if none)."""
    async with db.transaction() as session:
        done = await session.execute(
            update(OAuthToken)
            .where(OAuthToken.user_id == user_id, OAuthToken.client_id == client_pk,
                   OAuthToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )  # fmt: skip
    count = int(getattr(done, "rowcount", 0) or 0)
    if not count:
        raise NotFound("this app has no access to your account")
    return count
