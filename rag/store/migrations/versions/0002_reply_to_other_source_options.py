"""posts.reply_to_other (a reply to another chat's message), sources.options (--tz, --chat)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_to_other", sa.JSON(), nullable=True))
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite has it since 3.35), not batch mode: a batch rebuild
    # drops the old posts and sources tables, and with foreign_keys=ON that cascade-deleted every
    # chunk and link of every post and cleared posts.source_id (tests/ingest/test_migrations.py).
    op.drop_column("sources", "options")
    op.drop_column("posts", "reply_to_other")
