"""POST /kibo/events: Kibo's signed event delivery (spec kibo_constantcontact.md A1).

Order of checks, before anything is stored: body size (1 MB, 413), Date within 180 s and
``x-vol-hmac-sha256`` over Date + raw body with KIBO_SHARED_SECRET (401), JSON (400),
eventId / topic (400). Then one INSERT ... ON CONFLICT DO NOTHING, shared with the events
of concurrent requests (:class:`GroupCommit`), and 200 once it has committed (Kibo waits
45 s and retries any other answer); no outbound call is made in the request.
application.* events are applied right after the insert (cheap DB writes only).

Every event of every tenant comes through here, so the POST is answered by a small WSGI
layer in front of Flask (:class:`IntakeShim`, put in place when this blueprint is
registered): Flask's per-request machinery (contexts, session cookie, CSRF hook, routing,
response objects) costs more CPU than verifying and storing an event. The Flask view runs
the same :func:`intake` and stays the endpoint the rest of the app knows (manifest, url_for).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from sqlalchemy.engine import Engine
from werkzeug.wsgi import get_input_stream

from cc_storeplugin.extensions import db
from cc_storeplugin.sandbox.kibo.signing import is_fresh, verify_kibo_hash
from cc_storeplugin.sync.kibo_events import (
    APPLICATION_TOPICS,
    EventRow,
    apply_application_events,
    store_event,
    store_events,
)

MAX_BODY_BYTES = 1024 * 1024

bp = Blueprint("kibo_events", __name__, url_prefix="/kibo")
log = logging.getLogger(__name__)

PATH = f"{bp.url_prefix}/events"
_STATUS_LINES = {s: f"{s} {HTTPStatus(s).phrase}" for s in (200, 400, 401, 413, 503)}
_ACCEPTED = json.dumps({"status": "accepted"}).encode()
_DUPLICATE = json.dumps({"status": "duplicate"}).encode()


def _error(message: str, status: int, field: str | None = None) -> tuple[int, bytes]:
    body: dict[str, Any] = {"error": message}
    if field:
        body.update(field=field, fields={field: ["required, a non-empty string"]})
    return status, json.dumps(body).encode()


def _read_body(environ: dict[str, Any]) -> bytes | None:
    """The raw body, or None when it is larger than MAX_BODY_BYTES (read no further)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        length = None
    if length is not None and length > MAX_BODY_BYTES:
        return None
    raw = get_input_stream(environ).read(MAX_BODY_BYTES + 1)
    return None if len(raw) > MAX_BODY_BYTES else raw


def _text(value: object) -> str | None:
    return None if value in (None, "") else str(value)[:64]


def intake(
    app: Flask, environ: dict[str, Any], store: Callable[[EventRow], bool]
) -> tuple[int, bytes]:
    """Verify, then ``store`` once; returns the HTTP status and the JSON body to answer."""
    raw = _read_body(environ)
    if raw is None:
        return _error(f"body larger than {MAX_BODY_BYTES} bytes", 413)
    secret = app.config.get("KIBO_SHARED_SECRET")
    if not secret:
        return _error("Kibo event intake is not configured (KIBO_SHARED_SECRET)", 503)
    date = environ.get("HTTP_DATE", "")
    if not is_fresh(date):
        return _error("Date header missing or more than 180 s old", 401)
    if not verify_kibo_hash(secret, date, raw, environ.get("HTTP_X_VOL_HMAC_SHA256")):
        return _error("x-vol-hmac-sha256 signature missing or invalid", 401)
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return _error("body is not valid JSON", 400)
    if not isinstance(payload, dict):
        return _error("body must be a JSON object", 400)
    for field in ("eventId", "topic"):
        if not isinstance(payload.get(field), str) or not payload[field].strip():
            return _error(f"{field} is required", 400, field)
    tenant = _text(payload.get("tenantId")) or _text(environ.get("HTTP_X_VOL_TENANT"))
    site = _text(environ.get("HTTP_X_VOL_SITE")) or _text(payload.get("siteId"))
    inserted = store((payload, tenant, site, raw))
    topic = payload["topic"].strip().lower()
    if inserted and tenant and topic in APPLICATION_TOPICS:
        with app.app_context():
            try:
                apply_application_events(tenant)
            except Exception:  # stored and queued: the flush job applies it later
                db.session.rollback()
                log.exception("applying %s for tenant %s failed; left queued", topic, tenant)
    return 200, _ACCEPTED if inserted else _DUPLICATE


@bp.post("/events")
def receive() -> Response:
    """Verify, store once, answer 200 (normally answered by IntakeShim before Flask)."""
    app = current_app._get_current_object()
    status, body = intake(app, request.environ, lambda row: store_event(*row[:3], raw=row[3]))
    return Response(body, status, mimetype="application/json")


class _Waiter:
    __slots__ = ("row", "done", "lead", "result", "error")

    def __init__(self, row: EventRow) -> None:
        self.row, self.done, self.lead = row, threading.Event(), False
        self.result: bool = False
        self.error: BaseException | None = None


class GroupCommit:
    """Stores the events of concurrent requests together, one statement per group.

    The first request to arrive stores its event alone; requests arriving while a statement
    is in flight wait and then go in the next one, stored by the first of them (the leader).
    Each request is answered only after the statement holding its event has committed
    (autocommit; synchronous_commit untouched), so an acknowledged event is durable. On
    PostgreSQL one statement for n events costs about half the CPU, on both sides, of n
    statements. When a group's statement fails, its events are retried one by one, so one
    bad event fails only its own request.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._busy = False

    def store(self, row: EventRow) -> bool:
        """Store one event with whatever else is waiting; False when already stored."""
        me = _Waiter(row)
        with self._lock:
            self._queue.append(me)
            lead = me.lead = not self._busy
            self._busy = True
        if not lead:
            me.done.wait()
        if me.lead:
            self._flush()
        if me.error is not None:
            raise me.error
        return me.result

    def _flush(self) -> None:
        with self._lock:
            group, self._queue = self._queue, []
        try:
            try:
                results = store_events([w.row for w in group], engine=self.engine)
                for waiter, result in zip(group, results, strict=True):
                    waiter.result = result
            except Exception:
                if len(group) == 1:
                    raise
                for waiter in group:
                    try:
                        waiter.result = store_events([waiter.row], engine=self.engine)[0]
                    except Exception as exc:
                        waiter.error = exc
        except BaseException as exc:
            for waiter in group:
                waiter.error = exc
        finally:
            with self._lock:  # hand the lead to the first waiter of the next group
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].done.set()
                else:
                    self._busy = False
            for waiter in group:
                waiter.done.set()


class IntakeShim:
    """WSGI middleware: answers POST /kibo/events with :func:`intake`, the rest goes to Flask."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app, self.wsgi_app = app, wsgi_app
        self._group: GroupCommit | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        if self._group is None:
            with self.app.app_context():
                self._group = GroupCommit(db.engine)
        status, body = intake(self.app, environ, self._group.store)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(_STATUS_LINES[status], headers)
        return [body]


@bp.record_once
def _install_shim(state: BlueprintSetupState) -> None:
    state.app.wsgi_app = IntakeShim(state.app, state.app.wsgi_app)
