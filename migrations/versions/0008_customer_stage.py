"""customer_stage: registered customers the PostgreSQL import stages per page and merges in batches

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 21:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "customer_stage",
        sa.Column("id", ID, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("platform_customer_id", sa.String(length=64), nullable=False),
        sa.Column("first_name", sa.String(length=255), nullable=True),
        sa.Column("last_name", sa.String(length=255), nullable=True),
        sa.Column("customer_group", sa.String(length=64), nullable=True),
        sa.Column("subscribed", sa.Boolean(), nullable=True),
        sa.Column("platform_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_stage")),
    )
    with op.batch_alter_table("customer_stage", schema=None) as batch_op:
        batch_op.create_index("ix_customer_stage_run", ["run_id"], unique=False)


def downgrade():
    with op.batch_alter_table("customer_stage", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_stage_run")
    op.drop_table("customer_stage")
