"""assistant_requests, service_states and domain_blocks

``assistant_requests``: each mention of the assistant, one row per post: what the admin
sees and cancels (``fedisocial assistant queue``), what the quotas count, and whether
an asker over a quota was told so in this window. ``service_states``: whether a local
Service actor (the assistant) answers mentions and whether it is paused, for every
process. ``domain_blocks``: an account's block of a whole server (Mastodon's account
domain blocks); the assistant never answers a blocked server.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "assistant_requests",
        sa.Column("id", _ID, nullable=False),
        sa.Column("post_uri", sa.String(2048), nullable=False),
        sa.Column("service_uri", sa.String(2048), nullable=False),
        sa.Column("asker_uri", sa.String(2048), nullable=False),
        sa.Column("asker_domain", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reply_uri", sa.String(2048), nullable=True),
        sa.Column("generation_id", _ID, nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_uri"),
    )
    with op.batch_alter_table("assistant_requests", schema=None) as batch_op:
        batch_op.create_index("ix_assistant_requests_asker_created", ["asker_uri", "created_at"])
        batch_op.create_index("ix_assistant_requests_domain_created",
                              ["asker_domain", "created_at"])  # fmt: skip
        batch_op.create_index("ix_assistant_requests_created", ["created_at"])
    op.create_table(
        "service_states",
        sa.Column("actor_uri", sa.String(2048), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("paused_at", _WHEN, nullable=True),
        sa.PrimaryKeyConstraint("actor_uri"),
    )
    op.create_table(
        "domain_blocks",
        sa.Column("id", _ID, nullable=False),
        sa.Column("blocker_uri", sa.String(2048), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("blocker_uri", "domain"),
    )


def downgrade() -> None:
    op.drop_table("domain_blocks")
    op.drop_table("service_states")
    with op.batch_alter_table("assistant_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_assistant_requests_created")
        batch_op.drop_index("ix_assistant_requests_domain_created")
        batch_op.drop_index("ix_assistant_requests_asker_created")
    op.drop_table("assistant_requests")
