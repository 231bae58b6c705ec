"""webhook_nonces: the replay memory of official-account and mini-program callbacks (without Redis)

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa
import config.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_nonces",
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("expires_at", config.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "nonce", "timestamp", name=op.f("pk_webhook_nonces")),
    )
    with op.batch_alter_table("webhook_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_nonces_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_nonces_expires_at"))
    op.drop_table("webhook_nonces")
