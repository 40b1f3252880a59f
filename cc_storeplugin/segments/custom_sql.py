"""Custom-segment rules compiled to SQLAlchemy boolean expressions over ``customers``.

Every value travels as a bound parameter; ``now`` is injected (one instant per run), never
read here. Money is compared in whole cents so SQLite (floating point) and PostgreSQL
(numeric) agree at the boundaries; an average order value ``op v`` is
``total_spent op v × purchase_count`` for customers with purchases (no division).
SKU / category conditions are EXISTS over the items of the customer's purchases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, and_, cast, exists, false, func, literal, or_, true
from sqlalchemy.sql.elements import ColumnElement

from cc_storeplugin.models import Customer, Order, OrderItem
from cc_storeplugin.segments.custom_rules import parse_value
from cc_storeplugin.segments.sqlutil import counted, money_text, utc_date_text

COMPARE = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _check_now(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware UTC datetime")
    return now


def compile_rule(rule: dict[str, Any], now: datetime) -> ColumnElement[bool]:
    """The membership condition of a validated rule at instant ``now``.

    May be NULL for a row only where SQL comparisons meet NULLs; callers treat NULL as
    "not a member" (the tree has no NOT, so NULL and false are interchangeable in it).
    """
    _check_now(now)
    return _node(rule, now)


def _node(node: dict[str, Any], now: datetime) -> ColumnElement[bool]:
    if "all" in node:
        return and_(true(), *(_node(n, now) for n in node["all"]))
    if "any" in node:
        return or_(false(), *(_node(n, now) for n in node["any"]))
    return condition(node["field"], node["op"], node["value"], now)


def _cents_of(column: Any) -> ColumnElement[int]:
    return cast(func.round(column * 100), BigInteger)


def _number(column: Any, op: str, value: Any, scale: Any = None) -> ColumnElement[bool]:
    """``column op value`` (× ``scale`` on the value side, for averages)."""

    def bound(v: int) -> Any:
        b = literal(v, BigInteger())
        return b * scale if scale is not None else b

    if op == "between":
        low, high = value
        return and_(column >= bound(low), column <= bound(high))
    return COMPARE[op](column, bound(value))


def _date(column: Any, op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    present = column.is_not(None)
    if op == "between":
        low, high = value
        return and_(present, column >= low.resolve(now), column < high.end)
    bound = value.resolve(now)
    if op == "before":
        return and_(present, column < bound)
    return and_(present, column >= bound)  # within / after: on or after the bound


def _purchased(column: Any, op: str, values: list[str]) -> ColumnElement[bool]:
    bought = exists().where(
        OrderItem.order_id == Order.id,
        Order.customer_id == Customer.id,
        Order.connection_id == Customer.connection_id,
        Order.is_purchase,
        column.in_(values),
    )
    return bought if op == "in" else ~bought


def _text(column: Any, op: str, value: Any, nullable: bool) -> ColumnElement[bool]:
    if op == "eq":
        return column == value
    if op == "in":
        return column.in_(value)
    differs = column != value if op == "ne" else column.not_in(value)
    return or_(column.is_(None), differs) if nullable else differs


def condition(field: str, op: str, raw: Any, now: datetime) -> ColumnElement[bool]:
    """One condition as SQL (the value parsed exactly as validation parsed it)."""
    value = parse_value(field, op, raw)
    if field == "purchase_count":
        return _number(Customer.purchase_count, op, value)
    if field == "total_spent":
        return _number(_cents_of(Customer.total_spent), op, value)
    if field == "average_order_value":
        count = Customer.purchase_count
        return and_(count > 0, _number(_cents_of(Customer.total_spent), op, value, scale=count))
    if field in ("first_purchase_at", "last_purchase_at"):
        return _date(getattr(Customer, field), op, value, now)
    if field == "purchased_sku":
        return _purchased(OrderItem.sku, op, value)
    if field == "purchased_category":
        return _purchased(OrderItem.category, op, value)
    if field == "customer_group":
        return _text(Customer.customer_group, op, value, nullable=True)
    if field == "consent_state":
        return _text(Customer.consent_state, op, value, nullable=False)
    raise KeyError(f"unknown field {field!r}")


# --- reasons ----------------------------------------------------------------------------


def _fields_of(node: dict[str, Any]) -> list[str]:
    """The fields a rule uses, in first-seen order."""
    seen: list[str] = []
    stack = [node]
    while stack:
        n = stack.pop(0)
        stack.extend(n.get("all") or n.get("any") or [])
        if "field" in n and n["field"] not in seen:
            seen.append(n["field"])
    return seen


def _figure(field: str) -> ColumnElement[str] | None:
    """The customer's own figure for a field, as text for the reason (None: not shown)."""
    c = Customer
    if field == "purchase_count":
        return counted(c.purchase_count, "purchase", "purchases")
    if field == "total_spent":
        return "spent " + money_text(c.total_spent)
    if field == "average_order_value":
        average = money_text(c.total_spent * 1.0 / func.nullif(c.purchase_count, 0))
        return "average order " + func.coalesce(average, "none")
    if field in ("first_purchase_at", "last_purchase_at"):
        word = "first" if field == "first_purchase_at" else "last"
        day = func.coalesce(utc_date_text(getattr(c, field)), "none")
        return f"{word} purchase " + day
    if field == "customer_group":
        return "group " + func.coalesce(c.customer_group, "none")
    if field == "consent_state":
        return "consent " + c.consent_state
    return None


def reasons(name: str, rule: dict[str, Any]) -> tuple[ColumnElement[str], ColumnElement[str]]:
    """SQL texts for 'entered' / 'left' transitions of segment ``name``, with the figures the
    rule looks at, e.g. 'entered VIP: matches its rules (3 purchases, spent 250.00)'."""
    figures = [f for f in (_figure(field) for field in _fields_of(rule)) if f is not None]
    entered = literal(f"entered {name}: matches its rules")
    left = literal(f"left {name}: no longer matches its rules")
    if not figures:
        return entered, left
    joined = figures[0]
    for figure in figures[1:]:
        joined = joined + ", " + figure
    return entered + " (" + joined + ")", left + " (" + joined + ")"
