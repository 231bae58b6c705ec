"""staff.source: where Siyu learnt of a staff member (api or wecom); a sync deactivates only wecom staff

Rows that exist already become `api`: the next `siyu sync wecom` marks every one its directory lists as
`wecom`, so nobody is deactivated on the strength of a guess.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


CHECK = "source IN ('api', 'wecom')"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # The CHECK inline in a plain ADD COLUMN: a batch copy of `staff` would trip SQLite's foreign keys
        # (relations, tokens… reference it) on any database that has rows.
        op.execute("ALTER TABLE staff ADD COLUMN source VARCHAR(10) DEFAULT 'api' NOT NULL "
                   f"CONSTRAINT ck_staff_source CHECK ({CHECK})")
        return
    op.add_column("staff", sa.Column("source", sa.String(length=10), server_default="api", nullable=False))
    op.create_check_constraint(op.f("ck_staff_source"), "staff", CHECK)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_staff_source"), "staff", type_="check")
    op.drop_column("staff", "source")
