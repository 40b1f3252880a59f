"""GET,POST /kibo/config: the configuration page Kibo Admin opens, with the guide's five tabs
(Info, Settings, Sync, Sync Logs, Events) for one verified tenant and one CC account.

Launch (spec kibo_constantcontact.md A1): Kibo Admin POSTs an HTML form to the ConfigUrl with
``?tenantId=&messageHash=&dt=`` and the body ``x-vol-tenant-domain=&x-vol-return-url=``.
``messageHash`` is the Kibo hash of ``dt`` + the URL-decoded body (constant-time compare, ``dt``
at most 180 s old); the body must name the tenant: the tenant host starts with ``t{tenantId}.``
(Kibo's hosts), else Kibo's home pod must report that very host for the tenant (loopback
sandboxes, whose host does not carry the id). Anything else is a 401 and nothing is stored.
The verified tenant lives in the Flask session; CC sign-in clears the session (session
fixation), so a signed 15-minute cookie carries the tenant across it.

Every action is scoped to the session's tenant AND the signed-in merchant's connection for it:
one tenant, one CC account (another merchant's tenant is a 409).

Production: Kibo Admin shows this page in an iframe, so the session cookie must be
``SameSite=None; Secure`` (``SESSION_COOKIE_SAMESITE="None"``, ``SESSION_COOKIE_SECURE=True``)
and no ``X-Frame-Options`` may forbid framing; CC's sign-in page opens in the top window.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from flask import (
    Blueprint,
    abort,
    after_this_request,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from itsdangerous import BadSignature, URLSafeTimedSerializer
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import func, select

from cc_storeplugin.constantcontact import lists as cc_lists
from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.errors import CCError
from cc_storeplugin.extensions import db
from cc_storeplugin.models import ConsentEvent, StoreConnection, StoreEvent, SyncError, SyncRun
from cc_storeplugin.platforms.kibo.client import KiboClient
from cc_storeplugin.platforms.kibo.errors import KiboError, KiboUnavailable
from cc_storeplugin.sandbox.kibo.signing import is_fresh, verify_kibo_hash
from cc_storeplugin.sync import kibo_settings
from cc_storeplugin.sync.connections import paused_reason
from cc_storeplugin.sync.import_job import start_import
from cc_storeplugin.sync.kibo_events import (
    apply_application_events,
    claim_tenant_events,
    connection_for_tenant,
    pending_events,
)
from cc_storeplugin.web.csrf import csrf
from cc_storeplugin.web.session import current_merchant

bp = Blueprint("kibo_config", __name__, url_prefix="/kibo")
bp.record_once(lambda _state: csrf.exempt("kibo_config.launch"))  # signed by Kibo instead

TABS = ("info", "settings", "sync", "logs", "events")
SESSION_KEY = "kibo_tenant"
RESUME_COOKIE = "kibo_tenant_resume"
RESUME_MAX_AGE_S = 15 * 60
TENANT_MAX_AGE_S = 12 * 3600
LOG_KINDS = ("import", "events")
KIBO_HOST = re.compile(r"t(\d+)\.")
OPEN_OOPS = "Open this page from Kibo Admin: System > Customization > Applications > Constant Contact > Configuration."  # noqa: E501


class ListsQuery(Schema):
    """GET /kibo/config/lists?q="""

    q = fields.String(load_default="", validate=validate.Length(max=255))


class ListOut(Schema):
    list_id = fields.String()
    name = fields.String()


class ListsOut(Schema):
    lists = fields.List(fields.Nested(ListOut))


class SettingsIn(Schema):
    """The Settings tab's Save (form fields or a JSON body)."""

    list_name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    welcome_email = fields.Boolean(load_default=False)
    from_email = fields.Email(required=True)
    reply_to_email = fields.Email(required=True)


# -- the verified tenant ------------------------------------------------------------------


def _host(value: str) -> str:
    """``https://T1.sandbox.mozu.com/`` or ``t1.sandbox.mozu.com`` → ``t1.sandbox.mozu.com``."""
    value = (value or "").strip()
    return (urlsplit(value if "://" in value else f"//{value}").netloc or value).lower()


