"""Operator endpoints: /healthz reports database and Redis reachability."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text

from cc_storeplugin.extensions import db, queues
from cc_storeplugin.jobs import CRON_HEARTBEAT_KEY

bp = Blueprint("health", __name__)


def _check_database() -> dict[str, Any]:
    try:
        db.session.execute(text("SELECT 1"))
        return {"ok": True, "backend": db.engine.dialect.name}
    except Exception as exc:  # any driver error means "unreachable" to an operator
        db.session.rollback()
        return {"ok": False, "backend": db.engine.dialect.name, "error": type(exc).__name__}


def _check_redis() -> dict[str, Any]:
    mode = "embedded" if queues.embedded else "redis"
    try:
        queues.connection.ping()
        last = queues.connection.get(CRON_HEARTBEAT_KEY)
        return {"ok": True, "mode": mode, "cron_last_tick": last.decode() if last else None}
    except Exception as exc:  # connection refused, timeout, auth...
        return {"ok": False, "mode": mode, "error": type(exc).__name__}


@bp.get("/healthz")
def healthz():
    """200 when the database and Redis answer, 503 (with which one failed) otherwise."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    ok = all(c["ok"] for c in checks.values())
    return jsonify(status="ok" if ok else "unavailable", **checks), 200 if ok else 503
