"""Shared pieces of the Kibo sandbox: per-app state, Kibo's error body, dates, ids, paging.

Kibo error bodies follow the SDK ``ApiException`` contract (``Mozu.Api/ApiException.cs``):
``{"message", "applicationName", "errorCode", "additionalErrorData": [{name, value}],
"items": [], "exceptionDetail": {type, message, source, stackTrace, targetSite}}``.
Error codes are Kibo's string statuses (docs "Status Codes"): ``UNAUTHORIZED``,
``ITEM_NOT_FOUND``, ``MISSING_OR_INVALID_PARAMETER``, ``UNEXPECTED_ERROR``, ...
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, g, has_app_context, jsonify, request

from cc_storeplugin.sandbox.storegen import open_store

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 20
STORE_FMT = "%Y-%m-%d %H:%M:%S"

# Kinds used to build Kibo-looking 32-hex ids from the store's integer keys (reversible).
KIND_USER, KIND_ORDER, KIND_CART, KIND_ORDER_ITEM, KIND_CART_ITEM = 1, 2, 3, 4, 5


@dataclass
class KiboConfig:
    """Options of one sandbox app (see the package docstring for meanings)."""

    store: str
    application_id: str
    shared_secret: str
    tenant_id: int
    sites: list[dict[str, Any]]
    master_catalog_id: int
    catalog_id: int
    clock: Callable[[], float]
    ticket_ttl_s: float
    refresh_ttl_s: float
    tenant_domain: str | None
    oversize_page: str
    cart_expiry_days: float = 14.0
    tenant_name: str = "Sandbox Tenant"


@dataclass
class KiboState:
    """Everything mutable of one app: config, store connections, tickets, event sender."""

    config: KiboConfig
    write_lock: threading.RLock = field(default_factory=threading.RLock)
    learned_host: str | None = None
    _local: threading.local = field(default_factory=threading.local)
    _pool: list[sqlite3.Connection] = field(default_factory=list)
    _counts: dict[tuple, int] = field(default_factory=dict)
    tickets: Any = None
    events: Any = None

    def _open(self) -> sqlite3.Connection:
        conn = open_store(self.config.store)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.create_function("kibo_fold", 1, _fold, deterministic=True)
        return conn

    def db(self) -> sqlite3.Connection:
        """A store connection: pooled per request (the server is threaded), else per thread."""
        if has_app_context():
            conn = g.get("_kibo_db")
            if conn is None:
                with self.write_lock:
                    conn = self._pool.pop() if self._pool else None
                g._kibo_db = conn = conn or self._open()
            return conn
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    def count(self, sql: str, params: list[Any]) -> int:
        """``SELECT COUNT(*)`` cached until the next write (paging repeats the same count)."""
        key = (sql, tuple(params))
        cached = self._counts.get(key)
        if cached is None:
            cached = self._counts[key] = int(self.db().execute(sql, params).fetchone()[0])
        return cached

    def wrote(self) -> None:
        """Forget cached counts after a write to the store."""
        self._counts.clear()

    def release(self, _exc: BaseException | None = None) -> None:
        """Return the request's connection to the pool (teardown hook)."""
        conn = g.pop("_kibo_db", None)
        if conn is not None:
            if conn.in_transaction:
                conn.rollback()
            with self.write_lock:
                self._pool.append(conn)

    def now(self) -> float:
        return float(self.config.clock())

    def tenant_domain(self) -> str:
        """Tenant API host: the option, else the host the sandbox was reached at."""
        return (
            self.config.tenant_domain
            or self.learned_host
            or f"t{self.config.tenant_id}.sandbox.mozu.com"
        )

    def site_ids(self) -> list[int]:
        return [int(s["id"]) for s in self.config.sites]

    def site_for_store(self, store_id: int | None) -> int:
        """Map a store row's ``store_id`` (1-based) onto the configured sites."""
        ids = self.site_ids()
        return ids[(int(store_id or 1) - 1) % len(ids)]

    def site_sql(self, column: str) -> str:
        """SQL expression giving the Kibo site id of a row from its ``store_id`` column."""
        ids = self.site_ids()
        whens = " ".join(f"WHEN {i} THEN {sid}" for i, sid in enumerate(ids))
        return f"(CASE ((COALESCE({column}, 1) - 1) % {len(ids)}) {whens} END)"


def _fold(value: object) -> object:
    """Case-insensitive comparison key, Unicode-aware (SQLite's NOCASE is ASCII only)."""
    return value.casefold() if isinstance(value, str) else value


def state() -> KiboState:
    """The current app's :class:`KiboState`."""
    return current_app.extensions["kibo"]


