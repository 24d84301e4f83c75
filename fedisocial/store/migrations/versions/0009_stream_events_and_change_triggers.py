"""Stream events (a post deleted or edited) written by triggers; PostgreSQL change notices

The streaming API tells apps when a post appears, is edited or is deleted,
whichever process made the change (a web process, a worker, another host).
Triggers on ``objects`` write a ``stream_events`` row when a row's
``deleted_at`` is set (``delete``) or its ``data`` changes (``status.update``).
On PostgreSQL, a statement-level trigger on the tables streams read
(``objects``, ``timeline_entries``, ``notifications``, ``stream_events``) also
sends ``NOTIFY fedisocial_changes`` with the table's name, so that every
listening process wakes as the transaction commits; SQLite processes poll.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 19:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOTIFIED = ("objects", "timeline_entries", "notifications", "stream_events")

_PG_OBJECT_CHANGED = """
CREATE FUNCTION fedisocial_object_changed() RETURNS trigger AS $$
BEGIN
    IF NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN
        INSERT INTO stream_events (kind, object_id, created_at) VALUES ('delete', NEW.id, now());
    ELSIF NEW.deleted_at IS NULL AND NEW.data IS DISTINCT FROM OLD.data THEN
        INSERT INTO stream_events (kind, object_id, created_at)
        VALUES ('status.update', NEW.id, now());
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""

_PG_NOTIFY_CHANGE = """
CREATE FUNCTION fedisocial_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('fedisocial_changes', TG_TABLE_NAME);
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""

#: SQLAlchemy's text form of a UTC time on SQLite (six digits of microseconds)
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


def upgrade() -> None:
    op.create_table(
        "stream_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stream_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stream_events_created_at"), ["created_at"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_OBJECT_CHANGED)
        op.execute(
            "CREATE TRIGGER objects_stream_events AFTER UPDATE OF deleted_at, data ON objects "
            "FOR EACH ROW EXECUTE FUNCTION fedisocial_object_changed()"
        )
        op.execute(_PG_NOTIFY_CHANGE)
        for table in _NOTIFIED:
            op.execute(
                f"CREATE TRIGGER {table}_notify_change AFTER INSERT ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION fedisocial_notify_change()"
            )
        return
    _sqlite_trigger("objects_stream_delete", "deleted_at", "delete",
                    "NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL")  # fmt: skip
    _sqlite_trigger("objects_stream_update", "data", "status.update",
                    "NEW.deleted_at IS NULL AND NEW.data IS NOT OLD.data")  # fmt: skip


def _sqlite_trigger(name: str, column: str, kind: str, when: str) -> None:
    op.execute(
        f"CREATE TRIGGER {name} AFTER UPDATE OF {column} ON objects WHEN {when} BEGIN "
        "INSERT INTO stream_events (kind, object_id, created_at) "
        f"VALUES ('{kind}', NEW.id, {_SQLITE_NOW}); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _NOTIFIED:
            op.execute(f"DROP TRIGGER {table}_notify_change ON {table}")
        op.execute("DROP TRIGGER objects_stream_events ON objects")
        op.execute("DROP FUNCTION fedisocial_notify_change()")
        op.execute("DROP FUNCTION fedisocial_object_changed()")
    else:
        op.execute("DROP TRIGGER objects_stream_delete")
        op.execute("DROP TRIGGER objects_stream_update")
    with op.batch_alter_table("stream_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stream_events_created_at"))
    op.drop_table("stream_events")
