"""Sign in with Constant Contact: OAuth2 authorization code + PKCE, with the state checked."""

from __future__ import annotations

import secrets

from flask import Blueprint, redirect, render_template, request, session, url_for

from cc_storeplugin.constantcontact import oauth2
from cc_storeplugin.constantcontact.errors import AuthorizationFailed
from cc_storeplugin.sync.connections import resume_paused_runs
from cc_storeplugin.web.session import safe_next, sign_in

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.get("/constantcontact/login")
def login():
    """Start the authorization: remember state, PKCE verifier and where to come back."""
    verifier, challenge = oauth2.new_pkce_pair()
    state = secrets.token_urlsafe(24)
    session["cc_oauth"] = {
        "state": state,
        "verifier": verifier,
        "next": safe_next(request.args.get("next")),
    }
    return redirect(oauth2.authorization_url(state, challenge))


@bp.get("/constantcontact/callback")
def callback():
    """Finish the authorization: check state, exchange the code, load or create the merchant."""
    pending = session.pop("cc_oauth", None)
    if request.args.get("error"):
        reason = request.args.get("error_description") or request.args["error"]
        return _failed(f"Constant Contact did not authorize the plugin: {reason}.", 400)
    if not pending or not secrets.compare_digest(request.args.get("state", ""), pending["state"]):
        return _failed("This sign-in link is stale or was not started here (state mismatch).", 400)
    code = request.args.get("code")
    if not code:
        return _failed("Constant Contact sent no authorization code (code).", 400)
    try:
        tokens = oauth2.exchange_code(code, pending["verifier"])
        merchant = oauth2.connect_merchant(tokens)
    except AuthorizationFailed as exc:
        return _failed(f"Constant Contact refused the sign-in: {exc}", 502)
    sign_in(merchant)
    for conn in merchant.connections:  # a lapsed authorization paused them; resume now
        resume_paused_runs(conn.id)
    return redirect(safe_next(pending.get("next")))


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("dashboard.index"))


def _failed(message: str, status: int):
    return render_template(
        "message.html",
        title="Sign-in failed",
        message=message,
        action_url=url_for("auth.login"),
        action_label="Try again",
    ), status
