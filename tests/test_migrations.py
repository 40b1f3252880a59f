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
