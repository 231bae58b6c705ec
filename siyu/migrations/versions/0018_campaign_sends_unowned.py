"""campaign_sends: sends without an owning staff member (one per member for OA template and MP subscribe actions)

Revision ID: 0018
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_sends", schema=None) as batch_op:
        batch_op.alter_column("staff_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_index("uq_campaign_sends_run_chunk_unowned", ["run_id", "chunk"], unique=True,
                              postgresql_where=sa.text("staff_id IS NULL"), sqlite_where=sa.text("staff_id IS NULL"))


def downgrade() -> None:
    # Unowned sends cannot stay: their ledger rows keep their outcome but lose the pointer to the call.
    op.execute("UPDATE campaign_steps SET send_id = NULL WHERE send_id IN "
               "(SELECT id FROM campaign_sends WHERE staff_id IS NULL)")
    op.execute("DELETE FROM campaign_sends WHERE staff_id IS NULL")
    with op.batch_alter_table("campaign_sends", schema=None) as batch_op:
        batch_op.drop_index("uq_campaign_sends_run_chunk_unowned")
        batch_op.alter_column("staff_id", existing_type=sa.Integer(), nullable=False)
