"""Kibo events after intake: store once, apply application.* state, coalesce customer events.

Stored: every verified delivery becomes one ``store_events`` row (INSERT ... ON CONFLICT DO
NOTHING on (platform, event_id)), so a re-delivered eventId is stored once. Per-site fan-out
copies (own eventIds, same correlationId) are stored each and collapse when applied.

application.* decisions (tenant state lives on the tenant's StoreConnection: platform
"kibo", external_id = tenant id):

- A tenant that installs the app before any Constant Contact merchant links it has no
  connection (``merchant_id`` is NOT NULL), so its application.* events stay ``queued``;
  the configuration page calls :func:`claim_tenant_events` and
  :func:`apply_application_events` once it creates the connection.
- With a connection, the events set ``settings["installed"]`` / ``settings["enabled"]``
  (installed: installed, not enabled; upgraded: installed; enabled: installed and enabled;
  disabled: not enabled; uninstalled: neither). "disabled" is not a connection status: the
  status is kept and ``enabled`` is False. uninstalled sets status ``disconnected`` (the
  store revoked access) and a later install restores the status it had.
- Out of order: each of the two fields is a last-writer-wins register keyed by the event's
  ``timestamp`` (kept in ``settings["kibo_app"]``); an event older than (or as old as) every
  field it writes changes nothing and is marked ``ignored``, so a per-site copy or an old
  "disabled" arriving after a newer "enabled" is not applied twice or backwards.

Customer events are applied later by the flush job (:func:`coalesce_customer_events`, then
:func:`mark_applied`): per customer the latest by timestamp wins and the rest are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import JSON, bindparam, case, func, select, text, update
from sqlalchemy.engine import Engine

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection, StoreEvent, utcnow
from cc_storeplugin.models.base import UTCDateTime

PLATFORM = "kibo"
APPLICATION_TOPICS = (
    "application.installed",
    "application.upgraded",
    "application.enabled",
    "application.disabled",
    "application.uninstalled",
)
CUSTOMER_TOPICS = ("customeraccount.created", "customeraccount.updated", "customeraccount.deleted")
UNINSTALLED_REASON = "the Constant Contact app was uninstalled from the Kibo tenant"

# Fields each application topic writes (installed, enabled).
_WRITES: dict[str, dict[str, bool]] = {
    "application.installed": {"installed": True, "enabled": False},
    "application.upgraded": {"installed": True},
    "application.enabled": {"installed": True, "enabled": True},
    "application.disabled": {"enabled": False},
    "application.uninstalled": {"installed": False, "enabled": False},
}
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$", re.I)


def event_instant(timestamp: Any) -> str | None:
    """Kibo's ``timestamp`` (ISO-8601, up to 7+ fraction digits) as a sortable UTC string."""
    match = _TS.match(str(timestamp or "").strip())
    if not match:
        return None
    base, fraction, zone = match.groups()
    when = datetime.fromisoformat(base)
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        when = when.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
        when = when.astimezone(UTC).replace(tzinfo=None)
    return f"{when.isoformat()}.{(fraction or '').ljust(7, '0')[:7]}Z"


def connection_for_tenant(tenant_id: str) -> StoreConnection | None:
    """The tenant's connection (the newest when a tenant was linked more than once)."""
    return db.session.scalars(
        select(StoreConnection)
        .where(StoreConnection.platform == PLATFORM, StoreConnection.external_id == str(tenant_id))
        .order_by(StoreConnection.id.desc())
        .limit(1)
    ).first()


