"""post_applications: the app (OAuth client) each local post was made through

Mastodon shows it as a status's ``application`` (``{"name", "website"}``). Posts made
before have none, as Mastodon's made on the web. A table of its own rather than a column
of ``objects``: SQLite cannot add a column with its foreign key without copying the
table (and its triggers), and only the posts made through an app have a row.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "post_applications",
        sa.Column("object_id", _ID, nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["object_id"], ["objects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["client_id"], ["oauth_clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("object_id"),
    )
    with op.batch_alter_table("post_applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_post_applications_client_id"), ["client_id"])


def downgrade() -> None:
    with op.batch_alter_table("post_applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_post_applications_client_id"))
    op.drop_table("post_applications")
