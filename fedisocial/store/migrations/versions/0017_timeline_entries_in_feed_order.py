"""timeline entries in feed order

Feeds are read newest first by ``(published, id)``. ``ix_timeline_owner_published``
held ``(owner_id, published)``: on PostgreSQL every entry sharing a time (posts render
their time to the second; a relay's arrive by the thousand a minute) had to be sorted
by id, so a boost's fall-off check (the 40th newest entry) sorted every entry of its
second (2.7 ms a check in bench/inbox.py, whose posts of a run share one second). With
``id`` in the index the order is read as stored. On SQLite an index already ends with
the rowid (``id``): the same order.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 13:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_timeline_owner_published", table_name="timeline_entries")
    op.create_index("ix_timeline_owner_published", "timeline_entries",
                    ["owner_id", "published", "id"])  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_timeline_owner_published", table_name="timeline_entries")
    op.create_index("ix_timeline_owner_published", "timeline_entries", ["owner_id", "published"])
