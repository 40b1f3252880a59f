"""Shared fixtures: apps on SQLite and PostgreSQL, real Redis, and the tier report.

Real servers are used when reachable (TEST_DATABASE_URL, TEST_REDIS_URL / REDIS_URL,
defaulting to the local ones). With CC_REQUIRE_SERVICES=1 (CI) an unreachable server
fails the run instead of skipping its tier.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cc_storeplugin.app import create_app
from cc_storeplugin.config import normalize_database_url
from cc_storeplugin.extensions import db as _db
from cc_storeplugin.queueing import queues

PG_URL = normalize_database_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
)
REDIS_URL = os.environ.get("TEST_REDIS_URL") or os.environ.get(
    "REDIS_URL", "redis://127.0.0.1:6379/15"
)
REQUIRE = os.environ.get("CC_REQUIRE_SERVICES") == "1"
TIERS: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def _reachable_pg() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL unreachable at {make_url(PG_URL).render_as_string()}: {exc}"


def _reachable_redis() -> str | None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        return None
    except Exception as exc:
        return f"Redis unreachable at {REDIS_URL}: {exc}"


def _need(problem: str | None) -> None:
    if problem is None:
        return
    if REQUIRE:
        pytest.fail(problem + " (CC_REQUIRE_SERVICES=1)")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def pg_database_url():
    """A private PostgreSQL database for this session, dropped at the end."""
    _need(_reachable_pg())
    name = f"cc_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def redis_url():
    """Real Redis (a test DB number), emptied before the test."""
    _need(_reachable_redis())
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


def make_app(database_url: str, **config):
    settings = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SECRET_KEY": "test-secret",
        "REDIS_URL": None,
        "PUBLIC_BASE_URL": "http://127.0.0.1:5000",
    }
    settings.update(config)
    return create_app(settings)


def dispose_engines() -> None:
    """Close pooled connections so none outlives its test (ResourceWarning under -W error)."""
    for engine in _db.engines.values():
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.sqlite'}"


@pytest.fixture
def app(sqlite_url):
    """An app on a fresh SQLite file with every table created."""
    app = make_app(sqlite_url)
    with app.app_context():
        _db.create_all()
        queues.connection.flushall()  # the embedded server lives as long as the process
        yield app
        _db.session.remove()
        dispose_engines()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db_app(request, sqlite_url):
    """The same test on SQLite and on PostgreSQL."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_database_url")
    app = make_app(url)
    with app.app_context():
        _db.drop_all()
        _db.create_all()
        yield app
        _db.session.remove()
        dispose_engines()
        _db.drop_all()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def pytest_runtest_logreport(report):
    if report.when != "call" and not (report.when == "setup" and report.skipped):
        return
    tiers = ["core"]
    if "[postgresql" in report.nodeid or "postgres" in report.keywords:
        tiers = ["postgresql"]
    for marker in ("redis", "browser"):
        if marker in report.keywords:
            tiers.append(marker)
    for tier in tiers:
        TIERS[tier][report.outcome] += 1


def pytest_terminal_summary(terminalreporter):
    terminalreporter.section("tiers")
    for tier in ("core", "postgresql", "redis", "browser"):
        counts = TIERS.get(tier)
        if not counts:
            terminalreporter.write_line(f"{tier:<11} not run")
            continue
        parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        terminalreporter.write_line(f"{tier:<11} {parts}")
