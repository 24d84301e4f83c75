"""Search: accounts, posts and hashtags, and resolving a handle or URL (Mastodon 4.x).

Mastodon's ``SearchService`` splits a query three ways, and so does :meth:`Search.search`:

- with ``resolve``, an ``http(s)://`` URL is one resource (``ResolveURLService``):
  one of our posts or profiles, else a stored one, else fetched through the
  guarded client and stored (a post as :func:`remote.fetch_object` stores one,
  with its author), and shown only when the viewer may read it;
- anything else searches accounts (not for ``#tags`` nor ``a@b c``), statuses
  (signed-in viewers only; not for a lone ``#tag`` or ``@handle``) and hashtags
  (not when it has an ``@``).

Accounts (``AccountSearchService``): a complete handle ``user@host`` is an
exact match first (with ``resolve`` and a viewer, WebFinger and a signed fetch:
:meth:`Outbox.actor_of`; else only an account we know), then accounts whose
username or display name (a word of it) starts with the query; the viewer's
follows first, then discoverable ones, local ones, by name. Anonymous queries
of fewer than three characters find only the exact match.

Statuses: what Mastodon's index lets a viewer find, and never more than the
viewer may read (:func:`access.readable_by`, always): their own posts, posts
addressed to them, that they liked, boosted or bookmarked, and the public posts
of ``indexable`` authors; not those of authors they block or mute. Every word
of the query must appear in the text or content warning. No text index yet:
candidates are found by a ``LIKE`` over the posts' JSON ``content`` and
``summary``, newest first by primary key (a backward scan of ``objects`` that
stops at :data:`_SCAN_CHUNK` matches), and the read rule and a plain-text check
(markup is not text) decide for each chunk, for at most :data:`_SCAN_CAP`
candidates. Measured at 100k posts on this shared 2-core machine (load ~11):
a common word 150 ms (SQLite) / 120 ms (PostgreSQL), a word in no post (the
whole table scanned) 1.0 s / 0.6 s. A ``post_tags`` table and a text index
(FTS5, ``tsvector``) are what make it cheaper.

Hashtags: names starting with the query among the ``Hashtag`` tags of the
newest :data:`_TAG_SCAN` posts whose ``tag`` JSON mentions it, those the viewer
may read; the exact name first, then the most used (no tag table yet: the
same kind of scan, 0.4 to 2 s for a name in no post at 100k posts).

A remote that fails (timeout, refusal, private address, 404, not AS2) gives no
result, as in Mastodon: search never fails because another server did; the web
app tells why from :attr:`Results.failure`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select

from fedisocial.ap.client import FederationClient
from fedisocial.ap.vocab import ACTOR_TYPES, POST_TYPES, get_id, normalize
from fedisocial.errors import FedisocialError
from fedisocial.federation.remote import fetch_object
from fedisocial.social.access import addressed_to, ensure_readable, in_feed_of, readable_by
from fedisocial.social.content import plain_text
from fedisocial.social.outbox import Outbox
from fedisocial.social.timeline import hashtags
from fedisocial.store.db import Database
from fedisocial.store.models import (
    Actor,
    Block,
    Bookmark,
    Engagement,
    Follow,
    Mute,
    Object,
    User,
    utcnow,
)
from fedisocial.urls import Urls

__all__ = ["Query", "Results", "Search"]

log = logging.getLogger(__name__)

#: ``Account::MENTION_RE`` of a whole query: ``user@host`` (Mastodon's ``username_complete?``)
_HANDLE = re.compile(r"\A@?([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)@([a-z0-9.:\[\]-]+)\Z", re.I)
_URL = re.compile(r"\Ahttps?://", re.I)
#: anonymous account searches shorter than this find only an exact match (Mastodon's)
_MIN_QUERY = 3
#: statuses: candidates matching in SQL that are checked as plain text, at most, per query
_SCAN_CAP = 2000
_SCAN_CHUNK = 200
#: hashtags: the newest posts mentioning the query whose tags are counted
_TAG_SCAN = 1000


@dataclass(frozen=True)
class Query:
    """What ``/api/v2/search`` was asked (Mastodon's parameters)."""

    text: str
    kind: str | None = None
    resolve: bool = False
    following: bool = False
    account_id: int | None = None
    limit: int = 20
    offset: int = 0
    min_id: int | None = None
    max_id: int | None = None

    def wants(self, kind: str) -> bool:
        return not self.kind or self.kind == kind


@dataclass
class Results:
    accounts: list[Actor] = field(default_factory=list)
    statuses: list[Object] = field(default_factory=list)
    #: hashtag names, lower case, without ``#``
    hashtags: list[str] = field(default_factory=list)
    #: why the handle or URL asked for gave nothing, when a remote failed or was refused
    #: (an unknown host, a refused private address, a timeout): for people to be told
    failure: FedisocialError | None = None


def _like(text: str) -> str:
    """``text`` as a LIKE pattern's literal part (``\\`` escapes)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _starts(column: Any, prefix: str) -> ColumnElement[bool]:
    return func.lower(column).like(f"{_like(prefix.lower())}%", escape="\\")


def _contains(column: Any, word: str) -> ColumnElement[bool]:
    return func.lower(column).like(f"%{_like(word.lower())}%", escape="\\")


@dataclass
class Search:
    """Search for one instance; ``viewer`` None is an anonymous (or app-only) client."""

    db: Database
    client: FederationClient
    urls: Urls
    outbox: Outbox

    async def search(self, query: Query, viewer: Actor | None) -> Results:
        """Mastodon's ``SearchService#call`` (module docstring)."""
        text, results = query.text.strip(), Results()
        if not text or query.limit <= 0:
            return results
        offset = query.offset if query.kind else 0  # Mastodon pages one type at a time
        failures: list[FedisocialError] = []
        if query.resolve and _URL.match(text):
            found = await self.resolve_url(text, viewer, failures=failures) if offset == 0 else None
            if isinstance(found, Actor) and query.wants("accounts"):
                results.accounts = [found]
            elif isinstance(found, Object) and query.wants("statuses"):
                results.statuses = [found]
            results.failure = failures[0] if failures else None
            return results
        lone = (text.startswith("#") or "@" in text) and " " not in text
        if query.wants("accounts") and not (text.startswith("#") or ("@" in text and " " in text)):
            results.accounts = await self.accounts(
                text, viewer, limit=query.limit, offset=offset, resolve=query.resolve,
                following=query.following, failures=failures,
            )  # fmt: skip
            results.failure = failures[0] if failures else None
        if query.wants("statuses") and viewer is not None and not lone:
            results.statuses = await self.statuses(text, viewer, query, offset)
        if query.wants("hashtags") and "@" not in text:
            results.hashtags = await self.hashtags(text, viewer, limit=query.limit, offset=offset)
        return results

    # -- accounts -------------------------------------------------------------------
    async def accounts(
        self, text: str, viewer: Actor | None, *, limit: int, offset: int = 0,
        resolve: bool = False, following: bool = False,
        failures: list[FedisocialError] | None = None,
    ) -> list[Actor]:  # fmt: skip
        """Mastodon's ``AccountSearchService``: the exact match of a handle, then prefixes
        (``failures`` is told why resolving the handle failed, if it did)."""
        text = text.strip().removeprefix("@")
        if not text or limit <= 0:
            return []
        handle = _HANDLE.match(text)
        exact = None
        if handle and offset == 0:
            exact = await self._exact(handle[1], handle[2].lower(), viewer, resolve=resolve,
                                      failures=failures)  # fmt: skip
            if exact is not None and following and viewer is not None:
                exact = exact if await self._follows(viewer, exact) else None
        wanted = limit - (exact is not None)
        if wanted <= 0 or (viewer is None and len(text) < _MIN_QUERY):
            return [exact] if exact else []
        async with self.db.session() as session:
            found = list(await session.scalars(
                self._account_query(text, viewer, following=following)
                .limit(wanted).offset(offset)
            ))  # fmt: skip
        if exact is not None:
            found = [exact, *(actor for actor in found if actor.id != exact.id)]
        return found[:limit]

    async def _exact(
        self, username: str, host: str, viewer: Actor | None, *, resolve: bool,
        failures: list[FedisocialError] | None = None,
    ) -> Actor | None:  # fmt: skip
        if resolve and viewer is not None:
            try:
                return await self.outbox.actor_of(f"{username}@{host}")
            except FedisocialError as exc:  # an unknown or failing host: no match
                log.info("search: could not resolve %s@%s: %s", username, host, exc.message)
                if failures is not None:
                    failures.append(exc)
                return None
        async with self.db.session() as session:  # (local actors' domain is our netloc)
            return await session.scalar(
                select(Actor).where(
                    self._listed(), Actor.domain == host,
                    func.lower(Actor.username) == username.lower(),
                )
            )  # fmt: skip

    def _listed(self) -> ColumnElement[bool]:
        """Accounts search may show: not the instance actor, not a sign-up waiting for approval."""
        waiting = exists().where(User.actor_id == Actor.id, User.approved.is_(False))
        return and_(Actor.uri != self.urls.instance_actor, ~waiting)

    def _account_query(self, text: str, viewer: Actor | None, *, following: bool) -> Select[Any]:
        username, _, host = text.partition("@")
        if host.lower() == self.urls.netloc:
            host = ""
        matches = or_(
            _starts(Actor.username, username),
            _starts(Actor.name, text),
            func.lower(Actor.name).like(f"% {_like(text.lower())}%", escape="\\"),
        )
        if host:
            matches = and_(_starts(Actor.username, username), _starts(Actor.domain, host))
        query = select(Actor).where(self._listed(), matches)
        order: list[Any] = [case((func.lower(Actor.username) == username.lower(), 0), else_=1)]
        if viewer is not None:
            followed = exists().where(
                Follow.follower_uri == viewer.uri, Follow.followee_uri == Actor.uri,
                Follow.state == "accepted",
            )  # fmt: skip
            blocks_viewer = exists().where(
                Block.blocker_uri == Actor.uri, Block.blocked_uri == viewer.uri
            )
            query = query.where(~blocks_viewer)
            if following:
                query = query.where(followed)
            order.append(case((followed, 0), else_=1))
        order += [Actor.discoverable.desc(), Actor.local.desc(), func.lower(Actor.username),
                  Actor.id]  # fmt: skip
        return query.order_by(*order)

    async def _follows(self, viewer: Actor, actor: Actor) -> bool:
        async with self.db.session() as session:
            return bool(await session.scalar(select(exists().where(
                Follow.follower_uri == viewer.uri, Follow.followee_uri == actor.uri,
                Follow.state == "accepted",
            ))))  # fmt: skip

    # -- statuses -------------------------------------------------------------------
    def _findable(self, viewer: Actor) -> ColumnElement[bool]:
        """Mastodon's ``searchable_by`` and public index: what ``viewer`` may find (and read)."""
        engaged = exists().where(
            Engagement.actor_uri == viewer.uri, Engagement.object_uri == Object.uri,
            Engagement.kind.in_(("like", "announce")),
        )  # fmt: skip
        bookmarked = exists().where(Bookmark.owner_id == viewer.id,
                                    Bookmark.object_id == Object.id)  # fmt: skip
        indexable = exists().where(Actor.uri == Object.actor_uri, Actor.indexable.is_(True))
        muted = exists().where(
            Mute.owner_id == viewer.id, Mute.muted_uri == Object.actor_uri,
            or_(Mute.expires_at.is_(None), Mute.expires_at > utcnow()),
        )  # fmt: skip
        return and_(
            in_feed_of(viewer.uri),
            readable_by(viewer.uri),  # (in_feed_of has it; said again: it is the rule)
            or_(
                Object.actor_uri == viewer.uri,
                addressed_to(viewer.uri),
                engaged,
                bookmarked,
                and_(Object.visibility == "public", indexable),
            ),
            ~muted,
        )

    async def statuses(
        self, text: str, viewer: Actor, query: Query, offset: int = 0
    ) -> list[Object]:
        """Posts ``viewer`` may find whose text has every word of ``text``, newest first."""
        words = [word.strip("\"'") for word in text.split()]
        words = [word for word in words if word]
        if not words:
            return []
        # the words select candidates by id, newest first (a scan: no text index yet); the read
        # rule then decides for each chunk (evaluated per candidate, not per stored post)
        matching: list[ColumnElement[bool]] = [Object.type.in_(POST_TYPES),
                                               Object.deleted_at.is_(None)]  # fmt: skip
        content, summary = Object.data["content"].as_string(), Object.data["summary"].as_string()
        for hint in filter(None, map(_sql_hint, words)):
            matching.append(or_(_contains(content, hint), _contains(summary, hint)))
        if query.account_id is not None:
            author = select(Actor.uri).where(Actor.id == query.account_id).scalar_subquery()
            matching.append(Object.actor_uri == author)
        if query.min_id is not None:
            matching.append(Object.id > query.min_id)
        wanted, scanned, before = offset + query.limit, 0, query.max_id
        found: list[Object] = []
        async with self.db.session() as session:
            while len(found) < wanted and scanned < _SCAN_CAP:
                candidates = select(Object.id).where(*matching)
                if before is not None:
                    candidates = candidates.where(Object.id < before)
                ids = list(await session.scalars(candidates.order_by(Object.id.desc())
                                                 .limit(_SCAN_CHUNK)))  # fmt: skip
                if not ids:
                    break
                rows = await session.scalars(select(Object)
                                             .where(Object.id.in_(ids), self._findable(viewer))
                                             .order_by(Object.id.desc()))  # fmt: skip
                found += [row for row in rows if _has_words(row.data, words)]
                scanned += len(ids)
                if len(ids) < _SCAN_CHUNK:
                    break
                before = ids[-1]
        return found[offset:wanted]

    # -- hashtags -------------------------------------------------------------------
    async def hashtags(
        self, text: str, viewer: Actor | None, *, limit: int, offset: int = 0
    ) -> list[str]:
        """Hashtag names starting with ``text`` in the newest posts ``viewer`` may read."""
        prefix = text.strip().lstrip("#").lower()
        if not prefix or " " in prefix or limit <= 0:
            return []
        tags = Object.data["tag"].as_string()
        candidates = (
            select(Object.id)
            .where(Object.type.in_(POST_TYPES), Object.deleted_at.is_(None),
                   _contains(tags, f"#{prefix}"))
            .order_by(Object.id.desc())
            .limit(_TAG_SCAN)
        )  # fmt: skip
        used: Counter[str] = Counter()
        async with self.db.session() as session:
            ids = list(await session.scalars(candidates))
            readable = select(Object.data).where(
                Object.id.in_(ids), readable_by(viewer.uri if viewer else None)
            )
            for data in await session.scalars(readable):
                names = {name for name in hashtags(data) if name.startswith(prefix)}
                used.update(names)
        ranked = sorted(used, key=lambda name: (name != prefix, -used[name], name))
        return ranked[offset : offset + limit]

    # -- resolving a URL --------------------------------------------------------------
    async def resolve_url(
        self, url: str, viewer: Actor | None, *, failures: list[FedisocialError] | None = None
    ) -> Actor | Object | None:
        """Mastodon's ``ResolveURLService``: the account or post at ``url``, if ``viewer`` may
        see it; ours and stored ones from the store, others fetched (signed) and stored
        (``failures`` is told why the fetch failed, if it did)."""
        if self.urls.is_local(url) or not viewer:
            found = await self._stored(url)
        else:
            found = await self._stored(url) or await self._fetched(url, failures)
        if isinstance(found, Object):
            return found if await self._readable(found, viewer) else None
        return found

    async def _stored(self, url: str) -> Actor | Object | None:
        name = self.urls.local_username(url)
        async with self.db.session() as session:
            actor = await session.scalar(
                select(Actor).where(or_(Actor.uri == url, Actor.url == url), self._listed())
                .order_by(Actor.local.desc()).limit(1)
            ) if name is None else await session.scalar(select(Actor).where(
                Actor.local.is_(True), Actor.domain == self.urls.netloc,
                func.lower(Actor.username) == name.lower(), self._listed(),
            ))  # fmt: skip
            if actor is not None:
                return actor
            return await session.scalar(
                select(Object).where(Object.uri == url, Object.type.in_(POST_TYPES))
            )

    async def _fetched(
        self, url: str, failures: list[FedisocialError] | None = None
    ) -> Actor | Object | None:
        try:
            received = await self.client.get_json(url)
            doc = normalize(received)
            kind, uri = doc.get("type"), get_id(doc.get("id"))
            if not uri:
                return None
            if kind in ACTOR_TYPES:
                return await self.outbox.actor_of(uri)
            if kind not in POST_TYPES:
                return None
            row = await fetch_object(self.db, self.client, uri,
                                     received=received if uri == url else None)  # fmt: skip
            if row.type not in POST_TYPES or not row.actor_uri:
                return None
            await self.outbox.actor_of(row.actor_uri)  # a status is shown with its account
            return row
        except FedisocialError as exc:  # unreachable, refused, not AS2, not a post we accept
            log.info("search: could not resolve %s: %s", url, exc.message)
            if failures is not None:
                failures.append(exc)
            return None

    async def _readable(self, row: Object, viewer: Actor | None) -> bool:
        if row.deleted_at is not None:
            return False
        try:
            await ensure_readable(self.db, row, viewer)
        except FedisocialError:
            return False
        return True


def _sql_hint(word: str) -> str | None:
    """What of ``word`` the stored HTML surely holds: its longest run of letters and digits
    (markup splits ``#<span>tag</span>``, entities stand for ``'`` and ``&``)."""
    runs = re.findall(r"\w+", word)
    return max(runs, key=len) if runs else None


def _has_words(doc: dict[str, Any], words: Sequence[str]) -> bool:
    """Whether the post's text (its HTML as plain text) and warning hold every word."""
    shown = " ".join(plain_text(str(doc.get(key) or "")) for key in ("summary", "content"))
    shown = shown.casefold()
    return all(word.casefold() in shown for word in words)
