"""Custom-segment rules: validation with error paths, and the compiled SQL's members on SQLite
and PostgreSQL for every field and op, AND / OR, and the boundaries (checked against a Python
oracle and against hand-pinned sets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from marshmallow import ValidationError
from sqlalchemy import false, func, inspect, select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    Customer,
    Merchant,
    Order,
    OrderItem,
    Segment,
    SegmentTransition,
    StoreConnection,
)
from cc_storeplugin.segments.custom_rules import (
    MAX_CONDITIONS,
    SegmentIn,
    flatten_errors,
    parse_value,
)
from cc_storeplugin.segments.custom_sql import compile_rule
from cc_storeplugin.segments.evaluate import evaluate_segments, transitions_for

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
EVIL_SKU = "O'Brien; DROP TABLE customers; --"


def cond(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def errors_of(body: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        SegmentIn().load(body)
    return flatten_errors(info.value.messages)


# --- validation ------------------------------------------------------------------------

GOOD = cond("purchase_count", "gte", 2)


@pytest.mark.parametrize(
    ("rule", "path", "words"),
    [
        ({"all": [cond("lifetime_value", "gt", 3)]}, "rule.all.0.field", "unknown field"),
        ({"all": [cond("purchased_sku", "gt", 3)]}, "rule.all.0.op", "use one of: in, not_in"),
        ({"all": [cond("last_purchase_at", "eq", "2026-01-01")]}, "rule.all.0.op", "within"),
        ({"all": [cond("purchase_count", "gte", "2")]}, "rule.all.0.value", "whole number"),
        ({"all": [cond("purchase_count", "gte", True)]}, "rule.all.0.value", "whole number"),
        ({"all": [cond("purchase_count", "gte", -1)]}, "rule.all.0.value", "between 0"),
        ({"all": [cond("total_spent", "gt", 9.999)]}, "rule.all.0.value", "2 decimal"),
        ({"all": [cond("total_spent", "gt", "100")]}, "rule.all.0.value", "number"),
        ({"all": [cond("total_spent", "between", [50, 10])]}, "rule.all.0.value", "low bound"),
        ({"all": [cond("average_order_value", "between", [1])]}, "rule.all.0.value", "two"),
        ({"all": [cond("last_purchase_at", "within", "2026-01-01")]}, "rule.all.0.value", "days"),
        (
            {"all": [cond("last_purchase_at", "before", {"days_ago": -3})]},
            "rule.all.0.value",
            "days_ago",
        ),
        (
            {"all": [cond("first_purchase_at", "after", "2026-13-01")]},
            "rule.all.0.value",
            "ISO",
        ),
        (
            {"all": [cond("first_purchase_at", "before", "2026-01-01T10:00:00")]},
            "rule.all.0.value",
            "UTC offset",
        ),
        (
            {"all": [cond("first_purchase_at", "between", [{"days_ago": 9}, "2026-01-01"])]},
            "rule.all.0.value",
            "two ISO dates",
        ),
        ({"all": [cond("purchased_category", "in", "Shoes")]}, "rule.all.0.value", "list"),
        ({"all": [cond("purchased_sku", "in", [])]}, "rule.all.0.value", "list"),
        ({"all": [cond("customer_group", "eq", ["a"])]}, "rule.all.0.value", "string"),
        ({"all": [cond("consent_state", "eq", "maybe")]}, "rule.all.0.value", "subscribed"),
        ({"all": [{"field": "purchase_count", "op": "gte"}]}, "rule.all.0.value", "required"),
        ({"all": [{**GOOD, "negate": True}]}, "rule.all.0.negate", "Unknown"),
        ({"all": [GOOD, 7]}, "rule.all.1", "must be an object"),
        ({"all": []}, "rule.all", "1 to 20 items"),
        ({"all": [GOOD], "any": [GOOD]}, "rule.any", "not both"),
        (GOOD, "rule", "must be a group"),
        ({"all": [{"any": [{"all": [{"any": [{"all": [GOOD]}]}]}]}]}, "rule", "4 deep"),
        ({"all": [{"all": [GOOD] * 20}] * 3}, "rule", f"at most {MAX_CONDITIONS}"),
        (
            {"any": [GOOD, {"all": [GOOD, cond("total_spent", "gte", None)]}]},
            "rule.any.1.all.1.value",
            "null",
        ),
    ],
)
def test_bad_rules_are_refused_with_the_path_of_the_field(rule, path, words):
    errors = errors_of({"name": "VIP", "rule": rule})
    assert path in errors, errors
    assert words in " ".join(errors[path])


def test_every_error_of_a_rule_is_reported_at_once_and_names_are_checked():
    errors = errors_of(
        {
            "name": "  ",
            "rule": {
                "all": [
                    cond("nope", "eq", 1),
                    {"any": [GOOD, cond("consent_state", "in", ["yes"])]},
                ]
            },
        }
    )
    assert set(errors) == {"name", "rule.all.0.field", "rule.all.1.any.1.value"}
    assert errors_of({"rule": {"all": [GOOD]}}) == {"name": ["Missing data for required field."]}
    assert "name" in errors_of({"name": "tab\there", "rule": {"all": [GOOD]}})


def test_a_good_rule_loads_unchanged_and_the_name_is_tidied():
    rule = {
        "all": [
            GOOD,
            {
                "any": [
                    cond("last_purchase_at", "within", {"days_ago": 30}),
                    cond("purchased_sku", "in", ["A-1", "B-2"]),
                    cond("first_purchase_at", "between", ["2026-01-01", "2026-03-31T00:00:00Z"]),
                ]
            },
        ]
    }
    assert SegmentIn().load({"name": "  Big   spenders ", "rule": rule}) == {
        "name": "Big spenders",
        "rule": rule,
    }


def test_dates_parse_to_utc_bounds():
    day = parse_value("first_purchase_at", "after", "2026-01-31")
    assert day.resolve(NOW) == datetime(2026, 1, 31, tzinfo=UTC)
    assert day.end == datetime(2026, 2, 1, tzinfo=UTC)
    at = parse_value("first_purchase_at", "before", "2026-01-31T10:00:00+02:00")
    assert at.resolve(NOW) == datetime(2026, 1, 31, 8, tzinfo=UTC)
    assert (
        parse_value("last_purchase_at", "within", {"days_ago": 30}).resolve(NOW) == NOW - 30 * DAY
    )
    assert parse_value("total_spent", "between", [0.3, 99.99]) == (30, 9999)


# --- compiled SQL: members on both databases --------------------------------------------

PEOPLE: dict[str, dict[str, Any]] = {
    "a": dict(n=0, spent="0", first=None, last=None, group=None, consent="not_set", items=[]),
    "b": dict(
        n=1,
        spent="100.00",
        first=NOW - 30 * DAY,
        last=NOW - 30 * DAY,  # exactly on the 30-day boundary
        group="retail",
        consent="subscribed",
        items=[("SKU-1", "Shoes", True)],
    ),
    "c": dict(
        n=3,
        spent="0.30",  # average order exactly 0.10
        first=NOW - 200 * DAY,
        last=NOW - 30 * DAY - timedelta(seconds=1),
        group="wholesale",
        consent="unsubscribed",
        items=[("SKU-2", "Hats", True)],
    ),
    "d": dict(
        n=2,
        spent="99.99",  # average 49.995
        first=NOW - 400 * DAY,
        last=NOW - 120 * DAY,  # exactly on the 120-day boundary
        group="retail",
        consent="subscribed",
        items=[("SKU-1", "Shoes", True), ("SKU-3", "Socks", True), ("SKU-9", "Gifts", False)],
    ),
    "e": dict(
        n=5,
        spent="1250.50",
        first=datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
        last=datetime(2026, 1, 1, tzinfo=UTC),
        group=None,
        consent="not_set",
        items=[(EVIL_SKU, None, True)],
    ),
}


def seed(conn_id: int, people: dict[str, dict[str, Any]], domain: str = "x.io") -> None:
    """Customers with their stats, and orders (purchases or not) carrying their items."""
    for name, p in people.items():
        c = Customer(
            connection_id=conn_id,
            email=f"{name}@{domain}",
            purchase_count=p["n"],
            total_spent=Decimal(p["spent"]),
            first_purchase_at=p["first"],
            last_purchase_at=p["last"],
            customer_group=p["group"],
            consent_state=p["consent"],
        )
        db.session.add(c)
        db.session.flush()
        for i, (sku, category, purchase) in enumerate(p["items"]):
            order = Order(
                connection_id=conn_id,
                platform_order_id=f"{domain}-{name}-{i}",
                customer_id=c.id,
                email=c.email,
                state="complete" if purchase else "canceled",
                is_purchase=purchase,
                grand_total=Decimal("10"),
                placed_at=p["last"] or NOW,
            )
            db.session.add(order)
            db.session.flush()
            db.session.add(
                OrderItem(connection_id=conn_id, order_id=order.id, sku=sku, category=category)
            )
    db.session.commit()


@pytest.fixture
def mirror(any_db_app) -> int:
    merchant = Merchant(cc_account_id="acct-rules", name="Acme")
    conn = StoreConnection(merchant=merchant, platform="magento")
    other = StoreConnection(merchant=merchant, platform="kibo")
    db.session.add_all([conn, other])
    db.session.commit()
    seed(conn.id, PEOPLE)
    # another connection's buyer of SKU-1 with many purchases: never a member here
    seed(other.id, {"z": {**PEOPLE["d"], "n": 9}}, domain="other.io")
    return conn.id


def members(conn_id: int, rule: dict[str, Any], now: datetime = NOW) -> set[str]:
    matches = func.coalesce(compile_rule(rule, now), false())
    emails = db.session.scalars(
        select(Customer.email).where(Customer.connection_id == conn_id, matches)
    )
    return {e.split("@")[0] for e in emails}


def _instant(bound: Any, now: datetime) -> datetime:
    return bound.resolve(now)


def oracle_matches(p: dict[str, Any], node: dict[str, Any], now: datetime) -> bool:
    """The rule's meaning in plain Python over one person's figures (independent of the SQL)."""
    if "all" in node:
        return all(oracle_matches(p, n, now) for n in node["all"])
    if "any" in node:
        return any(oracle_matches(p, n, now) for n in node["any"])
    field, op, raw = node["field"], node["op"], node["value"]
    value = parse_value(field, op, raw)
    compare = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    if field in ("purchase_count", "total_spent", "average_order_value"):
        if field == "purchase_count":
            mine = Fraction(p["n"])
        elif field == "total_spent":
            mine = Fraction(Decimal(p["spent"]))
        else:
            if p["n"] == 0:
                return False
            mine = Fraction(Decimal(p["spent"])) / p["n"]
        scale = 1 if field == "purchase_count" else Fraction(1, 100)
        if op == "between":
            return value[0] * scale <= mine <= value[1] * scale
        return compare[op](mine, value * scale)
    if field in ("first_purchase_at", "last_purchase_at"):
        at = p["first" if field == "first_purchase_at" else "last"]
        if at is None:
            return False
        if op == "between":
            return value[0].resolve(now) <= at < value[1].end
        bound = value.resolve(now)
        return at < bound if op == "before" else at >= bound
    if field in ("purchased_sku", "purchased_category"):
        index = 0 if field == "purchased_sku" else 1
        bought = {item[index] for item in p["items"] if item[2]}
        hit = bool(bought & set(value))
        return hit if op == "in" else not hit
    mine = p["group" if field == "customer_group" else "consent"]
    if op == "eq":
        return mine == value
    if op == "ne":
        return mine != value
    return (mine in value) if op == "in" else (mine not in value)


def oracle(rule: dict[str, Any], now: datetime = NOW) -> set[str]:
    return {name for name, p in PEOPLE.items() if oracle_matches(p, rule, now)}


CASES: list[tuple[dict[str, Any], set[str]]] = [
    (cond("purchase_count", "eq", 0), {"a"}),
    (cond("purchase_count", "ne", 3), {"a", "b", "d", "e"}),
    (cond("purchase_count", "gt", 4), {"e"}),
    (cond("purchase_count", "gte", 2), {"c", "d", "e"}),
    (cond("purchase_count", "lt", 1), {"a"}),
    (cond("purchase_count", "lte", 1), {"a", "b"}),
    (cond("purchase_count", "between", [1, 2]), {"b", "d"}),
    (cond("total_spent", "gte", 100), {"b", "e"}),
    (cond("total_spent", "lt", 100.00), {"a", "c", "d"}),
    (cond("total_spent", "eq", 99.99), {"d"}),
    (cond("total_spent", "between", [0.3, 99.99]), {"c", "d"}),
    (cond("average_order_value", "eq", 0.1), {"c"}),
    (cond("average_order_value", "gt", 0.1), {"b", "d", "e"}),
    (cond("average_order_value", "lte", 50), {"c", "d"}),  # never the contact without orders
    (cond("average_order_value", "gte", 49.99), {"b", "d", "e"}),
    (cond("average_order_value", "ne", 100), {"c", "d", "e"}),
    (cond("average_order_value", "between", [0.1, 49.99]), {"c"}),
    (cond("last_purchase_at", "within", {"days_ago": 30}), {"b"}),
    (cond("last_purchase_at", "before", {"days_ago": 30}), {"c", "d", "e"}),
    (cond("last_purchase_at", "before", {"days_ago": 120}), {"e"}),
    (cond("last_purchase_at", "after", {"days_ago": 120}), {"b", "c", "d"}),
    (cond("last_purchase_at", "after", "2026-01-01"), {"b", "c", "d", "e"}),
    (cond("last_purchase_at", "before", "2026-01-01"), set()),
    (cond("first_purchase_at", "before", "2026-01-01"), {"d", "e"}),
    (cond("first_purchase_at", "between", ["2025-12-31", "2025-12-31"]), {"e"}),
    (cond("first_purchase_at", "after", "2026-01-01T00:00:00Z"), {"b", "c"}),
    (
        cond("first_purchase_at", "between", ["2025-01-01", "2025-12-31T23:59:58Z"]),
        {"d"},
    ),
    (cond("purchased_sku", "in", ["SKU-1"]), {"b", "d"}),
    (cond("purchased_sku", "in", ["SKU-9"]), set()),  # only on a cancelled order
    (cond("purchased_sku", "not_in", ["SKU-1"]), {"a", "c", "e"}),
    (cond("purchased_sku", "in", [EVIL_SKU]), {"e"}),
    (cond("purchased_category", "in", ["Shoes"]), {"b", "d"}),
    (cond("purchased_category", "not_in", ["Shoes", "Hats"]), {"a", "e"}),
    (cond("customer_group", "eq", "retail"), {"b", "d"}),
    (cond("customer_group", "ne", "retail"), {"a", "c", "e"}),
    (cond("customer_group", "in", ["wholesale", "vip"]), {"c"}),
    (cond("customer_group", "not_in", ["retail"]), {"a", "c", "e"}),
    (cond("consent_state", "eq", "unsubscribed"), {"c"}),
    (cond("consent_state", "ne", "unsubscribed"), {"a", "b", "d", "e"}),
    (cond("consent_state", "in", ["subscribed", "not_set"]), {"a", "b", "d", "e"}),
    (cond("consent_state", "not_in", ["subscribed"]), {"a", "c", "e"}),
]


def test_every_field_and_op_selects_the_expected_contacts(mirror):
    for condition, expected in CASES:
        rule = {"all": [condition]}
        SegmentIn().load({"name": "t", "rule": rule})  # every case is a valid rule
        assert oracle(rule) == expected, ("oracle", condition)
        assert members(mirror, rule) == expected, condition


def test_and_or_nest_and_match_the_oracle(mirror):
    rules = [
        {
            "all": [
                cond("purchase_count", "gte", 2),
                {
                    "any": [
                        cond("customer_group", "eq", "retail"),
                        cond("consent_state", "eq", "unsubscribed"),
                    ]
                },
            ]
        },
        {
            "any": [
                {
                    "all": [
                        cond("purchased_sku", "in", ["SKU-1"]),
                        cond("last_purchase_at", "within", {"days_ago": 30}),
                    ]
                },
                cond("purchase_count", "eq", 0),
            ]
        },
        {
            "all": [
                {"any": [{"all": [cond("total_spent", "gt", 0)]}]},
                cond("average_order_value", "lt", 60),
            ]
        },
        {"any": [cond("purchased_sku", "in", ["nothing"]), cond("customer_group", "eq", "x")]},
    ]
    expected = [{"c", "d"}, {"a", "b"}, {"c", "d"}, set()]
    for rule, want in zip(rules, expected, strict=True):
        assert oracle(rule) == want
        assert members(mirror, rule) == want


def test_time_rules_follow_the_injected_now(mirror):
    rule = {"all": [cond("last_purchase_at", "within", {"days_ago": 30})]}
    assert members(mirror, rule, NOW) == {"b"}
    assert members(mirror, rule, NOW + timedelta(seconds=1)) == set()
    assert members(mirror, rule, NOW - timedelta(seconds=1)) == {"b", "c"}


def test_values_are_bound_parameters_never_sql_text(mirror):
    rule = {"all": [cond("purchased_sku", "in", [EVIL_SKU]), cond("customer_group", "ne", "x")]}
    sql = str(compile_rule(rule, NOW).compile(db.engine))
    assert "DROP" not in sql and "O'Brien" not in sql and "'x'" not in sql
    assert members(mirror, rule) == {"e"}
    assert inspect(db.engine).has_table("customers")


# --- evaluation with the built-ins: memberships and transitions with reasons -----------


def test_custom_segments_are_evaluated_with_the_builtins_and_log_reasons(mirror):
    rule = {
        "all": [
            cond("purchase_count", "gte", 2),
            cond("total_spent", "lt", 1000),
            cond("last_purchase_at", "before", {"days_ago": 100}),
        ]
    }
    seg = Segment(connection_id=mirror, key="custom-t", name="Magento \u2013 Savers", kind="custom")
    seg.rule = rule
    broken = Segment(
        connection_id=mirror, key="custom-b", name="Magento \u2013 Broken", kind="custom"
    )
    broken.rule = {"all": [cond("purchase_count", "gte", "two")]}  # stored before a schema change
    db.session.add_all([seg, broken])
    db.session.commit()

    results = evaluate_segments(mirror, NOW, run_id=None)
    assert results["custom-t"] == {"entered": 1, "left": 0, "members": 1}
    assert "custom-b" not in results  # skipped, the rest went on
    assert results["all"]["members"] == 5 and results["repeat"]["members"] == 3
    d = db.session.scalar(select(Customer.id).where(Customer.email == "d@x.io"))
    history = [t["reason"] for t in transitions_for(d) if t["segment_key"] == "custom-t"]
    assert history == [
        "entered Savers: matches its rules (2 purchases, spent 99.99, last purchase 2026-07-26)"
    ]

    db.session.execute(Customer.__table__.update().where(Customer.id == d).values(purchase_count=1))
    db.session.commit()
    assert evaluate_segments(mirror, NOW + DAY, segment_ids=[seg.id])["custom-t"] == {
        "entered": 0,
        "left": 1,
        "members": 0,
    }
    history = [t["reason"] for t in transitions_for(d) if t["segment_key"] == "custom-t"]
    assert history[-1] == (
        "left Savers: no longer matches its rules (1 purchase, spent 99.99, "
        "last purchase 2026-07-26)"
    )
    assert (
        db.session.scalar(select(func.count()).where(SegmentTransition.segment_id == broken.id))
        == 0
    )
