"""Magento's two integration URLs: the Callback (server to server) and the Identity Link popup.

specs/magento.md §1: the Callback POST must be answered 200 fast (Magento waits 5 s and
follows no redirect); the popup is correlated by ``oauth_consumer_key`` and must end by
redirecting to ``success_call_back`` exactly as received.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection
from cc_storeplugin.platforms.magento.errors import MagentoError, MagentoUnauthorized
from cc_storeplugin.platforms.magento.handshake import (
    RESOURCES,
    first_error,
    parse_callback,
    same_store_host,
    selectable_stores,
)
from cc_storeplugin.sync.connections import (
    complete_magento_integration,
    magento_state,
    mark_disconnected,
    receive_magento_callback,
)
from cc_storeplugin.sync.magento_api import client_for
from cc_storeplugin.web.session import current_merchant, login_required

bp = Blueprint("magento", __name__, url_prefix="/magento/connections/<key>")


def _connection(key: str) -> StoreConnection:
    conn = db.session.scalars(
        select(StoreConnection).where(
            StoreConnection.key == key, StoreConnection.platform == "magento"
        )
    ).first()
    if conn is None:
        abort(404, description="unknown connection key")
    return conn


@bp.post("/callback")
def callback(key: str):
    """Store Magento's consumer credentials and start the token exchange at once."""
    conn = _connection(key)
    try:
        data = parse_callback(request.form)
    except ValidationError as err:
        field, message = first_error(err)
        return jsonify(error=f"{field}: {message}", field=field), 400
    known = (conn.credentials or {}).get("consumer_key")
    if (
        conn.status not in ("waiting_for_store", "connecting")
        and known != data["oauth_consumer_key"]
    ):
        return jsonify(
            error="this connection is linked to another Magento integration; "
            "create a new connection for a new integration",
            field="oauth_consumer_key",
        ), 409
    receive_magento_callback(conn, data)
    return jsonify(status="ok"), 200


@bp.route("/identity", methods=["GET", "POST"])
@login_required
def identity(key: str):
    """The popup: check who and where, Allow, select the store, Complete Integration."""
    conn = _connection(key)
    if conn.merchant_id != current_merchant().id:
        abort(
            403, description="this Magento connection belongs to another Constant Contact account"
        )
    args = request.values
    consumer_key, back = args.get("oauth_consumer_key"), args.get("success_call_back")
    for field, value in (("oauth_consumer_key", consumer_key), ("success_call_back", back)):
        if not value:
            return _message("Missing parameter", f"The link from Magento has no {field}.", 400)
    creds = conn.credentials or {}
    if not creds.get("consumer_key"):
        return _message(
            "Magento has not activated this integration yet",
            "Magento has not called the Callback URL for this connection. In Magento, open "
            "System > Integrations, check the Callback URL, then click Activate and Allow.",
            409,
        )
    if not secrets.compare_digest(consumer_key, creds["consumer_key"]):
        return _message(
            "Wrong integration",
            "This popup belongs to another Magento integration (oauth_consumer_key).",
            400,
        )
    if not same_store_host(back, conn.store_base_url):
        return _message(
            "Refused",
            "success_call_back is not on your store's host; we will not redirect there.",
            400,
        )
    step = request.form.get("step") if request.method == "POST" else args.get("step", "intro")
    state = magento_state(conn)
    if step == "intro":
        return render_template(
            "magento/allow.html",
            conn=conn,
            resources=RESOURCES,
            consumer_key=consumer_key,
            back=back,
            state=state,
        )
    if state.get("exchange") in ("expired", "failed"):
        return render_template("magento/expired.html", conn=conn, state=state), 409
    if state.get("exchange") != "done":
        return render_template(
            "magento/waiting.html",
            conn=conn,
            refresh_url=url_for(
                ".identity",
                key=key,
                oauth_consumer_key=consumer_key,
                success_call_back=back,
                step="select",
            ),
        )
    stores = _stores(conn)
    if stores is None:
        return render_template("magento/expired.html", conn=conn, state=magento_state(conn)), 409
    if step == "complete" and request.method == "POST":
        chosen = next((s for s in stores if s["code"] == request.form.get("store_code")), None)
        if chosen is None:
            return _message("Select your store", "Choose one of the store views (store_code).", 400)
        complete_magento_integration(conn, chosen)
        return redirect(back, code=303)
    return render_template(
        "magento/select_store.html", conn=conn, stores=stores, consumer_key=consumer_key, back=back
    )


def _stores(conn: StoreConnection) -> list[dict] | None:
    """The store views the new access token can read; None when Magento refuses it."""
    client = client_for(conn)
    try:
        return selectable_stores(client.store_views(), client.websites())
    except MagentoUnauthorized:
        mark_disconnected(conn.id)
        return None
    except MagentoError as exc:
        abort(502, description=f"Magento did not list its stores: {exc}")


def _message(title: str, message: str, status: int):
    return render_template("message.html", title=title, message=message), status
