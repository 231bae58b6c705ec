"""group-buy: offers, groups, one order per seat, and the refund ledger, with CHECKs on seats, stock and statuses

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa
import config.types
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('groupbuy_offers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('price_fen', sa.Integer(), nullable=False),
    sa.Column('original_price_fen', sa.Integer(), nullable=False),
    sa.Column('group_size', sa.Integer(), nullable=False),
    sa.Column('time_limit_minutes', sa.Integer(), nullable=False),
    sa.Column('stock', sa.Integer(), nullable=False),
    sa.Column('stock_taken', sa.Integer(), nullable=False),
    sa.Column('starts_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stores', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_groupbuy_offers_window')),
    sa.CheckConstraint('group_size >= 2', name=op.f('ck_groupbuy_offers_group_size')),
    sa.CheckConstraint('original_price_fen >= price_fen', name=op.f('ck_groupbuy_offers_original_not_below_price')),
    sa.CheckConstraint('price_fen > 0', name=op.f('ck_groupbuy_offers_price_positive')),
    sa.CheckConstraint('stock_taken >= 0 AND stock_taken <= stock', name=op.f('ck_groupbuy_offers_stock')),
    sa.CheckConstraint('time_limit_minutes > 0', name=op.f('ck_groupbuy_offers_time_limit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groupbuy_offers'))
    )
    op.create_table('groupbuy_groups',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('offer_id', sa.Integer(), nullable=False),
    sa.Column('leader_member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('seats', sa.Integer(), nullable=False),
    sa.Column('paid', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('expires_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status <> 'succeeded' OR paid = size", name=op.f('ck_groupbuy_groups_succeeded_full')),
    sa.CheckConstraint("status IN ('open', 'succeeded', 'failed')", name=op.f('ck_groupbuy_groups_status')),
    sa.CheckConstraint('paid >= 0 AND paid <= size', name=op.f('ck_groupbuy_groups_paid')),
    sa.CheckConstraint('seats >= 0 AND seats <= size', name=op.f('ck_groupbuy_groups_seats')),
    sa.ForeignKeyConstraint(['leader_member_id'], ['members.id'], name=op.f('fk_groupbuy_groups_leader_member_id_members')),
    sa.ForeignKeyConstraint(['offer_id'], ['groupbuy_offers.id'], name=op.f('fk_groupbuy_groups_offer_id_groupbuy_offers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groupbuy_groups'))
    )
    with op.batch_alter_table('groupbuy_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_groupbuy_groups_offer_id'), ['offer_id'], unique=False)
        batch_op.create_index('ix_groupbuy_groups_status_expires', ['status', 'expires_at'], unique=False)

    op.create_table('groupbuy_orders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('out_trade_no', sa.String(length=32), nullable=False),
    sa.Column('offer_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('openid', sa.String(length=128), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('prepay_id', sa.String(length=64), nullable=True),
    sa.Column('transaction_id', sa.String(length=64), nullable=True),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('hold_until', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'paid', 'refunding', 'refunded', 'released')", name=op.f('ck_groupbuy_orders_status')),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_groupbuy_orders_amount_positive')),
    sa.ForeignKeyConstraint(['group_id'], ['groupbuy_groups.id'], name=op.f('fk_groupbuy_orders_group_id_groupbuy_groups')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_groupbuy_orders_member_id_members')),
    sa.ForeignKeyConstraint(['offer_id'], ['groupbuy_offers.id'], name=op.f('fk_groupbuy_orders_offer_id_groupbuy_offers')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_groupbuy_orders_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groupbuy_orders')),
    sa.UniqueConstraint('out_trade_no', name=op.f('uq_groupbuy_orders_out_trade_no'))
    )
    with op.batch_alter_table('groupbuy_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_groupbuy_orders_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_groupbuy_orders_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_groupbuy_orders_offer_id'), ['offer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_groupbuy_orders_staff_id'), ['staff_id'], unique=False)
        batch_op.create_index('ix_groupbuy_orders_status_hold', ['status', 'hold_until'], unique=False)
        batch_op.create_index('uq_groupbuy_orders_seat', ['group_id', 'member_id'], unique=True, postgresql_where=sa.text("status IN ('pending', 'paid')"), sqlite_where=sa.text("status IN ('pending', 'paid')"))

    op.create_table('groupbuy_refunds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('out_refund_no', sa.String(length=64), nullable=False),
    sa.Column('out_trade_no', sa.String(length=32), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('refund_id', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', config.types.ErrorText(), nullable=True),
    sa.Column('due_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('settled_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('requested', 'unknown', 'processing', 'succeeded', 'failed')", name=op.f('ck_groupbuy_refunds_status')),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_groupbuy_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['order_id'], ['groupbuy_orders.id'], name=op.f('fk_groupbuy_refunds_order_id_groupbuy_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groupbuy_refunds')),
    sa.UniqueConstraint('order_id', name=op.f('uq_groupbuy_refunds_order_id')),
    sa.UniqueConstraint('out_refund_no', name=op.f('uq_groupbuy_refunds_out_refund_no'))
    )
    with op.batch_alter_table('groupbuy_refunds', schema=None) as batch_op:
        batch_op.create_index('ix_groupbuy_refunds_status_due', ['status', 'due_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('groupbuy_refunds', schema=None) as batch_op:
        batch_op.drop_index('ix_groupbuy_refunds_status_due')

    op.drop_table('groupbuy_refunds')
    with op.batch_alter_table('groupbuy_orders', schema=None) as batch_op:
        batch_op.drop_index('uq_groupbuy_orders_seat', postgresql_where=sa.text("status IN ('pending', 'paid')"), sqlite_where=sa.text("status IN ('pending', 'paid')"))
        batch_op.drop_index('ix_groupbuy_orders_status_hold')
        batch_op.drop_index(batch_op.f('ix_groupbuy_orders_staff_id'))
        batch_op.drop_index(batch_op.f('ix_groupbuy_orders_offer_id'))
        batch_op.drop_index(batch_op.f('ix_groupbuy_orders_member_id'))
        batch_op.drop_index(batch_op.f('ix_groupbuy_orders_group_id'))

    op.drop_table('groupbuy_orders')
    with op.batch_alter_table('groupbuy_groups', schema=None) as batch_op:
        batch_op.drop_index('ix_groupbuy_groups_status_expires')
        batch_op.drop_index(batch_op.f('ix_groupbuy_groups_offer_id'))

    op.drop_table('groupbuy_groups')
    op.drop_table('groupbuy_offers')