_INSERT = text(
    "INSERT INTO store_events (platform, event_id, connection_id, tenant_id, site_id, topic,"
    " entity_id, payload, status, attempts, received_at)"
    " VALUES (:platform, :event_id, (SELECT id FROM store_connections"
    " WHERE platform = :platform_key AND external_id = :tenant_key ORDER BY id DESC LIMIT 1),"
    " :tenant_id, :site_id, :topic, :entity_id, :payload, 'queued', 0, :received_at)"
    " ON CONFLICT (platform, event_id) DO NOTHING RETURNING id"
).bindparams(
    bindparam("payload", type_=JSON()),
    bindparam("received_at", type_=UTCDateTime()),
)
# The same insert for n rows in one statement (PostgreSQL, psycopg placeholders).
_ROW = (
    "(%s, %s, (SELECT id FROM store_connections WHERE platform = %s AND external_id = %s"
    " ORDER BY id DESC LIMIT 1), %s, %s, %s, %s, %s::JSON, 'queued', 0, %s)"
)
_INSERT_INTO = (
    "INSERT INTO store_events (platform, event_id, connection_id, tenant_id, site_id, topic,"
    " entity_id, payload, status, attempts, received_at) VALUES "
)
_ON_CONFLICT = " ON CONFLICT (platform, event_id) DO NOTHING RETURNING event_id"
_MANY_MAX = 32
_INSERT_MANY = [_INSERT_INTO + ", ".join([_ROW] * n) + _ON_CONFLICT for n in range(_MANY_MAX + 1)]

#: One verified event to store: (payload, tenant id, site id, raw body or None).
EventRow = tuple[dict[str, Any], str | None, str | None, bytes | None]


def store_event(
    payload: dict[str, Any],
    tenant_id: str | None,
    site_id: str | None,
    *,
    raw: bytes | None = None,
    engine: Engine | None = None,
) -> bool:
    """Insert one verified event (queued); False when its eventId was already stored.

    One autocommitted statement (the hot path: no ORM, one round trip): the connection id is
    looked up inside the INSERT, and a duplicate is a no-op at the database (ON CONFLICT DO
    NOTHING), so concurrent re-deliveries are safe and each stored event is durable at once.
    ``raw`` is the request body (already parsed, so valid JSON), stored as the payload text.
    """
    return store_events([(payload, tenant_id, site_id, raw)], engine=engine)[0]


