"""outbound_sends belongs to bot/: a generic `cause` instead of `inbox_id` (kept as `inbox:<id>`), a CHECK on status

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATUSES = "'sending', 'sent', 'failed', 'unknown', 'skipped'"


def upgrade() -> None:
    with op.batch_alter_table("outbound_sends", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cause", sa.String(length=100), nullable=True))
    op.execute("UPDATE outbound_sends SET cause = 'inbox:' || CAST(inbox_id AS VARCHAR) WHERE inbox_id IS NOT NULL")
    op.execute("UPDATE outbound_sends SET status = 'sending' WHERE status = 'new'")  # a claim's word, never committed
    with op.batch_alter_table("outbound_sends", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_sends_inbox_id"))
        batch_op.drop_column("inbox_id")
        batch_op.create_index(batch_op.f("ix_outbound_sends_cause"), ["cause"], unique=False)
        batch_op.create_check_constraint(op.f("ck_outbound_sends_status"), f"status IN ({STATUSES})")


def downgrade() -> None:
    with op.batch_alter_table("outbound_sends", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inbox_id", sa.Integer(), nullable=True))
    op.execute("UPDATE outbound_sends SET inbox_id = CAST(substr(cause, 7) AS INTEGER) WHERE cause LIKE 'inbox:%'")
    with op.batch_alter_table("outbound_sends", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_outbound_sends_status"), type_="check")
        batch_op.drop_index(batch_op.f("ix_outbound_sends_cause"))
        batch_op.drop_column("cause")
        batch_op.create_index(batch_op.f("ix_outbound_sends_inbox_id"), ["inbox_id"], unique=False)
