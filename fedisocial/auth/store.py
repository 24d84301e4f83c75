"""The rows behind the OAuth server: codes and tokens, stored as hashes, changed atomically.

Each function is one short transaction. The values handed to Authlib
(:class:`Code`, :class:`Token`) are frozen copies with the few methods its grants call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update

from fedisocial.auth.tokens import digest
from fedisocial.store.db import Database
from fedisocial.store.models import OAuthCode, OAuthToken, utcnow

__all__ = ["Code", "Token", "claim_code", "find_token", "revoke", "save_code", "save_token"]

#: used and expired codes are swept this long after they expire
_KEEP_CODES = timedelta(days=1)


@dataclass(frozen=True)
class Code:
    """An authorization code just claimed for one exchange."""

    id: int
    client_pk: int
    user_id: int
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class Token:
    """A live token pair, as the refresh grant and revocation see it."""

    id: int
    client_pk: int
    user_id: int | None
    scope: str

    def check_client(self, client: Any) -> bool:
        return bool(client.row.id == self.client_pk)

    def get_scope(self) -> str:
        return self.scope


async def save_code(
    db: Database, code: str, *, client_pk: int, user_id: int, redirect_uri: str, scope: str,
    challenge: str | None, method: str | None, lifetime: int,
) -> None:  # fmt: skip
    """Store a new code (its hash); codes expired a day ago are swept on the way."""
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(delete(OAuthCode).where(OAuthCode.expires_at < now - _KEEP_CODES))
        session.add(OAuthCode(
            code_hash=digest(code), client_id=client_pk, user_id=user_id,
            redirect_uri=redirect_uri, scope=scope, code_challenge=challenge,
            code_challenge_method=method if challenge else None,
            created_at=now, expires_at=now + timedelta(seconds=lifetime),
        ))  # fmt: skip


async def claim_code(db: Database, code: str, client_pk: int) -> Code | None:
    """The code, marked used now; None when unknown, expired, another client's or used.

    A used code is a replay (or a stolen code): the tokens it gave are revoked
    (RFC 6749 §4.1.2).
    """
    now = utcnow()
    async with db.transaction() as session:
        row = await session.scalar(select(OAuthCode).where(OAuthCode.code_hash == digest(code)))
        if row is None or row.client_id != client_pk:
            return None
        if row.used_at is not None:
            await session.execute(
                update(OAuthToken)
                .where(OAuthToken.code_id == row.id, OAuthToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            return None
        claimed = await session.execute(
            update(OAuthCode)
            .where(OAuthCode.id == row.id, OAuthCode.used_at.is_(None))
            .values(used_at=now)
        )
        if not getattr(claimed, "rowcount", 0) or row.expires_at <= now:
            return None
        return Code(row.id, row.client_id, row.user_id, row.redirect_uri, row.scope,
                    row.code_challenge, row.code_challenge_method)  # fmt: skip


async def find_token(db: Database, value: str, hint: str | None = None) -> Token | None:
    """The live token whose access or refresh token is ``value`` (``hint``: which to try)."""
    hashed = digest(value)
    if hint == "refresh_token":
        match = OAuthToken.refresh_hash == hashed
    elif hint == "access_token":
        match = OAuthToken.access_hash == hashed
    else:
        match = or_(OAuthToken.access_hash == hashed, OAuthToken.refresh_hash == hashed)
    async with db.session() as session:
        row = await session.scalar(select(OAuthToken).where(match, OAuthToken.revoked_at.is_(None)))
    if row is None:
        return None
    return Token(row.id, row.client_id, row.user_id, row.scope)


async def revoke(db: Database, token_id: int) -> None:
    """Revoke a token pair (access and refresh token together)."""
    async with db.transaction() as session:
        await session.execute(
            update(OAuthToken)
            .where(OAuthToken.id == token_id, OAuthToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


async def save_token(
    db: Database, token: dict[str, Any], *, client_pk: int, user_id: int | None,
    code_id: int | None, replaces: int | None,
) -> bool:  # fmt: skip
    """Store a new pair (hashes only); ``replaces``: the pair it rotates out, in the same
    transaction. False, and nothing stored, when that pair was revoked meanwhile."""
    now = utcnow()
    lifetime = token.get("expires_in")
    async with db.transaction() as session:
        if replaces is not None:
            swapped = await session.execute(
                update(OAuthToken)
                .where(OAuthToken.id == replaces, OAuthToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if not getattr(swapped, "rowcount", 0):
                return False
        refresh = token.get("refresh_token")
        session.add(OAuthToken(
            access_hash=digest(token["access_token"]),
            refresh_hash=digest(refresh) if refresh else None,
            client_id=client_pk, user_id=user_id, code_id=code_id, scope=token.get("scope", ""),
            created_at=now, expires_at=now + timedelta(seconds=lifetime) if lifetime else None,
        ))  # fmt: skip
    return True
