"""actors.noai and users.sign_up_reason

``noai``: the account asked that its posts and images not be used for AI (FEP-5e53's
``noai`` robots signal): our pages and media then say ``X-Robots-Tag: noai, noimageai``,
and the assistant never quotes it. Remote actors carry it when their profile says so.
``sign_up_reason``: why someone asked to join, shown to the admins who approve sign-ups
(registrations = "approval").

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("actors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("noai", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sign_up_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("sign_up_reason")
    with op.batch_alter_table("actors", schema=None) as batch_op:
        batch_op.drop_column("noai")
