"""JSON API for the signed-in merchant: connections and their progress."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import ValidationError
from sqlalchemy import select

from cc_storeplugin.api.schemas import ConnectionCreate, ConnectionOut
from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection, SyncRun, utcnow
from cc_storeplugin.sync.connections import magento_urls
from cc_storeplugin.web.session import current_merchant, login_required

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.errorhandler(404)
def _not_found(err):
    return jsonify(error=getattr(err, "description", "not found")), 404


@bp.post("/connections")
@login_required
def create_connection():
    """Create a connection → 201 with the URLs to paste into the store's admin."""
    try:
        data = ConnectionCreate().load(request.get_json(silent=True) or {})
    except ValidationError as err:
        return jsonify(error="invalid request", fields=err.messages), 400
    conn = StoreConnection(merchant_id=current_merchant().id, platform=data["platform"])
    db.session.add(conn)
    db.session.commit()
    return jsonify(_out(conn)), 201


@bp.get("/connections")
@login_required
def list_connections():
    conns = db.session.scalars(
        select(StoreConnection)
        .where(StoreConnection.merchant_id == current_merchant().id)
        .order_by(StoreConnection.id)
    ).all()
    return jsonify(connections=[_out(c) for c in conns])


@bp.get("/connections/<int:connection_id>")
@login_required
def get_connection(connection_id: int):
    from cc_storeplugin.web.session import owned_connection

    return jsonify(_out(owned_connection(connection_id)))


def _out(conn: StoreConnection) -> dict[str, Any]:
    run = db.session.scalars(
        select(SyncRun).where(SyncRun.connection_id == conn.id).order_by(SyncRun.id.desc()).limit(1)
    ).first()
    body: dict[str, Any] = {
        "id": conn.id,
        "platform": conn.platform,
        "status": conn.status,
        "status_reason": conn.status_reason,
        "store_base_url": conn.store_base_url,
        **(magento_urls(conn) if conn.platform == "magento" else {}),
        "progress": _progress(run),
        "last_run": run,
    }
    return ConnectionOut().dump(body)


def _progress(run: SyncRun | None) -> dict[str, Any] | None:
    """Pages done of the total and an ETA from the rate so far."""
    if run is None:
        return None
    eta = None
    if run.status == "RUNNING" and run.started_at and run.progress_total and run.progress_done:
        elapsed = (utcnow() - run.started_at).total_seconds()
        remaining = run.progress_total - run.progress_done
        eta = int(elapsed / run.progress_done * remaining)
    return {
        "phase": run.phase,
        "done": run.progress_done,
        "total": run.progress_total,
        "eta_s": eta,
    }
