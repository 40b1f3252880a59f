"""The five built-in segments (DESIGN "Built-in segments"): names, SQL rules and SQL reasons.

Every rule is a boolean expression over the ``customers`` table for one injected ``now``
(an aware UTC instant, one per run); nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, literal, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Segment, StoreConnection
from cc_storeplugin.models.base import UTCDateTime
from cc_storeplugin.models.segments import BUILTIN_KEYS
from cc_storeplugin.segments.sqlutil import counted, utc_date_text, whole_days_between

RECENT_DAYS = 30
LAPSED_DAYS = 120
PLATFORM_LABELS = {"magento": "Magento", "kibo": "Kibo"}


@dataclass(frozen=True)
class BuiltinSegment:
    """A built-in segment: its key, the word used in reasons, and its list-name suffix."""

    key: str
    label: str
    list_suffix: str


BUILTINS: dict[str, BuiltinSegment] = {
    b.key: b
    for b in (
        BuiltinSegment("all", "All", "All Customers"),
        BuiltinSegment("first_time", "First-time", "First-time Customers"),
        BuiltinSegment("repeat", "Repeat", "Repeat Customers"),
        BuiltinSegment("recent", "Recent", "Recent Customers"),
        BuiltinSegment("lapsed", "Lapsed", "Lapsed Customers"),
    )
}
assert tuple(BUILTINS) == BUILTIN_KEYS


def list_name(platform: str, key: str) -> str:
    """The exact CC list name, e.g. 'Magento – Recent Customers' (an en dash, U+2013)."""
    return f"{PLATFORM_LABELS[platform]} \u2013 {BUILTINS[key].list_suffix}"


def _check_now(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware UTC datetime")
    return now


def _instant(now: datetime) -> ColumnElement[datetime]:
    return literal(_check_now(now), UTCDateTime())


def rule(key: str, now: datetime) -> ColumnElement[bool]:
    """The membership condition of built-in segment ``key`` at instant ``now``.

    Never NULL for a customer row, so ``NOT rule`` selects exactly the non-members.
    """
    _check_now(now)
    last = Customer.last_purchase_at
    if key == "all":
        return true()
    if key == "first_time":
        return Customer.purchase_count == 1
    if key == "repeat":
        return Customer.purchase_count >= 2
    if key == "recent":
        return and_(last.is_not(None), last >= now - timedelta(days=RECENT_DAYS))
    if key == "lapsed":
        return and_(
            Customer.purchase_count >= 1,
            last.is_not(None),
            last < now - timedelta(days=LAPSED_DAYS),
        )
    raise KeyError(f"not a built-in segment: {key!r}")


def _last_purchase_text(now: datetime) -> ColumnElement[str]:
    last = Customer.last_purchase_at
    days = whole_days_between(_instant(now), last)
    said = "last purchase " + utc_date_text(last) + ", " + counted(days, "day ago", "days ago")
    return case((last.is_(None), "no purchases"), else_=said)


def reason(key: str, action: str, now: datetime, *, first_evaluation: bool) -> ColumnElement[str]:
    """Why a customer entered or left segment ``key``, as SQL text over their row.

    E.g. 'entered Recent: last purchase 2026-11-01, 22 days ago', 'entered Repeat: 2 purchases'.
    """
    prefix = f"{action} {BUILTINS[key].label}: "
    if key == "all":
        if action == "left":
            return literal(prefix + "no longer a contact of the store")
        why = "customer since first import" if first_evaluation else "new contact in the store"
        return literal(prefix + why)
    if key in ("first_time", "repeat"):
        return prefix + counted(Customer.purchase_count, "purchase", "purchases")
    return prefix + _last_purchase_text(now)


def ensure_builtin_segments(connection_id: int) -> list[Segment]:
    """Create the connection's five built-in segments if missing (idempotent); return them in order.

    Named for the connection's platform ("Magento – …" / "Kibo – …"). Commits when it adds any.
    """
    connection = db.session.get(StoreConnection, connection_id)
    if connection is None:
        raise LookupError(f"no store connection {connection_id}")
    for _attempt in range(2):
        existing = _builtins_of(connection_id)
        missing = [key for key in BUILTIN_KEYS if key not in existing]
        if not missing:
            return [existing[key] for key in BUILTIN_KEYS]
        db.session.add_all(
            Segment(
                connection_id=connection_id,
                key=key,
                name=list_name(connection.platform, key),
                kind="builtin",
            )
            for key in missing
        )
        try:
            db.session.commit()
        except IntegrityError:
            # Another worker created them at the same moment; read theirs.
            db.session.rollback()
    existing = _builtins_of(connection_id)
    return [existing[key] for key in BUILTIN_KEYS]


def _builtins_of(connection_id: int) -> dict[str, Segment]:
    rows = db.session.scalars(
        select(Segment).where(Segment.connection_id == connection_id, Segment.kind == "builtin")
    )
    return {s.key: s for s in rows}
