"""webhook_inbox_applied: the mark that an inbox event's effects committed (the inbox may live in its own file)

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
import config.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_inbox_applied",
        sa.Column("content_key", sa.String(length=100), nullable=False),
        sa.Column("inbox_id", sa.Integer(), nullable=False),
        sa.Column("applied_at", config.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("content_key", name=op.f("pk_webhook_inbox_applied")),
    )


def downgrade() -> None:
    op.drop_table("webhook_inbox_applied")
