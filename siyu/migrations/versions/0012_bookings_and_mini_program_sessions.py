"""bookings (services, hours, slot counters with CHECK booked <= capacity, bookings) and mini-program sessions

Revision ID: 0012
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa
import config.types


revision = '0012'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('booking_services',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('price_fen', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('reminder_template_id', sa.String(length=64), nullable=True),
    sa.Column('progress_template_id', sa.String(length=64), nullable=True),
    sa.Column('remind_minutes_before', sa.Integer(), nullable=False),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('appointment', 'repair')", name=op.f('ck_booking_services_kind')),
    sa.CheckConstraint('duration_minutes > 0 AND duration_minutes <= 1440', name=op.f('ck_booking_services_duration')),
    sa.CheckConstraint('price_fen >= 0', name=op.f('ck_booking_services_price')),
    sa.CheckConstraint('remind_minutes_before >= 0', name=op.f('ck_booking_services_remind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_services')),
    sa.UniqueConstraint('code', name=op.f('uq_booking_services_code'))
    )
    op.create_table('booking_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('open_minute', sa.Integer(), nullable=False),
    sa.Column('close_minute', sa.Integer(), nullable=False),
    sa.CheckConstraint('open_minute >= 0 AND open_minute < close_minute AND close_minute <= 1440', name=op.f('ck_booking_hours_span')),
    sa.CheckConstraint('weekday BETWEEN 1 AND 7', name=op.f('ck_booking_hours_weekday')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_booking_hours_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_hours'))
    )
    with op.batch_alter_table('booking_hours', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_booking_hours_store_id'), ['store_id'], unique=False)

    op.create_table('booking_schedules',
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('staff_capacity', sa.Integer(), nullable=False),
    sa.Column('updated_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('capacity >= 0 AND staff_capacity >= 0', name=op.f('ck_booking_schedules_capacity')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_booking_schedules_store_id_stores')),
    sa.PrimaryKeyConstraint('store_id', name=op.f('pk_booking_schedules'))
    )
    op.create_table('booking_service_stores',
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['booking_services.id'], name=op.f('fk_booking_service_stores_service_id_booking_services')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_booking_service_stores_store_id_stores')),
    sa.PrimaryKeyConstraint('service_id', 'store_id', name=op.f('pk_booking_service_stores'))
    )
    op.create_table('booking_slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('start', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('staff_key', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.CheckConstraint('booked >= 0 AND booked <= capacity', name=op.f('ck_booking_slots_booked_within_capacity')),
    sa.ForeignKeyConstraint(['service_id'], ['booking_services.id'], name=op.f('fk_booking_slots_service_id_booking_services')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_booking_slots_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_slots')),
    sa.UniqueConstraint('store_id', 'service_id', 'start', 'staff_key', name=op.f('uq_booking_slots_store_id_service_id_start_staff_key'))
    )
    op.create_table('bookings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('ref_staff_id', sa.Integer(), nullable=True),
    sa.Column('start', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('end', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('request_digest', sa.String(length=64), nullable=True),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('booked', 'checked_in', 'in_service', 'ready', 'completed', 'cancelled', 'no_show')", name=op.f('ck_bookings_status')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_bookings_member_id_members')),
    sa.ForeignKeyConstraint(['ref_staff_id'], ['staff.id'], name=op.f('fk_bookings_ref_staff_id_staff')),
    sa.ForeignKeyConstraint(['service_id'], ['booking_services.id'], name=op.f('fk_bookings_service_id_booking_services')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_bookings_staff_id_staff')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_bookings_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bookings')),
    sa.UniqueConstraint('member_id', 'idempotency_key', name=op.f('uq_bookings_member_id_idempotency_key'))
    )
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bookings_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_bookings_store_start', ['store_id', 'start'], unique=False)

    op.create_table('mp_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('openid', sa.String(length=128), nullable=True),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_mp_sessions_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mp_sessions'))
    )
    with op.batch_alter_table('mp_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mp_sessions_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mp_sessions_openid'), ['openid'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('mp_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mp_sessions_openid'))
        batch_op.drop_index(batch_op.f('ix_mp_sessions_member_id'))

    op.drop_table('mp_sessions')
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_bookings_store_start')
        batch_op.drop_index(batch_op.f('ix_bookings_member_id'))

    op.drop_table('bookings')
    op.drop_table('booking_slots')
    op.drop_table('booking_service_stores')
    op.drop_table('booking_schedules')
    with op.batch_alter_table('booking_hours', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_booking_hours_store_id'))

    op.drop_table('booking_hours')
    op.drop_table('booking_services')
