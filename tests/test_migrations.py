"""The migrations build the whole schema on empty SQLite and PostgreSQL, and match the models."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Base
from tests.conftest import dispose_engines, make_app


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.sqlite'}"
    return request.getfixturevalue("pg_database_url")


def test_upgrade_builds_every_table_and_matches_the_models(empty_db_url):
    app = make_app(empty_db_url)
    with app.app_context():
        db.drop_all()
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        # Only our Python-side types (encrypted, UTC) may differ in name from the DB types.
        assert [d for d in diff if d[0] not in ("modify_type",)] == []
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        dispose_engines()


@pytest.mark.postgres
def test_deleting_orders_deletes_their_lines_without_a_row_fk(pg_database_url):
    """Migration 0007 drops the per-row FK on order_items.order_id; its statement trigger
    keeps lines going with their order, and with the connection's cascade to orders."""
    from datetime import UTC, datetime

    from sqlalchemy import delete, func, select

    from cc_storeplugin.models import Merchant, Order, OrderItem, StoreConnection

    app = make_app(pg_database_url)
    with app.app_context():
        db.drop_all()
        upgrade()
        conn = StoreConnection(merchant=Merchant(cc_account_id="acc"), platform="magento")
        db.session.add(conn)
        db.session.flush()
        orders = [
            Order(
                connection_id=conn.id,
                platform_order_id=str(n),
                email=f"o{n}@example.com",
                state="complete",
                is_purchase=True,
                placed_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
            for n in range(3)
        ]
        db.session.add_all(orders)
        db.session.flush()
        db.session.add_all(
            OrderItem(connection_id=conn.id, order_id=o.id, sku=f"S{k}")
            for o in orders
            for k in range(2)
        )
        db.session.commit()
        lines = select(func.count()).select_from(OrderItem)

        db.session.execute(delete(Order).where(Order.id == orders[0].id))
        db.session.commit()
        assert db.session.scalar(lines) == 4
        assert db.session.scalar(lines.where(OrderItem.order_id == orders[0].id)) == 0

        db.session.execute(delete(StoreConnection).where(StoreConnection.id == conn.id))
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0
        assert db.session.scalar(lines) == 0
        db.session.remove()
        downgrade(revision="base")
        dispose_engines()
