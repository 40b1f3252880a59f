"""drop per-row FK checks on the import's hottest tables

order_items.connection_id, segment_transitions.connection_id and .sync_run_id keep their
values and indexes; rows still go away with their order / customer / segment by cascade.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:30:00

"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_constraint(
            "fk_order_items_connection_id_store_connections", type_="foreignkey"
        )
    with op.batch_alter_table("segment_transitions", schema=None) as batch_op:
        batch_op.drop_constraint(
            "fk_segment_transitions_connection_id_store_connections", type_="foreignkey"
        )
        batch_op.drop_constraint("fk_segment_transitions_sync_run_id_sync_runs", type_="foreignkey")


def downgrade():
    with op.batch_alter_table("segment_transitions", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_segment_transitions_sync_run_id_sync_runs", "sync_runs", ["sync_run_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_segment_transitions_connection_id_store_connections",
            "store_connections",
            ["connection_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_order_items_connection_id_store_connections",
            "store_connections",
            ["connection_id"],
            ["id"],
            ondelete="CASCADE",
        )