def _kibo_confirms(tenant_id: str, domain: str) -> bool:
    """Kibo's home pod says the tenant's host is ``domain`` (raises KiboUnavailable)."""
    cfg = current_app.config
    if not cfg.get("KIBO_APPLICATION_ID"):
        return False
    client = KiboClient(
        cfg["KIBO_HOME_BASE_URL"], cfg["KIBO_APPLICATION_ID"], cfg["KIBO_SHARED_SECRET"],
        int(tenant_id), timeout=(5, 15), max_retries=2,
    )  # fmt: skip
    try:
        found = client.tenant().get("domain")
    except KiboUnavailable:
        raise
    except KiboError:
        return False
    return isinstance(found, str) and _host(found) == _host(domain)


def verify_launch(
    tenant_id: str, message_hash: str, dt: str, raw_body: bytes, now: float | None = None
) -> str | None:
    """None when Kibo Admin's signed launch is valid, else why not (spec A1, test vector 1)."""
    secret = current_app.config.get("KIBO_SHARED_SECRET")
    if not secret:
        return "the Kibo app is not configured here (KIBO_SHARED_SECRET)"
    if not tenant_id.isdigit():
        return "tenantId is missing"
    if not is_fresh(dt, now=now):
        return "dt is missing or more than 180 s old"
    try:
        body = unquote_plus(raw_body.decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if not verify_kibo_hash(secret, dt, body, message_hash, now=now):
        return "messageHash does not match"
    return None


def _tenant_is_named(tenant_id: str, domain: str) -> bool:
    """The signed body names the tenant: a Kibo host ``t{id}.…`` must carry this id; any other
    host (a loopback sandbox) must be the one Kibo's home pod reports for the tenant."""
    kibo_shaped = KIBO_HOST.match(_host(domain))
    if kibo_shaped:
        return kibo_shaped.group(1) == tenant_id
    return _kibo_confirms(tenant_id, domain)


def _tenant() -> dict[str, Any] | None:
    """The session's verified tenant; restored from the resume cookie after CC sign-in."""
    tenant = session.get(SESSION_KEY)
    if tenant is None and RESUME_COOKIE in request.cookies:
        try:
            tenant = _serializer().loads(request.cookies[RESUME_COOKIE], max_age=RESUME_MAX_AGE_S)
        except BadSignature:
            tenant = None

        @after_this_request
        def _forget(resp):
            resp.delete_cookie(RESUME_COOKIE, path=bp.url_prefix)
            return resp

        if tenant:
            session[SESSION_KEY] = tenant
            g.kibo_signed_in_here = True  # the merchant just signed in from this page
    if not tenant or time.time() - float(tenant.get("at", 0)) > TENANT_MAX_AGE_S:
        return None
    return tenant


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="kibo-config-tenant")


def _unauthorized(reason: str):
    return render_template(
        "message.html", title="Open from Kibo Admin", message=f"{reason}. {OPEN_OOPS}"
    ), 401


def _taken(tenant: dict[str, Any]):
    return render_template(
        "message.html",
        title="Tenant linked to another account",
        message=f"Kibo tenant {tenant['id']} is already linked to another Constant Contact "
        "account. One tenant syncs with one account: sign in with that account, or ask its "
        "owner to uninstall the app first.",
        action_url=url_for(".login"),
        action_label="Log in with another account",
    ), 409


# -- the tenant's connection --------------------------------------------------------------


def _connection(tenant: dict[str, Any], create: bool) -> StoreConnection | None | bool:
    """The merchant's connection for the tenant (created when ``create``); False when the
    tenant belongs to another merchant; None when there is none yet."""
    merchant = current_merchant()
    conn = connection_for_tenant(tenant["id"])
    if conn is not None:
        if conn.merchant_id != merchant.id:
            return False
        if (conn.settings or {}).get("tenant_host") != tenant["domain"]:  # the tenant moved pod
            conn.settings = {**(conn.settings or {}), "tenant_host": tenant["domain"]}
            db.session.commit()
        return conn
    if not create:
        return None
    conn = StoreConnection(
        merchant_id=merchant.id, platform="kibo", external_id=tenant["id"], status="active",
        store_base_url=tenant["domain"], settings={"tenant_host": tenant["domain"]},
    )  # fmt: skip
    db.session.add(conn)
    db.session.commit()
    claim_tenant_events(conn.id)
    apply_application_events(tenant["id"])
    return conn


