"""Typed tables. The raw JSON is the record, the columns are the index.

The same models run on SQLite and PostgreSQL: JSON becomes JSONB on PostgreSQL,
timestamps are always timezone-aware UTC (SQLite stores them naive, the
:class:`UTCDateTime` type puts the zone back).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Actor",
    "AssistantRequest",
    "Base",
    "Block",
    "Bookmark",
    "DomainBlock",
    "Engagement",
    "Follow",
    "Generation",
    "Host",
    "IdempotencyKey",
    "Job",
    "Marker",
    "Media",
    "Mute",
    "Notification",
    "OAuthClient",
    "OAuthCode",
    "OAuthToken",
    "Object",
    "PostApplication",
    "PostTag",
    "PostVersion",
    "ServiceState",
    "StreamEvent",
    "ThrottleCounter",
    "TimelineEntry",
    "User",
    "WebSession",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


JSONDocument = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSONDocument,
    }


class Actor(Base):
    """A local or remote actor, with its keys. Remote rows are a cache of ``data``."""

    __tablename__ = "actors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(255))
    #: host[:port] of the actor's handle, lower case (our own netloc for local actors)
    domain: Mapped[str] = mapped_column(String(255))
    local: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(2048))
    inbox: Mapped[str] = mapped_column(String(2048))
    shared_inbox: Mapped[str | None] = mapped_column(String(2048))
    outbox: Mapped[str | None] = mapped_column(String(2048))
    followers_url: Mapped[str | None] = mapped_column(String(2048))
    following_url: Mapped[str | None] = mapped_column(String(2048))
    featured_url: Mapped[str | None] = mapped_column(String(2048))
    icon_url: Mapped[str | None] = mapped_column(String(2048))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    public_key_id: Mapped[str] = mapped_column(String(2048))
    public_key_pem: Mapped[str] = mapped_column(Text)
    #: PKCS8 PEM; local actors only
    private_key_pem: Mapped[str | None] = mapped_column(Text)
    #: FEP-521a Ed25519 key: multibase public key, PKCS8 PEM private key (local only)
    ed25519_public_multibase: Mapped[str | None] = mapped_column(String(64))
    ed25519_private_pem: Mapped[str | None] = mapped_column(Text)
    manually_approves_followers: Mapped[bool] = mapped_column(Boolean, default=False)
    discoverable: Mapped[bool] = mapped_column(Boolean, default=True)
    indexable: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the account opted out of AI use of its posts and images (FEP-5e53 ``noai``)
    noai: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: profile fields: [{"name": ..., "value": ...}] (PropertyValue attachments)
    fields: Mapped[list[dict[str, str]]] = mapped_column(JSONDocument, default=list)
    #: the document as last fetched (remote actors)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    fetched_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_actors_handle", "domain", "username"),
        Index("ix_actors_public_key_id", "public_key_id"),
    )


class User(Base):
    """An account that can log in; its public face is a local :class:`Actor`."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("actors.id", ondelete="CASCADE"), unique=True)
    username: Mapped[str] = mapped_column(String(30), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    #: argon2id hash
    password_hash: Mapped[str] = mapped_column(Text)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: false while a sign-up waits for an admin (registrations = "approval")
    approved: Mapped[bool] = mapped_column(Boolean, default=True)
    #: why the person asked to join (registrations = "approval"), for the admins
    sign_up_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_active_at: Mapped[datetime] = mapped_column(default=utcnow)


#: the rows of the partial indexes of objects and jobs (queries by value imply them)
_REPLIES = "in_reply_to IS NOT NULL"
_WITH_OBJECT = "object_uri IS NOT NULL"
_FINISHED_JOB = "finished_at IS NOT NULL"
_JOB_REF = "ref IS NOT NULL"


class Object(Base):
    """Any AS2 object or activity, local or remote, kept exactly as sent or received."""

    __tablename__ = "objects"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: unique and always given, so the ORM inserts many new rows in one statement (it matches
    #: the ids RETURNING gives back to the rows by it: an "insert sentinel")
    uri: Mapped[str] = mapped_column(String(2048), unique=True, insert_sentinel=True)
    type: Mapped[str] = mapped_column(String(64))
    #: looked up through ix_objects_actor_published, which leads with it
    actor_uri: Mapped[str | None] = mapped_column(String(2048))
    published: Mapped[datetime] = mapped_column(default=utcnow)
    #: public, unlisted, followers or direct
    visibility: Mapped[str] = mapped_column(String(16), default="public")
    in_reply_to: Mapped[str | None] = mapped_column(String(2048))
    #: for activities: the id of their object (what a Like likes, a Create creates)
    object_uri: Mapped[str | None] = mapped_column(String(2048))
    local: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    #: remote posts: the document exactly as received (``data`` is the sanitized copy we show)
    original: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    #: local posts pinned to the author's profile (the featured collection)
    pinned_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # Every row is written to each index, and a received post writes two rows (the
    # activity, the post): the replies and object lookups are by value (=, IN), so their
    # indexes hold only the rows that have one (activities answer nothing, posts have no
    # object); an index of actor_uri alone would repeat the lead of ix_objects_actor_published.
    __table_args__ = (
        Index("ix_objects_actor_published", "actor_uri", "published"),
        Index("ix_objects_in_reply_to", "in_reply_to", sqlite_where=text(_REPLIES),
              postgresql_where=text(_REPLIES)),
        Index("ix_objects_object_uri", "object_uri", sqlite_where=text(_WITH_OBJECT),
              postgresql_where=text(_WITH_OBJECT)),
    )  # fmt: skip


#: the jobs not yet finished: the rows of the partial index ix_jobs_due. Queries repeat it
#: verbatim (literals, not parameters) so that SQLite and PostgreSQL can prove they may use it.
JOB_ACTIVE = "status IN ('queued', 'running')"


class Job(Base):
    """A unit of background work in the database-backed queue (see jobs.py)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    #: queued, running, done, failed or cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: while running: the claim expires then and another worker may take the job
    lease_until: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    #: what the job is about (e.g. the object a delivery carries), to cancel it
    ref: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    # The due lookup reads only active jobs in run_at order, however many finished rows wait
    # to be pruned, and a lookup of some kinds reads only theirs (a lane of deliveries does
    # not walk a backlog of received activities); finished rows are found by age (pruning), and
    # leading with finished_at, that index never tempts a plan for due jobs (and holds only
    # finished rows: a job queued is not written to it until it ends).
    __table_args__ = (
        Index("ix_jobs_due", "run_at", sqlite_where=text(JOB_ACTIVE),
              postgresql_where=text(JOB_ACTIVE)),
        Index("ix_jobs_due_by_kind", "kind", "run_at", sqlite_where=text(JOB_ACTIVE),
              postgresql_where=text(JOB_ACTIVE)),
        Index("ix_jobs_finished", "finished_at", sqlite_where=text(_FINISHED_JOB),
              postgresql_where=text(_FINISHED_JOB)),
        Index("ix_jobs_ref", "ref", sqlite_where=text(_JOB_REF), postgresql_where=text(_JOB_REF)),
    )  # fmt: skip


class Follow(Base):
    """``follower_uri`` follows ``followee_uri`` (either side local or remote)."""

    __tablename__ = "follows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follower_uri: Mapped[str] = mapped_column(String(2048))
    followee_uri: Mapped[str] = mapped_column(String(2048), index=True)
    #: id of the Follow activity (Accept/Reject/Undo refer to it)
    activity_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    #: pending or accepted
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("follower_uri", "followee_uri"),)


class Engagement(Base):
    """A like, boost (announce) or emoji reaction of an object."""

    __tablename__ = "engagements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: like, announce or reaction
    kind: Mapped[str] = mapped_column(String(16))
    actor_uri: Mapped[str] = mapped_column(String(2048))
    object_uri: Mapped[str] = mapped_column(String(2048), index=True)
    activity_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    #: the emoji of a reaction ("" for likes and boosts)
    content: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "actor_uri", "object_uri", "content"),)


class Block(Base):
    """``blocker_uri`` blocks ``blocked_uri``."""

    __tablename__ = "blocks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    blocker_uri: Mapped[str] = mapped_column(String(2048))
    blocked_uri: Mapped[str] = mapped_column(String(2048), index=True)
    activity_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("blocker_uri", "blocked_uri"),)


class TimelineEntry(Base):
    """One item of a local actor's home feed (fan-out on write)."""

    __tablename__ = "timeline_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("actors.id", ondelete="CASCADE"))
    #: the Note (or other post), or the Announce that brought it
    object_id: Mapped[int] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"))
    published: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("owner_id", "object_id"),
        # in the feeds' order, ties included (SQLite's indexes end with the rowid anyway)
        Index("ix_timeline_owner_published", "owner_id", "published", "id"),
        # a post's entries: removed with it, looked up when it is boosted
        Index("ix_timeline_object", "object_id"),
    )


class Host(Base):
    """Delivery health of a remote host (see delivery.py)."""

    __tablename__ = "hosts"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    #: set when the host kept failing for days; deliveries skip it, one probe at a time
    unreachable_since: Mapped[datetime | None]


class Media(Base):
    """An image stored by the MediaStore (uploaded or generated), with what Mastodon shows."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("actors.id", ondelete="CASCADE"), index=True)
    #: SHA-256 of the stored (cleaned) file; the storage key derives from it
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: storage keys of the image and its thumbnail (e.g. "ab/abcdef….png")
    path: Mapped[str] = mapped_column(String(255))
    thumbnail_path: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    blurhash: Mapped[str] = mapped_column(String(64))
    #: alt text
    description: Mapped[str] = mapped_column(Text, default="")
    focal_x: Mapped[float] = mapped_column(Float, default=0.0)
    focal_y: Mapped[float] = mapped_column(Float, default=0.0)
    #: set for images an AI model made: which provider and model, from what prompt
    ai_provider: Mapped[str | None] = mapped_column(String(32))
    ai_model: Mapped[str | None] = mapped_column(String(128))
    prompt: Mapped[str | None] = mapped_column(Text)
    revised_prompt: Mapped[str | None] = mapped_column(Text)
    #: the post it was published in (None while it is a draft)
    note_uri: Mapped[str | None] = mapped_column(String(2048), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Generation(Base):
    """One image generation request: queued → running → done | failed."""

    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("actors.id", ondelete="CASCADE"))
    prompt: Mapped[str] = mapped_column(Text)
    #: queued, running, done or failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    #: what the user sees when it failed
    error: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_generations_owner_created", "owner_id", "created_at"),)


class ThrottleCounter(Base):
    """Attempts charged to one key ("account:alice", "address:192.0.2.7"); see auth/throttle.py."""

    __tablename__ = "throttle_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: attempts not yet refunded by a success; the wait grows with them
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime] = mapped_column(index=True)


class OAuthClient(Base):
    """An OAuth 2.0 client: registered, described by a fetched document, or known by id only.

    ``kind`` says how we know it (see auth/clients.py): ``registered`` (RFC 7591, Mastodon
    apps, ``fedisocial token create``), ``document`` (its id is the URL of a client metadata
    document or ActivityPub ``Application``, FEP-d8c2, which we fetched) or ``loopback`` (an id
    URL we could not fetch: only loopback redirect URIs, RFC 8252 §7.3).
    """

    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(2048), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text, default="")
    website: Mapped[str | None] = mapped_column(String(2048))
    redirect_uris: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    #: the scopes it may ask for, space-separated
    scopes: Mapped[str] = mapped_column(Text, default="read")
    #: SHA-256 (hex) of the client secret of a confidential client; None for public clients
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    #: none, client_secret_basic or client_secret_post (RFC 7591 §2)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32), default="none")
    #: the account that made it (``fedisocial token create``), else None
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: the metadata document as last fetched (kind ``document``)
    document: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    fetched_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthCode(Base):
    """An authorization code: stored hashed, short-lived, used once, bound to PKCE."""

    __tablename__ = "oauth_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: SHA-256 (hex) of the code
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    #: set when exchanged; a second exchange revokes the tokens of the first (RFC 6749 §4.1.2)
    used_at: Mapped[datetime | None]


class OAuthToken(Base):
    """An access token and its refresh token, both stored as SHA-256 hashes (hex)."""

    __tablename__ = "oauth_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    access_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: the code it was exchanged for (revoked with it when the code is replayed)
    code_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_codes.id", ondelete="SET NULL"), index=True
    )
    #: the granted scopes, space-separated, as the client asked for them
    scope: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: None: the access token does not expire (Mastodon's and the CLI's tokens)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_oauth_tokens_user_client", "user_id", "client_id"),)


class WebSession(Base):
    """A browser's sign-in: the cookie holds a random id, this row its SHA-256 (hex)."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: the value every form of this session carries (CSRF), compared in constant time
    csrf_secret: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# -- what the Mastodon client API keeps for each local account --------------------------------


class Mute(Base):
    """A local account hides another account's posts (and, optionally, notifications)."""

    __tablename__ = "mutes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("actors.id", ondelete="CASCADE"))
    muted_uri: Mapped[str] = mapped_column(String(2048), index=True)
    #: also hide notifications from them (Mastodon's default)
    notifications: Mapped[bool] = mapped_column(Boolean, default=True)
    #: None: until unmuted
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("owner_id", "muted_uri"),)


