"""subscribe_grants: mini-program subscribe messages a member allowed

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import config.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscribe_grants",
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("template_id", sa.String(length=64), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("granted_at", config.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", config.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("remaining >= 0", name=op.f("ck_subscribe_grants_remaining_not_negative")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_subscribe_grants_member_id_members")),
        sa.PrimaryKeyConstraint("member_id", "template_id", name=op.f("pk_subscribe_grants")),
    )


def downgrade() -> None:
    op.drop_table("subscribe_grants")