def _scope():
    """(tenant, connection) for an action, or the response refusing it."""
    tenant = _tenant()
    if tenant is None:
        return None, _unauthorized("No verified Kibo tenant in this browser session")
    if current_merchant() is None:
        return None, (redirect(url_for(".page", tab="info")), 303)
    conn = _connection(tenant, create=False)
    if conn is False:
        return None, _taken(tenant)
    if conn is None:
        return None, (redirect(url_for(".page", tab="info")), 303)
    return (tenant, conn), None


def _wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def _bad(errors: dict[str, list[str]], tab: str):
    """400 naming the fields: JSON for scripts, the page with the messages for people."""
    if _wants_json():
        return jsonify(error="invalid request", fields=errors), 400
    return _render(tab=tab, errors=errors, status=400)


# -- routes ---------------------------------------------------------------------------------


@bp.post("/config")
def launch():
    """Kibo Admin opens the page: verify, remember the tenant, show the page."""
    tenant_id = request.args.get("tenantId", "").strip()
    raw = request.get_data(cache=True)
    reason = verify_launch(
        tenant_id, request.args.get("messageHash", ""), request.args.get("dt", ""), raw
    )
    domain = request.form.get("x-vol-tenant-domain", "").strip()
    if reason is None and not domain:
        reason = "the signed body names no tenant (x-vol-tenant-domain)"
    try:
        if reason is None and not _tenant_is_named(tenant_id, domain):
            reason = f"the signed body is not for tenant {tenant_id}"
    except KiboUnavailable as exc:
        return render_template(
            "message.html", title="Kibo unavailable", message=f"Kibo did not answer: {exc}"
        ), 502
    if reason:
        return _unauthorized(f"This page could not be verified: {reason}")
    session[SESSION_KEY] = {"id": tenant_id, "domain": domain, "at": time.time()}
    return redirect(url_for(".page"), code=303)


@bp.get("/config")
def page():
    tenant = _tenant()
    if tenant is None:
        return _unauthorized("No verified Kibo tenant in this browser session")
    tab = request.args.get("tab", "info")
    return _render(tab=tab if tab in TABS else "info")


@bp.get("/config/login")
def login():
    """Log in to Constant Contact, then come back here with the tenant."""
    tenant = _tenant()
    if tenant is None:
        return _unauthorized("No verified Kibo tenant in this browser session")
    resp = redirect(url_for("auth.login", next=url_for(".page", tab="info")))
    resp.set_cookie(
        RESUME_COOKIE, _serializer().dumps(tenant), max_age=RESUME_MAX_AGE_S, path=bp.url_prefix,
        httponly=True, secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
        samesite=current_app.config.get("SESSION_COOKIE_SAMESITE") or "Lax",
    )  # fmt: skip
    return resp


@bp.post("/config/connect")
def connect():
    """Link the tenant to the signed-in account (when signed in before opening the page)."""
    tenant = _tenant()
    if tenant is None:
        return _unauthorized("No verified Kibo tenant in this browser session")
    if current_merchant() is None:
        return redirect(url_for(".login"), code=303)
    if _connection(tenant, create=True) is False:
        return _taken(tenant)
    return redirect(url_for(".page", tab="settings"), code=303)


