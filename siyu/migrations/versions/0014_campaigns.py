"""campaigns: campaigns, their runs, the send ledger (steps), WeCom calls (sends), monthly quota, trigger entries

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa
import config.types
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('spec', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=True),
    sa.Column('schedule_kind', sa.String(length=10), nullable=False),
    sa.Column('action_type', sa.String(length=30), nullable=False),
    sa.Column('trigger_event', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('resume_to', sa.String(length=20), nullable=True),
    sa.Column('launched_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fired_through', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("schedule_kind IN ('manual', 'at', 'cron', 'trigger')", name=op.f('ck_campaigns_schedule_kind')),
    sa.CheckConstraint("status IN ('draft', 'scheduled', 'running', 'completed', 'paused', 'cancelled')", name=op.f('ck_campaigns_status')),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_campaigns_segment_id_segments'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaigns_segment_id'), ['segment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_campaigns_trigger_event'), ['trigger_event'], unique=False)

    op.create_table('campaign_mass_quota',
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('month', sa.String(length=6), nullable=False),
    sa.Column('quota', sa.Integer(), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.CheckConstraint('used >= 0 AND used <= quota', name=op.f('ck_campaign_mass_quota_within_quota')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_campaign_mass_quota_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', 'month', name=op.f('pk_campaign_mass_quota'))
    )
    op.create_table('campaign_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('due_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('planned_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('sending', 'sent', 'missed', 'cancelled')", name=op.f('ck_campaign_runs_status')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_runs_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_runs')),
    sa.UniqueConstraint('campaign_id', 'key', name=op.f('uq_campaign_runs_campaign_id_key'))
    )
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_runs_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('campaign_trigger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entry_key', sa.String(length=40), nullable=False),
    sa.Column('due_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_trigger_entries_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_campaign_trigger_entries_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_trigger_entries')),
    sa.UniqueConstraint('campaign_id', 'entry_key', name=op.f('uq_campaign_trigger_entries_campaign_id_entry_key'))
    )
    with op.batch_alter_table('campaign_trigger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_trigger_entries_due_at'), ['due_at'], unique=False)

    op.create_table('campaign_sends',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('due_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('lease_until', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('recipients', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('msgid', sa.String(length=64), nullable=True),
    sa.Column('fail_list', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', config.types.ErrorText(), nullable=True),
    sa.Column('submitted_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('confirmed_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('next_poll_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminded', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('done_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('planned', 'claimed', 'submitted', 'unknown', 'failed', 'done', 'cancelled')", name=op.f('ck_campaign_sends_status')),
    sa.ForeignKeyConstraint(['run_id'], ['campaign_runs.id'], name=op.f('fk_campaign_sends_run_id_campaign_runs')),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], name=op.f('fk_campaign_sends_staff_id_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_sends')),
    sa.UniqueConstraint('msgid', name=op.f('uq_campaign_sends_msgid')),
    sa.UniqueConstraint('run_id', 'staff_id', 'chunk', name=op.f('uq_campaign_sends_run_id_staff_id_chunk'))
    )
    with op.batch_alter_table('campaign_sends', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_sends_run_status', ['run_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_campaign_sends_staff_id'), ['staff_id'], unique=False)

    op.create_table('campaign_steps',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('step', sa.String(length=30), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=True),
    sa.Column('result', sa.String(length=20), nullable=True),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('store_id', sa.Integer(), nullable=True),
    sa.Column('external_userid', sa.String(length=128), nullable=True),
    sa.Column('send_id', sa.Integer(), nullable=True),
    sa.Column('quota_month', sa.String(length=6), nullable=True),
    sa.Column('contacted_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('submitted_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('confirmed_at', config.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', config.types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('planned', 'claimed', 'submitted', 'confirmed', 'failed', 'skipped', 'unknown')", name=op.f('ck_campaign_steps_status')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_steps_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_campaign_steps_member_id_members')),
    sa.ForeignKeyConstraint(['run_id'], ['campaign_runs.id'], name=op.f('fk_campaign_steps_run_id_campaign_runs')),
    sa.ForeignKeyConstraint(['send_id'], ['campaign_sends.id'], name=op.f('fk_campaign_steps_send_id_campaign_sends')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_steps')),
    sa.UniqueConstraint('key', name=op.f('uq_campaign_steps_key'))
    )
    with op.batch_alter_table('campaign_steps', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_steps_campaign_status', ['campaign_id', 'status'], unique=False)
        batch_op.create_index('ix_campaign_steps_member_contacted', ['member_id', 'contacted_at'], unique=False)
        batch_op.create_index('ix_campaign_steps_run_status', ['run_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_campaign_steps_send_id'), ['send_id'], unique=False)


def downgrade() -> None:

    with op.batch_alter_table('campaign_steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_steps_send_id'))
        batch_op.drop_index('ix_campaign_steps_run_status')
        batch_op.drop_index('ix_campaign_steps_member_contacted')
        batch_op.drop_index('ix_campaign_steps_campaign_status')

    op.drop_table('campaign_steps')
    with op.batch_alter_table('campaign_sends', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_sends_staff_id'))
        batch_op.drop_index('ix_campaign_sends_run_status')

    op.drop_table('campaign_sends')
    with op.batch_alter_table('campaign_trigger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_trigger_entries_due_at'))

    op.drop_table('campaign_trigger_entries')
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_runs_campaign_id'))

    op.drop_table('campaign_runs')
    op.drop_table('campaign_mass_quota')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaigns_trigger_event'))
        batch_op.drop_index(batch_op.f('ix_campaigns_segment_id'))

    op.drop_table('campaigns')

