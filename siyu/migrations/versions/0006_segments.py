"""segments: references between segments (a segment in use is not deleted), refresh errors recorded once

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _references(raw) -> set[int]:
    # The segment ids a stored (JSON) definition refers to directly.
    found, todo = set(), [raw]
    while todo:
        node = todo.pop()
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("segment"), int) and not isinstance(node.get("segment"), bool):
            found.add(node["segment"])
        for key in ("all", "any"):
            if isinstance(node.get(key), list):
                todo.extend(node[key])
        todo.append(node.get("not"))
    return found


def upgrade() -> None:
    op.create_table('segment_references',
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('referenced_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['referenced_id'], ['segments.id'], name=op.f('fk_segment_references_referenced_id_segments'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_references_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('segment_id', 'referenced_id', name=op.f('pk_segment_references'))
    )
    with op.batch_alter_table('segment_references', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_references_referenced_id'), ['referenced_id'], unique=False)

    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refresh_error', sa.Text(), nullable=True))

    with op.batch_alter_table('tag_rules', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_tag_rules_segment_id_segments'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_tag_rules_segment_id_segments'), 'segments', ['segment_id'], ['id'], ondelete='RESTRICT')

    # The references of segments saved before this revision, so that they too cannot be deleted while used.
    conn = op.get_bind()
    segments = sa.table('segments', sa.column('id', sa.Integer), sa.column('definition', sa.JSON))
    references = sa.table('segment_references', sa.column('segment_id', sa.Integer), sa.column('referenced_id', sa.Integer))
    stored = dict(conn.execute(sa.select(segments.c.id, segments.c.definition)).all())
    rows = [{"segment_id": sid, "referenced_id": ref}
            for sid, definition in stored.items() for ref in sorted(_references(definition)) if ref in stored]
    if rows:
        conn.execute(references.insert(), rows)


def downgrade() -> None:
    with op.batch_alter_table('tag_rules', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_tag_rules_segment_id_segments'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_tag_rules_segment_id_segments'), 'segments', ['segment_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('segments', schema=None) as batch_op:
        batch_op.drop_column('refresh_error')

    with op.batch_alter_table('segment_references', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segment_references_referenced_id'))

    op.drop_table('segment_references')
