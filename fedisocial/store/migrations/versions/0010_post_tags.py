"""post_tags: the hashtags of each post, the index of the tag timelines (backfilled)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 19:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POSTS = "'Note', 'Article', 'Page', 'Question', 'Event', 'Video'"  # vocab.POST_TYPES

# The posts stored so far, in one statement per dialect. (SQLite's lower() folds ASCII
# only; posts stored from now on are normalized by timeline.tag_name, NFKC and lower case.)
_BACKFILL = {
    "sqlite": f"""
        INSERT OR IGNORE INTO post_tags (name, object_id)
        SELECT DISTINCT substr(lower(ltrim(json_extract(t.value, '$.name'), '#')), 1, 255), o.id
        FROM objects o, json_each(o.data, '$.tag') t
        WHERE json_type(o.data, '$.tag') = 'array' AND o.type IN ({_POSTS})
          AND json_extract(t.value, '$.type') = 'Hashtag'
          AND ltrim(coalesce(json_extract(t.value, '$.name'), ''), '#') != ''
    """,
    "postgresql": f"""
        INSERT INTO post_tags (name, object_id)
        SELECT DISTINCT left(lower(ltrim(t ->> 'name', '#')), 255), o.id
        FROM objects o, jsonb_array_elements(o.data -> 'tag') t
        WHERE jsonb_typeof(o.data -> 'tag') = 'array' AND o.type IN ({_POSTS})
          AND t ->> 'type' = 'Hashtag' AND ltrim(coalesce(t ->> 'name', ''), '#') != ''
        ON CONFLICT DO NOTHING
    """,
}


def upgrade() -> None:
    op.create_table(
        "post_tags",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "object_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(["object_id"], ["objects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("name", "object_id"),
    )
    with op.batch_alter_table("post_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_post_tags_object_id"), ["object_id"], unique=False)
    op.execute(_BACKFILL[op.get_bind().dialect.name])


def downgrade() -> None:
    with op.batch_alter_table("post_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_post_tags_object_id"))
    op.drop_table("post_tags")
