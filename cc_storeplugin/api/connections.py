"""JSON API for the signed-in merchant: connections and their progress."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import ValidationError
from sqlalchemy import func, select

from cc_storeplugin.api.schemas import (
    ConnectionCreate,
    ConnectionOut,
    ErrorOut,
    ErrorsQuery,
    ListOut,
)
from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    Segment,
    SegmentMembership,
    StoreConnection,
    SyncError,
    SyncRun,
)
from cc_storeplugin.progress import eta_s
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


@bp.get("/connections/<int:connection_id>/lists")
@login_required
def connection_lists(connection_id: int):
    """Per list: name, members in the store (segment) and in CC (as of the last run)."""
    from cc_storeplugin.web.session import owned_connection

    conn = owned_connection(connection_id)
    segs = db.session.scalars(
        select(Segment).where(Segment.connection_id == conn.id).order_by(Segment.id)
    ).all()
    counts = dict(
        db.session.execute(
            select(SegmentMembership.segment_id, func.count())
            .where(SegmentMembership.segment_id.in_([s.id for s in segs]))
            .group_by(SegmentMembership.segment_id)
        ).all()
    )
    last = _last_complete(conn.id)
    in_cc = (
        {row["key"]: row.get("members_in_cc") for row in (last.totals or {}).get("lists", [])}
        if last
        else {}
    )
    return jsonify(
        lists=[
            ListOut().dump(
                {
                    "key": s.key,
                    "name": s.name,
                    "kind": s.kind,
                    "cc_list_id": s.cc_list_id,
                    "members_in_store": counts.get(s.id, 0),
                    "members_in_cc": in_cc.get(s.key),
                }
            )
            for s in segs
        ]
    )


@bp.get("/connections/<int:connection_id>/errors")
@login_required
def connection_errors(connection_id: int):
    """Quarantined records with reason and message, newest first (?reason=, ?limit=, ?before=)."""
    from cc_storeplugin.web.session import owned_connection

    conn = owned_connection(connection_id)
    try:
        args = ErrorsQuery().load(request.args)
    except ValidationError as err:
        return jsonify(error="invalid query", fields=err.messages), 400
    query = select(SyncError).where(SyncError.connection_id == conn.id)
    if args.get("reason"):
        query = query.where(SyncError.reason == args["reason"])
    if args.get("before"):
        query = query.where(SyncError.id < args["before"])
    rows = db.session.scalars(query.order_by(SyncError.id.desc()).limit(args["limit"])).all()
    return jsonify(errors=ErrorOut(many=True).dump(rows))


def _last_complete(connection_id: int) -> SyncRun | None:
    return db.session.scalars(
        select(SyncRun)
        .where(SyncRun.connection_id == connection_id, SyncRun.status == "COMPLETE")
        .order_by(SyncRun.id.desc())
        .limit(1)
    ).first()


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
    """Work done of the total and an ETA from the rate so far."""
    if run is None:
        return None
    return {
        "phase": run.phase,
        "done": run.progress_done,
        "total": run.progress_total,
        "eta_s": eta_s(run),
    }
