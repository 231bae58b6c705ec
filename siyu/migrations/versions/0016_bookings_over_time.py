"""bookings over time and per member, group-buy groups in a store: booking_units replace booking_slots (capacity
in five-minute units shared by every service of a store), one active booking per member, service and start, and
groupbuy_groups.store_id

Revision ID: 0016
Revises: 0015
"""
from datetime import datetime, timedelta, timezone

from alembic import op
import sqlalchemy as sa

from config.types import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('booked', 'checked_in', 'in_service', 'ready')"
UNIT = timedelta(minutes=5)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _aware(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _fill_units(conn) -> None:
    """Count the active bookings into the new units (what campaigns.bookings.capacity would have written)."""
    units = sa.table("booking_units", sa.column("store_id"), sa.column("staff_key"), sa.column("at", UTCDateTime()),
                     sa.column("capacity"), sa.column("booked"))
    schedules = {r.store_id: (r.capacity, r.staff_capacity) for r in conn.execute(
        sa.text("SELECT store_id, capacity, staff_capacity FROM booking_schedules"))}
    counts: dict[tuple[int, int, datetime], int] = {}
    for row in conn.execute(sa.text(f'SELECT store_id, staff_id, start, "end" FROM bookings WHERE {ACTIVE}')):
        start, end = _aware(row.start), _aware(row.end)
        at = EPOCH + (start - EPOCH) // UNIT * UNIT
        while at < end:
            for key in [0] + ([row.staff_id] if row.staff_id else []):
                counts[(row.store_id, key, at)] = counts.get((row.store_id, key, at), 0) + 1
            at += UNIT
    rows = []
    for (store_id, key, at), booked in counts.items():
        store_cap, staff_cap = schedules.get(store_id, (booked, booked))
        rows.append({"store_id": store_id, "staff_key": key, "at": at, "booked": booked,
                     "capacity": max(booked, store_cap if key == 0 else staff_cap)})
    if rows:
        op.bulk_insert(units, rows)


def _fill_slots(conn) -> None:
    """Count the active bookings back into per-slot counters (what 0012's code kept)."""
    slots = sa.table("booking_slots", sa.column("store_id"), sa.column("service_id"),
                     sa.column("start", UTCDateTime()), sa.column("staff_key"), sa.column("capacity"),
                     sa.column("booked"))
    schedules = {r.store_id: (r.capacity, r.staff_capacity) for r in conn.execute(
        sa.text("SELECT store_id, capacity, staff_capacity FROM booking_schedules"))}
    counts: dict[tuple, int] = {}
    for row in conn.execute(sa.text(f"SELECT store_id, service_id, staff_id, start FROM bookings WHERE {ACTIVE}")):
        for key in [0] + ([row.staff_id] if row.staff_id else []):
            slot = (row.store_id, row.service_id, _aware(row.start), key)
            counts[slot] = counts.get(slot, 0) + 1
    rows = [{"store_id": store_id, "service_id": service_id, "start": start, "staff_key": key, "booked": booked,
             "capacity": max(booked, schedules.get(store_id, (0, 0))[0 if key == 0 else 1])}
            for (store_id, service_id, start, key), booked in counts.items()]
    if rows:
        op.bulk_insert(slots, rows)


def _drop_repeats(conn) -> None:
    """Cancel all but the first active booking of one member, service and start (the index below refuses them)."""
    conn.execute(sa.text(
        f"UPDATE bookings SET status = 'cancelled' WHERE {ACTIVE} AND EXISTS (SELECT 1 FROM bookings AS b "
        f"WHERE b.member_id = bookings.member_id AND b.service_id = bookings.service_id "
        f"AND b.start = bookings.start AND b.{ACTIVE} AND b.id < bookings.id)"))


def upgrade() -> None:
    op.create_table('booking_units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('staff_key', sa.Integer(), nullable=False),
    sa.Column('at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.CheckConstraint('booked >= 0 AND booked <= capacity', name=op.f('ck_booking_units_booked_within_capacity')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_booking_units_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_units')),
    sa.UniqueConstraint('store_id', 'staff_key', 'at', name=op.f('uq_booking_units_store_id_staff_key_at'))
    )
    conn = op.get_bind()
    _drop_repeats(conn)
    _fill_units(conn)
    op.drop_table('booking_slots')
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.create_index('uq_bookings_member_slot', ['member_id', 'service_id', 'start'], unique=True,
                              postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))
    with op.batch_alter_table('groupbuy_groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('store_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_groupbuy_groups_store_id_stores'), 'stores', ['store_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('groupbuy_groups', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_groupbuy_groups_store_id_stores'), type_='foreignkey')
        batch_op.drop_column('store_id')
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('uq_bookings_member_slot', postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))
    op.create_table('booking_slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('start', UTCDateTime(timezone=True), nullable=False),
    sa.Column('staff_key', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.CheckConstraint('booked >= 0 AND booked <= capacity', name=op.f('ck_booking_slots_booked_within_capacity')),
    sa.ForeignKeyConstraint(['service_id'], ['booking_services.id'], name=op.f('fk_booking_slots_service_id_booking_services')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_booking_slots_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_slots')),
    sa.UniqueConstraint('store_id', 'service_id', 'start', 'staff_key', name=op.f('uq_booking_slots_store_id_service_id_start_staff_key'))
    )
    _fill_slots(op.get_bind())
    op.drop_table('booking_units')
