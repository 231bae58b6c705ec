"""console_sessions: browser sessions of the console (an API token or a WeCom sign-in behind each)

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa

from config.types import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("api_token_id", sa.Integer(), nullable=True),
        sa.Column("bootstrap_hash", sa.String(length=64), nullable=True),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("via IN ('token', 'wecom')", name=op.f("ck_console_sessions_via")),
        sa.CheckConstraint("(via = 'token' AND (api_token_id IS NOT NULL OR bootstrap_hash IS NOT NULL)) OR "
                           "(via = 'wecom' AND staff_id IS NOT NULL)", name=op.f("ck_console_sessions_stands_for")),
        sa.ForeignKeyConstraint(["api_token_id"], ["api_tokens.id"], name=op.f("fk_console_sessions_api_token_id_api_tokens")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_console_sessions_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_console_sessions_secret_hash")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_sessions_api_token_id"), ["api_token_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_console_sessions_staff_id"), ["staff_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_sessions_staff_id"))
        batch_op.drop_index(batch_op.f("ix_console_sessions_api_token_id"))
    op.drop_table("console_sessions")
