"""staff_tasks: one task per campaign run and staff member (the wecom_staff_task action's WeCom task cards)

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa

from config.types import ErrorText, UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=False),
        sa.Column("task_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("card_msgid", sa.String(length=64), nullable=True),
        sa.Column("response_code", sa.String(length=128), nullable=True),
        sa.Column("card_sent_at", UTCDateTime(), nullable=True),
        sa.Column("card_updated_at", UTCDateTime(), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("done_via", sa.String(length=20), nullable=True),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("error", ErrorText(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'done')", name=op.f("ck_staff_tasks_status")),
        sa.CheckConstraint("(status = 'done') = (done_at IS NOT NULL)", name=op.f("ck_staff_tasks_done_has_time")),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_staff_tasks_campaign_id_campaigns")),
        sa.ForeignKeyConstraint(["run_id"], ["campaign_runs.id"], name=op.f("fk_staff_tasks_run_id_campaign_runs")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_staff_tasks_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_tasks")),
        sa.UniqueConstraint("run_id", "staff_id", name=op.f("uq_staff_tasks_run_id_staff_id")),
        sa.UniqueConstraint("task_id", name=op.f("uq_staff_tasks_task_id")),
    )
    with op.batch_alter_table("staff_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_tasks_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index("ix_staff_tasks_staff_status", ["staff_id", "status"], unique=False)
        batch_op.create_index("ix_staff_tasks_status_due", ["status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("staff_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_tasks_status_due")
        batch_op.drop_index("ix_staff_tasks_staff_status")
        batch_op.drop_index(batch_op.f("ix_staff_tasks_campaign_id"))
    op.drop_table("staff_tasks")
