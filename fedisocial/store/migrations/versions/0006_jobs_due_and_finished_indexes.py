"""jobs: a partial index of due jobs by run_at, and finished jobs by age

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_ready")
        batch_op.create_index(
            "ix_jobs_due", ["run_at"], unique=False, sqlite_where=_ACTIVE, postgresql_where=_ACTIVE
        )
        batch_op.create_index("ix_jobs_finished", ["finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_finished")
        batch_op.drop_index("ix_jobs_due")
        batch_op.create_index("ix_jobs_ready", ["status", "run_at"], unique=False)