class Bookmark(Base):
    """A post a local account saved for later (private: never federated)."""

    __tablename__ = "bookmarks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("actors.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("owner_id", "object_id"),)


class Notification(Base):
    """Something a local account is told about: a follow, a mention, a like, a finished image.

    ``key`` names what caused it (the activity's or post's id), so that a redelivered
    activity notifies once; ``object_id`` is the post it is about, if any.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("actors.id", ondelete="CASCADE"))
    #: Mastodon's types (follow, follow_request, mention, reblog, favourite, update, status)
    type: Mapped[str] = mapped_column(String(32))
    #: who caused it
    actor_uri: Mapped[str] = mapped_column(String(2048))
    object_id: Mapped[int | None] = mapped_column(
        ForeignKey("objects.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dismissed_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("owner_id", "type", "key"),
        Index("ix_notifications_owner_id", "owner_id", "id"),
    )


class Marker(Base):
    """Where a local account stopped reading a timeline (Mastodon's markers)."""

    __tablename__ = "markers"

    owner_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), primary_key=True
    )
    #: home or notifications
    timeline: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_read_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` for a post it made: the same key posts once."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("actors.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    object_id: Mapped[int] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    __table_args__ = (UniqueConstraint("owner_id", "key"),)


class PostVersion(Base):
    """An earlier version of an edited post, as it was before the edit (its history)."""

    __tablename__ = "post_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"), index=True)
    #: the document as it was
    data: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    #: when this version was made (published, or the edit that made it)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StreamEvent(Base):
    """A post deleted or edited, for the streaming API (``delete``, ``status.update``).

    Written by database triggers on ``objects`` (migration 0009), whoever changes the row:
    a web process, a worker, another host. Kept for minutes (streams read only new ones).
    """

    __tablename__ = "stream_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: delete or status.update
    kind: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class PostTag(Base):
    """A hashtag of a post (its ``tag`` array's ``Hashtag`` names, normalized): the index
    of the tag timelines, read newest post first by (name, post id)."""

    __tablename__ = "post_tags"

    #: lower case, without ``#`` (:func:`fedisocial.social.timeline.tag_name`)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    object_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("objects.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class PostApplication(Base):
    """The app (OAuth client) a local post was made through: Mastodon's ``application`` of a
    status. Posts made otherwise (the web pages, the command line) have none; an app
    removed takes its rows along."""

    __tablename__ = "post_applications"

    object_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("objects.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )


class AssistantRequest(Base):
    """One mention of the assistant: the admin's queue, the quota counter, and the memory of
    who was told to wait (see :mod:`fedisocial.assistant.answers`)."""

    __tablename__ = "assistant_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: the asking post: one request per post, however often it is delivered or edited
    post_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    #: the assistant actor that was mentioned
    service_uri: Mapped[str] = mapped_column(String(2048))
    asker_uri: Mapped[str] = mapped_column(String(2048))
    #: host[:port] of the asker, lower case (the per-server quota counts by it)
    asker_domain: Mapped[str] = mapped_column(String(255))
    #: image or text, once decided
    kind: Mapped[str | None] = mapped_column(String(8))
    #: queued, running, answered, skipped, limited, refused, failed or cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(Text)
    #: the assistant's reply, when it wrote one
    reply_uri: Mapped[str | None] = mapped_column(String(2048))
    #: the image being made for the reply
    generation_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_assistant_requests_asker_created", "asker_uri", "created_at"),
        Index("ix_assistant_requests_domain_created", "asker_domain", "created_at"),
        Index("ix_assistant_requests_created", "created_at"),
    )


class ServiceState(Base):
    """Whether a local ``Service`` actor (the assistant) answers mentions, and whether it is
    paused: in the database, so that every process sees it. A Service actor without a row,
    or with ``enabled`` false, is mentioned like anyone and queues nothing."""

    __tablename__ = "service_states"

    actor_uri: Mapped[str] = mapped_column(String(2048), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    paused_at: Mapped[datetime | None]


class DomainBlock(Base):
    """``blocker_uri`` blocks every account of ``domain`` (Mastodon's account domain block)."""

    __tablename__ = "domain_blocks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    blocker_uri: Mapped[str] = mapped_column(String(2048))
    #: host[:port], lower case
    domain: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("blocker_uri", "domain"),)
