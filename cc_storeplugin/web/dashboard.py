"""The merchant's dashboard: connections, "Connect Magento", and each connection's page."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from sqlalchemy import select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection, SyncError, SyncRun
from cc_storeplugin.platforms.magento.handshake import INTEGRATION_NAME, RESOURCES
from cc_storeplugin.sync.connections import magento_state, magento_urls
from cc_storeplugin.web.session import current_merchant, login_required, owned_connection

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index():
    merchant = current_merchant()
    if merchant is None:
        return render_template("landing.html")
    conns = db.session.scalars(
        select(StoreConnection)
        .where(StoreConnection.merchant_id == merchant.id)
        .order_by(StoreConnection.id)
    ).all()
    return render_template("dashboard.html", merchant=merchant, connections=conns)


@bp.post("/connections/magento")
@login_required
def connect_magento():
    """Create a Magento connection and show the URLs to paste into Magento."""
    conn = StoreConnection(merchant_id=current_merchant().id, platform="magento")
    db.session.add(conn)
    db.session.commit()
    return redirect(url_for(".connection", connection_id=conn.id), code=303)


@bp.get("/connections/<int:connection_id>")
@login_required
def connection(connection_id: int):
    conn = owned_connection(connection_id)
    last_run = db.session.scalars(
        select(SyncRun).where(SyncRun.connection_id == conn.id).order_by(SyncRun.id.desc()).limit(1)
    ).first()
    return render_template(
        "connection.html",
        conn=conn,
        urls=magento_urls(conn) if conn.platform == "magento" else {},
        state=magento_state(conn),
        integration_name=INTEGRATION_NAME,
        integration_email=current_merchant().email or "",
        resources=RESOURCES,
        last_run=last_run,
    )


@bp.get("/connections/<int:connection_id>/errors")
@login_required
def errors(connection_id: int):
    """The quarantined records of a connection, newest first, with why each was left out."""
    conn = owned_connection(connection_id)
    rows = db.session.scalars(
        select(SyncError)
        .where(SyncError.connection_id == conn.id)
        .order_by(SyncError.id.desc())
        .limit(500)
    ).all()
    return render_template("errors.html", conn=conn, errors=rows)
