"""transfers: the ledger of customer handovers between staff (在职继承 / 离职继承)

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import config.types


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('transfers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('batch', sa.String(length=32), nullable=False),
    sa.Column('handover_userid', sa.String(length=64), nullable=False),
    sa.Column('takeover_userid', sa.String(length=64), nullable=False),
    sa.Column('external_userid', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resigned', sa.Boolean(), nullable=False),
    sa.Column('message', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('errcode', sa.Integer(), nullable=True),
    sa.Column('takeover_status', sa.Integer(), nullable=True),
    sa.Column('reason', config.types.ErrorText(), nullable=True),
    sa.Column('requested_by', sa.String(length=120), nullable=False),
    sa.Column('requested_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('takeover_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('settled_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('requested', 'waiting', 'succeeded', 'refused', 'failed', 'unknown')", name=op.f('ck_transfers_status')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_transfers_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers')),
    sa.UniqueConstraint('batch', 'external_userid', name=op.f('uq_transfers_batch_external_userid'))
    )
    # A customer is in at most one open handover from a staff member.
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfers_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_transfers_status_pair', ['status', 'handover_userid', 'takeover_userid'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_takeover_userid'), ['takeover_userid'], unique=False)
        batch_op.create_index('uq_transfers_open_customer', ['handover_userid', 'external_userid'], unique=True, postgresql_where=sa.text("status IN ('requested', 'waiting', 'unknown')"), sqlite_where=sa.text("status IN ('requested', 'waiting', 'unknown')"))


def downgrade() -> None:
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index('uq_transfers_open_customer')
        batch_op.drop_index(batch_op.f('ix_transfers_takeover_userid'))
        batch_op.drop_index('ix_transfers_status_pair')
        batch_op.drop_index(batch_op.f('ix_transfers_member_id'))

    op.drop_table('transfers')