@bp.get("/config/lists")
def list_names():
    """Type-ahead: the account's active CC lists whose name contains ``q`` (at most 20)."""
    scope, refused = _scope()
    if refused:
        return jsonify(error="open the configuration page from Kibo Admin first"), 401
    try:
        q = ListsQuery().load(request.args, unknown="exclude")["q"].strip().lower()
    except ValidationError as err:
        return jsonify(error="invalid request", fields=err.messages), 400
    try:
        items = CCClient(scope[1].merchant_id).paginate(
            "/contact_lists", {"status": "active", "limit": cc_lists.PAGE_LIMIT}, "lists"
        )
        found = [i for i in items if q in str(i.get("name", "")).lower()]
    except CCError as exc:
        return jsonify(error=f"Constant Contact did not answer: {exc}"), 502
    found.sort(key=lambda i: (not str(i["name"]).lower().startswith(q), str(i["name"]).lower()))
    return jsonify(ListsOut().dump({"lists": found[:20]}))


@bp.post("/config/settings")
def save_settings():
    """Save the Settings tab; a new list name is created in CC. Bad input changes nothing."""
    scope, refused = _scope()
    if refused:
        return refused
    conn = scope[1]
    data = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    try:
        value = SettingsIn().load(data or {}, unknown="exclude")
    except ValidationError as err:
        return _bad(err.messages if isinstance(err.messages, dict) else {"_schema": [str(err)]},
                    "settings")  # fmt: skip
    name = value["list_name"].strip()
    if not name:
        return _bad({"list_name": ["Enter a Contact List Name."]}, "settings")
    cc = CCClient(conn.merchant_id)
    try:
        confirmed = {e["email_address"].lower() for e in cc.account_emails()}
        wrong = {
            field: ["Choose one of your account's confirmed addresses."]
            for field in ("from_email", "reply_to_email")
            if value[field].lower() not in confirmed
        }
        if wrong:
            return _bad(wrong, "settings")
        list_id = cc_lists.find_or_create_list(cc, name)
    except CCError as exc:
        errors = {"list_name": [f"Constant Contact did not answer: {exc}"]}
        return _render(tab="settings", errors=errors, status=502)
    kibo_settings.save(
        conn,
        kibo_settings.KiboSettings(
            list_id=list_id, list_name=name, welcome_email=bool(value["welcome_email"]),
            from_email=value["from_email"], reply_to_email=value["reply_to_email"],
        ),
    )  # fmt: skip
    db.session.commit()
    if _wants_json():
        return jsonify(kibo_settings.as_json(conn))
    return redirect(url_for(".page", tab="settings", saved=1), code=303)


@bp.post("/config/enable")
def enable():
    """Enable App / Disable App: event processing on or off for the tenant."""
    scope, refused = _scope()
    if refused:
        return refused
    conn = scope[1]
    on = request.form.get("enabled", "1") == "1"
    if on and not kibo_settings.load(conn).list_id:
        return _bad({"list_name": ["Save a Contact List Name before enabling the app."]}, "info")
    kibo_settings.set_enabled(conn, on)
    db.session.commit()
    return redirect(url_for(".page", tab="info"), code=303)


@bp.post("/config/sync")
def sync_contacts():
    """Sync Contacts (To Constant Contact): start the export, once at a time."""
    scope, refused = _scope()
    if refused:
        return refused
    conn = scope[1]
    if not kibo_settings.load(conn).list_id:
        return _bad({"list_name": ["Save a Contact List Name before syncing."]}, "sync")
    reason = paused_reason(conn)
    if reason:
        return render_template("message.html", title="Sync paused", message=reason), 409
    busy = db.session.scalar(
        select(SyncRun.id).where(
            SyncRun.connection_id == conn.id,
            SyncRun.kind == "import",
            SyncRun.status.in_(("QUEUED", "RUNNING")),
        )
    )
    if busy is None:
        start_import(conn.id)
    return redirect(url_for(".page", tab="logs"), code=303)


@bp.get("/config/unsubscribes/<int:run_id>")
def captured(run_id: int):
    """View: what one unsubscribe poll captured (its consent ledger entries)."""
    scope, refused = _scope()
    if refused:
        return refused
    run = _run(scope[1], run_id, ("unsubscribes",))
    rows = db.session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.sync_run_id == run.id, ConsentEvent.connection_id == scope[1].id)
        .order_by(ConsentEvent.id)
        .limit(1000)
    ).all()
    return render_template("kibo/captured.html", run=run, rows=rows)


