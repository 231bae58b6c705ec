"""campaign_runs.planned_through: the cursor of batched ledger planning (members up to here are planned)

Revision ID: 0019
Revises: 0018
"""
from alembic import op
import sqlalchemy as sa

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaign_runs", sa.Column("planned_through", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                             nullable=True))


def downgrade() -> None:
    op.drop_column("campaign_runs", "planned_through")
