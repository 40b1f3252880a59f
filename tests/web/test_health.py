"""/healthz tells operators whether the database and Redis answer."""

import pytest

from cc_storeplugin.extensions import db
from tests.conftest import dispose_engines, make_app


def test_healthy_on_sqlite_and_embedded_queue(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "backend": "sqlite"}
    assert body["redis"]["ok"] is True and body["redis"]["mode"] == "embedded"


@pytest.mark.redis
@pytest.mark.postgres
def test_healthy_on_real_postgresql_and_redis(pg_database_url, redis_url):
    app = make_app(pg_database_url, REDIS_URL=redis_url)
    with app.app_context():
        body = app.test_client().get("/healthz").get_json()
        dispose_engines()
    assert body["database"]["backend"] == "postgresql" and body["database"]["ok"]
    assert body["redis"]["mode"] == "redis" and body["redis"]["ok"]


def test_unreachable_redis_gives_503_naming_it(sqlite_url):
    app = make_app(sqlite_url, REDIS_URL="redis://127.0.0.1:1/0")
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "unavailable"
    assert body["redis"]["ok"] is False and body["database"]["ok"] is True


def test_unreachable_database_gives_503_naming_it():
    app = make_app("postgresql+psycopg://127.0.0.1:1/nowhere?connect_timeout=2")
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    assert resp.get_json()["database"] == {
        "ok": False,
        "backend": "postgresql",
        "error": "OperationalError",
    }
    with app.app_context():
        db.session.remove()
