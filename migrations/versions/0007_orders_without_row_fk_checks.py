"""orders.customer_id and order_items.order_id without per-row FK checks; no orders email index

The import's order merge spent a quarter of its time in the two RI triggers (a lookup and a
row lock on the contact or order for every row written). Both columns keep their values and
indexes. Lines still go with their order: on PostgreSQL one AFTER DELETE statement trigger
on orders deletes the lines of every deleted order (one set-based DELETE per statement,
whatever deleted the orders, the connection's cascade included). SQLite never enforced the
FKs (the app does not turn foreign_keys on), so nothing changes there.

ix_orders_conn_email goes: no query reads orders by email (contacts are found by email in
customers), and its random inserts were the costliest index of the merge.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 20:10:00

"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE FUNCTION order_items_follow_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM order_items i USING gone WHERE i.order_id = gone.id;
    RETURN NULL;
END $$
"""
_TRIGGER = """
CREATE TRIGGER order_items_follow_orders AFTER DELETE ON orders
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION order_items_follow_orders()
"""


def upgrade():
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_constraint("fk_order_items_order_id_orders", type_="foreignkey")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint("fk_orders_customer_id_customers", type_="foreignkey")
        batch_op.drop_index("ix_orders_conn_email")
    if op.get_context().dialect.name == "postgresql":
        op.execute(_FUNCTION)
        op.execute(_TRIGGER)


def downgrade():
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER order_items_follow_orders ON orders")
        op.execute("DROP FUNCTION order_items_follow_orders()")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_conn_email", ["connection_id", "email"], unique=False)
        batch_op.create_foreign_key(
            "fk_orders_customer_id_customers", "customers", ["customer_id"], ["id"]
        )
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_order_items_order_id_orders", "orders", ["order_id"], ["id"], ondelete="CASCADE"
        )