@bp.get("/config/runs/<int:run_id>/errors")
def run_errors(run_id: int):
    """The error messages of one sync run (the Errors count in Sync Logs)."""
    scope, refused = _scope()
    if refused:
        return refused
    run = _run(scope[1], run_id, LOG_KINDS)
    rows = db.session.scalars(
        select(SyncError).where(SyncError.run_id == run.id).order_by(SyncError.id).limit(1000)
    ).all()
    return render_template("kibo/run_errors.html", run=run, rows=rows)


def _run(conn: StoreConnection, run_id: int, kinds: tuple[str, ...]) -> SyncRun:
    run = db.session.get(SyncRun, run_id)
    if run is None or run.connection_id != conn.id or run.kind not in kinds:
        abort(404, description=f"no run {run_id} for this tenant")
    return run


# -- the page -------------------------------------------------------------------------------


def _render(tab: str, errors: dict[str, Any] | None = None, status: int = 200):
    """The five tabs for the session's tenant (only Info until an account is linked)."""
    tenant = _tenant()
    merchant = current_merchant()
    ctx: dict[str, Any] = {"tenant": tenant, "merchant": merchant, "errors": errors or {}}
    conn = None
    if merchant is not None:
        conn = _connection(tenant, create=bool(g.get("kibo_signed_in_here")))
        if conn is False:
            return _taken(tenant)
    ctx["conn"] = conn
    if conn is None:
        return render_template("kibo/config.html", tab="info", **ctx), status
    ctx.update(_tab_data(conn))
    return render_template("kibo/config.html", tab=tab, **ctx), status


def _tab_data(conn: StoreConnection) -> dict[str, Any]:
    now = datetime.now(UTC)
    settings = kibo_settings.load(conn)
    emails, emails_error = [], None
    try:
        emails = [e["email_address"] for e in CCClient(conn.merchant_id).account_emails()]
    except CCError as exc:
        emails_error = str(exc)
    runs = db.session.scalars(
        select(SyncRun)
        .where(SyncRun.connection_id == conn.id, SyncRun.kind.in_(LOG_KINDS))
        .order_by(SyncRun.id.desc())
        .limit(50)
    ).all()
    error_counts = dict(
        db.session.execute(
            select(SyncError.run_id, func.count())
            .where(SyncError.run_id.in_([r.id for r in runs]))
            .group_by(SyncError.run_id)
        ).all()
    )
    polls = db.session.scalars(
        select(SyncRun)
        .where(SyncRun.connection_id == conn.id, SyncRun.kind == "unsubscribes")
        .order_by(SyncRun.id.desc())
        .limit(50)
    ).all()
    queued = db.session.scalar(
        select(func.count())
        .select_from(StoreEvent)
        .where(
            StoreEvent.platform == "kibo",
            StoreEvent.status == "queued",
            (StoreEvent.connection_id == conn.id)
            | (StoreEvent.connection_id.is_(None) & (StoreEvent.tenant_id == conn.external_id)),
        )
    )
    return {
        "settings": settings,
        "enabled": kibo_settings.is_enabled(conn),
        "installed": (conn.settings or {}).get("installed", True) is not False,
        "emails": emails,
        "emails_error": emails_error,
        "runs": [_run_row(r, error_counts.get(r.id, 0)) for r in runs],
        "polls": polls,
        "events": pending_events(connection_id=conn.id, limit=200),
        "queued": queued,
        "next_events_run": kibo_settings.next_run_at(conn.id, "events", now),
        "import_busy": any(r.kind == "import" and r.status in ("QUEUED", "RUNNING") for r in runs),
    }


def _run_row(run: SyncRun, errors: int) -> dict[str, Any]:
    """One Sync Logs row: the guide's status words and the contacts the run sent."""
    totals = run.totals or {}
    total = next(
        (totals[k] for k in ("contacts_sent", "exported", "contacts", "updated") if k in totals),
        run.progress_done,
    )
    status = "RUNNING" if run.status == "QUEUED" else run.status
    return {"run": run, "status": status, "total": total, "errors": errors}
