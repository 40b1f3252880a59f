"""A Kibo connection's app settings (the configuration page's Settings tab) and schedule.

Stored in ``StoreConnection.settings["kibo"]``; ``settings["enabled"]`` (set by Enable App
and by application.enabled / disabled events) turns event processing on or off. This module
is the one place both the configuration page and the sync jobs read and write them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection, SyncRun

DEFAULT_INTERVAL_S = 30 * 60


@dataclass
class KiboSettings:
    """What the merchant chose on the Settings tab."""

    list_id: str | None = None
    list_name: str | None = None
    welcome_email: bool = False
    from_email: str | None = None
    reply_to_email: str | None = None


def load(conn: StoreConnection) -> KiboSettings:
    """The connection's saved settings (defaults where nothing was saved)."""
    raw = (conn.settings or {}).get("kibo") or {}
    names = {f.name for f in fields(KiboSettings)}
    return KiboSettings(**{k: v for k, v in raw.items() if k in names})


def save(conn: StoreConnection, value: KiboSettings) -> None:
    """Replace the saved settings (a new dict, so SQLAlchemy sees the JSON change)."""
    conn.settings = {**(conn.settings or {}), "kibo": asdict(value)}


def is_enabled(conn: StoreConnection) -> bool:
    """Event processing runs only for an installed, enabled app."""
    settings = conn.settings or {}
    return bool(settings.get("enabled")) and settings.get("installed", True) is not False


def set_enabled(conn: StoreConnection, enabled: bool) -> None:
    conn.settings = {**(conn.settings or {}), "enabled": enabled}


def interval_s(kind: str = "events") -> int:
    """Seconds between event flushes ("events") or unsubscribe polls ("unsubscribes").

    KIBO_EVENTS_INTERVAL_S / KIBO_UNSUBSCRIBES_INTERVAL_S; 30 minutes by default, down to 60 s
    for near-real-time processing.
    """
    key = "KIBO_EVENTS_INTERVAL_S" if kind == "events" else "KIBO_UNSUBSCRIBES_INTERVAL_S"
    return max(60, int(current_app.config.get(key) or DEFAULT_INTERVAL_S))


def next_run_at(connection_id: int, kind: str, now: datetime) -> datetime:
    """When the next flush / poll of this connection is due: last run's start + interval."""
    last = db.session.scalar(
        select(func.max(func.coalesce(SyncRun.started_at, SyncRun.created_at))).where(
            SyncRun.connection_id == connection_id, SyncRun.kind == kind
        )
    )
    if last is None:
        return now
    return max(now, last + timedelta(seconds=interval_s(kind)))


def as_json(conn: StoreConnection) -> dict[str, Any]:
    return {**asdict(load(conn)), "enabled": is_enabled(conn)}
