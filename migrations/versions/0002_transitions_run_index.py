"""index segment transitions by segment, run and action

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:10:00

"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("segment_transitions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_segment_transitions_run", ["segment_id", "sync_run_id", "action"], unique=False
        )


def downgrade():
    with op.batch_alter_table("segment_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_transitions_run")
