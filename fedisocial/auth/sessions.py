"""Browser sign-in sessions and the CSRF tokens of their forms, shared by every web process.

A session is a random id in a cookie; the ``web_sessions`` row keeps its SHA-256, the user,
the user agent, when it began and when it was last seen, and the session's CSRF secret.
Every form of a signed-in page carries that secret and every POST is checked against it
(:func:`csrf_matches`, constant time). Before sign-in there is no session, so the sign-in
form carries a random value that is also set as a cookie (double submit) instead: a site
elsewhere can neither read the cookie nor set it on our origin (``__Host-`` cookies on https).

Sessions end when signed out, after :data:`IDLE` without a visit, or when the account goes.
``last_seen_at`` is written at most every :data:`TOUCH_EVERY`, not on every page.
The cookie side (names, flags) lives in the web layer (:mod:`fedisocial.web.session`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from fedisocial.auth.tokens import digest, new_secret
from fedisocial.store.db import Database
from fedisocial.store.models import Actor, User, WebSession, utcnow

__all__ = ["IDLE", "TOUCH_EVERY", "SessionStore", "SignedIn", "csrf_matches", "new_csrf"]

#: a session not seen for this long is over
IDLE = timedelta(days=30)
#: how stale ``last_seen_at`` may get before a visit writes it
TOUCH_EVERY = timedelta(minutes=5)
_MAX_AGENT = 512


def new_csrf() -> str:
    """A fresh CSRF value (for a session, or for the sign-in form's cookie)."""
    return new_secret()


def csrf_matches(expected: str | None, given: str | None) -> bool:
    """Whether a form's CSRF value is the expected one (constant time; both must be set)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, and the CSRF value its forms carry."""

    id: int
    user_id: int
    actor: Actor
    csrf: str
    user_agent: str
    created_at: datetime
    last_seen_at: datetime


class SessionStore:
    """Starts, finds and ends sessions (``web_sessions`` table)."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def start(self, actor: Actor, user_agent: str = "") -> tuple[str, SignedIn]:
        """A new session for a local account: (the cookie value, the session)."""
        now, cookie = self.clock(), new_secret()
        async with self.db.transaction() as session:
            user_id = await session.scalar(select(User.id).where(User.actor_id == actor.id))
            if user_id is None:
                raise ValueError(f"{actor.uri} is not a local account")
            row = WebSession(
                session_hash=digest(cookie), user_id=user_id, csrf_secret=new_csrf(),
                user_agent=user_agent[:_MAX_AGENT], created_at=now, last_seen_at=now,
            )  # fmt: skip
            session.add(row)
            await session.flush()
        signed_in = SignedIn(row.id, user_id, actor, row.csrf_secret, row.user_agent, now, now)
        return cookie, signed_in

    async def find(self, cookie: str) -> SignedIn | None:
        """The live session of a cookie value; None when unknown, ended or idle too long."""
        if not cookie:
            return None
        query = (
            select(WebSession, User, Actor)
            .join(User, User.id == WebSession.user_id)
            .join(Actor, Actor.id == User.actor_id)
            .where(WebSession.session_hash == digest(cookie))
        )
        async with self.db.session() as session:
            row = (await session.execute(query)).first()
        if row is None:
            return None
        found, user, actor = row
        now = self.clock()
        if now - found.last_seen_at > IDLE or not user.approved:
            return None
        if now - found.last_seen_at > TOUCH_EVERY:
            async with self.db.transaction() as session:
                await session.execute(
                    update(WebSession).where(WebSession.id == found.id).values(last_seen_at=now)
                )
        return SignedIn(found.id, user.id, actor, found.csrf_secret, found.user_agent,
                        found.created_at, now)  # fmt: skip

    async def alive(self, session_id: int) -> bool:
        """Whether the session found earlier goes on (not signed out, not idle too long, its
        account still approved): for long requests, such as a page's live stream. It does not
        count as a visit."""
        query = (
            select(WebSession.last_seen_at)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.id == session_id, User.approved.is_(True))
        )
        async with self.db.session() as session:
            last_seen = await session.scalar(query)
        return last_seen is not None and self.clock() - last_seen <= IDLE

    async def end(self, cookie: str) -> None:
        """Sign out: the session of this cookie value is gone (and old idle ones with it)."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(WebSession).where(
                    (WebSession.session_hash == digest(cookie))
                    | (WebSession.last_seen_at < self.clock() - IDLE)
                )
            )

    async def list_for(self, user_id: int) -> list[WebSession]:
        """A user's sessions, most recently seen first (for "sign out elsewhere")."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(WebSession)
                .where(WebSession.user_id == user_id)
                .order_by(WebSession.last_seen_at.desc())
            )
            return list(rows)

    async def end_by_id(self, user_id: int, session_id: int) -> None:
        """End one of a user's sessions by its row id."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(WebSession).where(WebSession.user_id == user_id,
                                         WebSession.id == session_id)
            )  # fmt: skip

    async def end_others(self, user_id: int, keep_id: int | None) -> int:
        """End every session of a user but ``keep_id`` (this browser's); how many ended."""
        query = delete(WebSession).where(WebSession.user_id == user_id)
        if keep_id is not None:
            query = query.where(WebSession.id != keep_id)
        async with self.db.transaction() as session:
            ended = await session.execute(query)
        return int(getattr(ended, "rowcount", 0) or 0)
