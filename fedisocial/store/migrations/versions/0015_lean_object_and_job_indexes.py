"""lean object and job indexes

Every row is written to each of its table's indexes, and a received post writes two
``objects`` rows (the activity and the post) and a job. ``ix_objects_actor_uri``
repeated the leading column of ``ix_objects_actor_published``, which serves the same
lookups; the replies, object, finished-job and job-reference indexes are looked up by
value only (``=``, ``IN``, ``<``), so they now hold only the rows that have one: an
activity answers nothing, a post has no object, a queued job has not finished, and the
processing of a received activity has no reference (nothing cancels it).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, table, column) of the indexes made partial: ``column IS NOT NULL``
_PARTIAL = (
    ("ix_objects_in_reply_to", "objects", "in_reply_to"),
    ("ix_objects_object_uri", "objects", "object_uri"),
    ("ix_jobs_finished", "jobs", "finished_at"),
    ("ix_jobs_ref", "jobs", "ref"),
)


def upgrade() -> None:
    op.drop_index("ix_objects_actor_uri", table_name="objects")
    for name, table, column in _PARTIAL:
        op.drop_index(name, table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, [column], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name, table, column in _PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [column])
    op.create_index("ix_objects_actor_uri", "objects", ["actor_uri"])