def kibo_error(
    status: int,
    error_code: str,
    message: str,
    application_name: str = "Commerce",
    additional: dict[str, Any] | None = None,
) -> Response:
    """A Kibo ``ApiError`` JSON response."""
    body = {
        "message": message,
        "applicationName": application_name,
        "errorCode": error_code,
        "additionalErrorData": [
            {"name": k, "value": str(v)} for k, v in (additional or {}).items()
        ],
        "items": [],
        "exceptionDetail": {
            "type": f"Mozu.Core.Exceptions.{'Vol' if status < 500 else 'Application'}Exception",
            "message": message,
            "source": None,
            "stackTrace": None,
            "targetSite": None,
        },
    }
    resp = jsonify(body)
    resp.status_code = status
    return resp


FAULT_CODES = {429: "TOO_MANY_REQUESTS", 503: "SYSTEM_MAINTENANCE"}


def fault_response(status: int) -> Response:
    """Kibo-shaped body for an injected 429/5xx (given to ``instrument``)."""
    code = FAULT_CODES.get(status, "UNEXPECTED_ERROR")
    message = "Too Many Requests" if status == 429 else "An unexpected error occurred."
    return kibo_error(status, code, message, application_name="Platform")


def invalid_parameter(name: str, message: str) -> Response:
    return kibo_error(400, "MISSING_OR_INVALID_PARAMETER", message, additional={"Name": name})


# --- dates -------------------------------------------------------------------------


def iso(store_ts: str | None) -> str | None:
    """Store text ``YYYY-MM-DD HH:MM:SS`` -> Kibo ``YYYY-MM-DDTHH:MM:SS.000Z``."""
    if not store_ts:
        return None
    return store_ts.replace(" ", "T")[:19] + ".000Z"


def store_ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(STORE_FMT)


def parse_iso_to_store(text: str) -> str | None:
    """A filter date (ISO-8601, ``z`` or ``Z`` or offset or date only) -> store text."""
    raw = text.strip().strip("'\"")
    try:
        value = datetime.fromisoformat(raw.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime(STORE_FMT)


# --- ids ---------------------------------------------------------------------------


def hex_id(kind: int, number: int, tenant_id: int) -> str:
    """Reversible 32-hex id in the style of Kibo order/cart/user ids."""
    return f"{tenant_id & 0xFFFFFFFF:08x}{kind:04x}{int(number):020x}"


def parse_hex_id(value: str, kind: int, tenant_id: int) -> int | None:
    value = (value or "").strip().lower()
    if len(value) != 32 or value[:12] != f"{tenant_id & 0xFFFFFFFF:08x}{kind:04x}":
        return None
    try:
        return int(value[12:], 16)
    except ValueError:
        return None


# --- paging and responseFields -----------------------------------------------------


def paging(default_sort: str) -> tuple[int, int, str] | Response:
    """Read startIndex/pageSize; enforce Kibo's 200 maximum (error or clamp per option)."""
    try:
        start = int(request.args.get("startIndex") or 0)
        size = int(request.args.get("pageSize") or 0)
    except ValueError:
        return invalid_parameter("pageSize", "startIndex and pageSize must be integers")
    if start < 0 or size < 0:
        return invalid_parameter("startIndex", "startIndex and pageSize must not be negative")
    size = size or DEFAULT_PAGE_SIZE
    if size > MAX_PAGE_SIZE:
        if state().config.oversize_page == "clamp":
            size = MAX_PAGE_SIZE
        else:
            return invalid_parameter(
                "pageSize", f"Page size {size} exceeds the maximum of {MAX_PAGE_SIZE}"
            )
    return start, size, request.args.get("sortBy") or default_sort


def collection(start: int, size: int, total: int, items: list[dict[str, Any]]) -> dict:
    return {
        "startIndex": start,
        "pageSize": size,
        "pageCount": math.ceil(total / size) if size else 0,
        "totalCount": total,
        "items": items,
    }


def _split_fields(spec: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    depth, token = 0, ""
    for ch in spec + ",":
        if ch == "," and depth == 0:
            token = token.strip()
            if token:
                name, _, rest = token.partition("(")
                out[name.strip().lower()] = rest[:-1] if rest else None
            token = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        token += ch
    return out


def apply_response_fields(data: Any, spec: str | None) -> Any:
    """Kibo ``responseFields``: ``a,b(c,d)`` keeps only those (case-insensitive) keys."""
    if not spec:
        return data
    if isinstance(data, list):
        return [apply_response_fields(item, spec) for item in data]
    if not isinstance(data, dict):
        return data
    wanted = _split_fields(spec)
    return {
        k: apply_response_fields(v, wanted[k.lower()])
        for k, v in data.items()
        if k.lower() in wanted
    }


def respond(data: Any) -> Response:
    return jsonify(apply_response_fields(data, request.args.get("responseFields")))
