"""segment memberships and transitions without the per-row customer FK check

Both keep customer_id and their indexes and still go with their segment by cascade (and
with the connection through it); the mirror never deletes a single customer. The check was
most of the first segment evaluation's time on a million contacts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:00:00

"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("segment_memberships", schema=None) as batch_op:
        batch_op.drop_constraint("fk_segment_memberships_customer_id_customers", type_="foreignkey")
    with op.batch_alter_table("segment_transitions", schema=None) as batch_op:
        batch_op.drop_constraint("fk_segment_transitions_customer_id_customers", type_="foreignkey")


def downgrade():
    for table in ("segment_transitions", "segment_memberships"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                f"fk_{table}_customer_id_customers",
                "customers",
                ["customer_id"],
                ["id"],
                ondelete="CASCADE",
            )
