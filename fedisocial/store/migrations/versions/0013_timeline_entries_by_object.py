"""timeline_entries by object

The feed entries of one post: removed when it is deleted (and by the cascade of its
row), and looked up when it is boosted (a boost of a post among a feed's newest
entries is left out of it). Without an index of their own, each of those read every
entry of every feed.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 05:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_timeline_object", "timeline_entries", ["object_id"])


def downgrade() -> None:
    op.drop_index("ix_timeline_object", table_name="timeline_entries")