def store_events(rows: list[EventRow], engine: Engine | None = None) -> list[bool]:
    """Insert verified events, autocommitted; per row, False when it was already stored.

    On psycopg the rows go straight to a pooled DBAPI connection (SQLAlchemy's Connection
    and Result layers cost more CPU than the insert itself at Kibo's event rates), up to
    ``_MANY_MAX`` per statement (:data:`_INSERT_MANY`): one statement for n events costs
    the database and this process about half the CPU of n statements. A repeated eventId
    among the rows is stored once, for its first row. Elsewhere (SQLite) row by row.
    """
    engine = engine or db.engine
    now = utcnow()
    params = []
    for payload, tenant_id, site_id, _raw in rows:
        entity = payload.get("entityId")
        params.append(
            {
                "platform": PLATFORM,
                "platform_key": PLATFORM,
                "event_id": str(payload["eventId"])[:128],
                "tenant_id": tenant_id,
                "tenant_key": tenant_id,
                "site_id": site_id,
                "topic": str(payload["topic"]).strip().lower()[:128],
                "entity_id": None if entity is None else str(entity)[:128],
                "payload": payload,
                "received_at": now,
            }
        )
    if engine.dialect.driver != "psycopg":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return [conn.execute(_INSERT, p).first() is not None for p in params]
    pooled = engine.raw_connection()
    stored: set[str] = set()
    try:
        dbapi = pooled.driver_connection
        dbapi.autocommit = True
        for at in range(0, len(rows), _MANY_MAX):
            values: list[Any] = []
            for p, row in zip(params[at : at + _MANY_MAX], rows[at : at + _MANY_MAX], strict=True):
                values += (PLATFORM, p["event_id"], PLATFORM, p["tenant_id"], p["tenant_id"])
                values += (p["site_id"], p["topic"], p["entity_id"], _json_text(row[0], row[3]))
                values.append(now)
            sql = _INSERT_MANY[len(values) // 10]
            stored.update(event_id for (event_id,) in dbapi.execute(sql, values))
        dbapi.autocommit = False
    except Exception:
        pooled.invalidate()  # state unknown (broken, mid-statement): never back to the pool
        raise
    finally:
        pooled.close()
    inserted = []
    for p in params:
        inserted.append(p["event_id"] in stored)
        stored.discard(p["event_id"])
    return inserted


def _json_text(payload: dict[str, Any], raw: bytes | None) -> str:
    """The body as sent when it is UTF-8 (no NUL: UTF-16/32 JSON has them), else re-encoded."""
    if raw is not None and b"\x00" not in raw:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return json.dumps(payload)


def claim_tenant_events(connection_id: int) -> int:
    """Attach the tenant's events received before its connection existed; returns how many."""
    conn = db.session.get(StoreConnection, connection_id)
    if conn is None or conn.platform != PLATFORM or not conn.external_id:
        return 0
    result = db.session.execute(
        update(StoreEvent)
        .where(
            StoreEvent.platform == PLATFORM,
            StoreEvent.tenant_id == conn.external_id,
            StoreEvent.connection_id.is_(None),
        )
        .values(connection_id=conn.id)
    )
    db.session.commit()
    return result.rowcount


def _scope(connection_id: int | None, tenant_id: str | None):
    """WHERE clauses for one tenant's events (by connection, or by tenant id)."""
    clauses = [StoreEvent.platform == PLATFORM]
    if connection_id is not None:
        conn = db.session.get(StoreConnection, connection_id)
        tenant_id = tenant_id or (conn.external_id if conn else None)
        by_conn = StoreEvent.connection_id == connection_id
        if tenant_id:
            by_conn = by_conn | (
                StoreEvent.connection_id.is_(None) & (StoreEvent.tenant_id == str(tenant_id))
            )
        clauses.append(by_conn)
    elif tenant_id is not None:
        clauses.append(StoreEvent.tenant_id == str(tenant_id))
    else:
        raise ValueError("give connection_id or tenant_id")
    return clauses


def pending_events(
    connection_id: int | None = None,
    tenant_id: str | None = None,
    limit: int = 500,
    topics: Iterable[str] | None = None,
) -> list[StoreEvent]:
    """Queued events of one connection or tenant, oldest received first (at most ``limit``)."""
    stmt = select(StoreEvent).where(
        *_scope(connection_id, tenant_id), StoreEvent.status == "queued"
    )
    if topics is not None:
        stmt = stmt.where(StoreEvent.topic.in_(list(topics)))
    return list(db.session.scalars(stmt.order_by(StoreEvent.id).limit(limit)))


def _mark(ids: Iterable[int], status: str, from_statuses: tuple[str, ...]) -> int:
    ids = [int(i) for i in ids]
    if not ids:
        return 0
    done = 0
    for start in range(0, len(ids), 1000):
        done += db.session.execute(
            update(StoreEvent)
            .where(
                StoreEvent.id.in_(ids[start : start + 1000]), StoreEvent.status.in_(from_statuses)
            )
            .values(status=status, processed_at=utcnow(), attempts=StoreEvent.attempts + 1)
        ).rowcount
    db.session.commit()
    return done


def mark_applied(ids: Iterable[int]) -> int:
    """Mark queued events (row ids) applied; returns how many changed."""
    return _mark(ids, "applied", ("queued", "failed"))


def mark_ignored(ids: Iterable[int]) -> int:
    """Mark queued events (row ids) ignored (superseded or not ours); returns how many."""
    return _mark(ids, "ignored", ("queued", "failed"))


def mark_failed(ids: Iterable[int]) -> int:
    """Mark queued events failed (kept for a retry by the next run); returns how many."""
    return _mark(ids, "failed", ("queued",))


def coalesce_events(
    tenant_id: str, topics: Iterable[str], limit: int | None = None
) -> dict[str, StoreEvent]:
    """Per entity, the latest queued event of ``topics``; older ones (and per-site copies)
    are marked ``ignored`` in SQL first, so memory stays bounded by ``limit``.

    Latest = greatest Kibo ``timestamp`` (Kibo sends one fixed-width UTC format), then
    deleted > updated > created at the same instant, then the last received.
    """
    topics = list(topics)
    stamp = StoreEvent.payload["timestamp"].as_string()
    rank = case(
        (StoreEvent.topic.like("%.deleted"), 3), (StoreEvent.topic.like("%.updated"), 2), else_=1
    )
    ranked = (
        select(
            StoreEvent.id.label("id"),
            func.row_number()
            .over(
                partition_by=StoreEvent.entity_id,
                order_by=(stamp.desc(), rank.desc(), StoreEvent.id.desc()),
            )
            .label("rn"),
        )
        .where(
            StoreEvent.platform == PLATFORM,
            StoreEvent.tenant_id == str(tenant_id),
            StoreEvent.status == "queued",
            StoreEvent.topic.in_(topics),
            StoreEvent.entity_id.is_not(None),
        )
        .subquery()
    )
    db.session.execute(
        update(StoreEvent)
        .where(StoreEvent.id.in_(select(ranked.c.id).where(ranked.c.rn > 1)))
        .values(status="ignored", processed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    latest = (
        select(StoreEvent)
        .join(ranked, ranked.c.id == StoreEvent.id)
        .where(ranked.c.rn == 1)
        .order_by(StoreEvent.id)
    )
    if limit is not None:
        latest = latest.limit(limit)
    return {event.entity_id: event for event in db.session.scalars(latest)}


def coalesce_customer_events(tenant_id: str, limit: int | None = None) -> dict[str, StoreEvent]:
    """customeraccount.created/updated/deleted per customer id: the latest event each."""
    return coalesce_events(tenant_id, CUSTOMER_TOPICS, limit=limit)


def apply_application_events(tenant_id: str) -> dict[str, int]:
    """Apply the tenant's queued application.* events in timestamp order (see module doc).

    Without a connection nothing happens (the events wait). Returns ``{"applied", "ignored"}``.
    """
    counts = {"applied": 0, "ignored": 0}
    found = connection_for_tenant(tenant_id)
    if found is None:
        return counts
    # Serialise concurrent deliveries for one tenant (row lock on PostgreSQL), then re-read.
    conn = db.session.scalars(
        select(StoreConnection)
        .where(StoreConnection.id == found.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    events = db.session.scalars(
        select(StoreEvent).where(
            StoreEvent.platform == PLATFORM,
            StoreEvent.tenant_id == str(tenant_id),
            StoreEvent.status == "queued",
            StoreEvent.topic.in_(APPLICATION_TOPICS),
        )
    ).all()

    def order(e: StoreEvent) -> tuple[str, int]:
        return (event_instant(e.payload.get("timestamp")) or "", e.id)

    settings = dict(conn.settings or {})
    app_state = dict(settings.get("kibo_app") or {})
    stamps = dict(app_state.get("stamps") or {})
    for event in sorted(events, key=order):
        instant = event_instant(event.payload.get("timestamp")) or _received_instant(event)
        changed = False
        for name, value in _WRITES[event.topic].items():
            if instant > stamps.get(name, ""):
                stamps[name] = instant
                was = settings.get(name)
                settings[name] = value
                if name == "installed" and was is not value:
                    _installed_changed(conn, app_state, value)
                changed = True
        event.connection_id = conn.id
        event.status = "applied" if changed else "ignored"
        event.processed_at = utcnow()
        event.attempts += 1
        counts["applied" if changed else "ignored"] += 1
    app_state["stamps"] = stamps
    settings["kibo_app"] = app_state
    conn.settings = settings
    db.session.commit()
    return counts


def _received_instant(event: StoreEvent) -> str:
    return event.received_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _installed_changed(conn: StoreConnection, app_state: dict[str, Any], installed: bool) -> None:
    """Uninstall disconnects the tenant's connection; a newer install revives it."""
    if not installed and conn.status != "disconnected":
        app_state["resume_status"] = conn.status
        conn.status, conn.status_reason = "disconnected", UNINSTALLED_REASON
    elif installed and conn.status == "disconnected" and conn.status_reason == UNINSTALLED_REASON:
        conn.status = app_state.pop("resume_status", None) or "waiting_for_store"
        conn.status_reason = None
