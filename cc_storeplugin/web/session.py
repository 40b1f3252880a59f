"""Who is signed in: the merchant in the Flask session, and the login_required guard."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import abort, g, jsonify, redirect, request, session, url_for

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Merchant, StoreConnection


def current_merchant() -> Merchant | None:
    """The signed-in merchant, loaded once per request."""
    mid = session.get("merchant_id")
    if not mid:
        return None
    cached = g.get("merchant")
    if cached is None or cached.id != mid:
        g.merchant = db.session.get(Merchant, mid)
    return g.merchant


def sign_in(merchant: Merchant) -> None:
    session.clear()
    session["merchant_id"] = merchant.id
    session.permanent = True


def safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after sign-in (no open redirect)."""
    if not target:
        return url_for("dashboard.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.index")
    return target


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send a signed-out browser to Constant Contact sign-in, then back to this page."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_merchant() is None:
            if (request.blueprint or "").startswith("api"):
                return jsonify(error="sign in with Constant Contact first"), 401
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


def owned_connection(connection_id: int) -> StoreConnection:
    """A connection of the signed-in merchant; 404 for anyone else's (nothing leaks)."""
    conn = db.session.get(StoreConnection, connection_id)
    merchant = current_merchant()
    if conn is None or merchant is None or conn.merchant_id != merchant.id:
        abort(404, description=f"no connection {connection_id}")
    return conn
