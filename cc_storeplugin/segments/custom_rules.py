"""Custom-segment rules: marshmallow schemas for a bounded AND / OR tree of conditions.

A rule is a group ``{"all": [...]}`` (AND) or ``{"any": [...]}`` (OR) whose items are groups
or conditions ``{"field", "op", "value"}``. Each field allows the ops of its kind and one
value shape; ``parse_value`` turns a checked value into what the SQL compiler binds, so
validation and compilation can never disagree. Errors name their path, e.g.
``rule.all.1.value``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from cc_storeplugin.models.customers import CONSENT_STATES

MAX_DEPTH = 4  # groups nested inside the top group, top included
MAX_CONDITIONS = 50
MAX_ITEMS = 20  # items of one group
MAX_VALUES = 100  # SKUs / categories / groups in one list
MAX_DAYS = 36_500
MAX_COUNT = 1_000_000_000
MAX_MONEY = Decimal("1000000000")

NUMBER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")
DATE_OPS = ("within", "before", "after", "between")
LIST_OPS = ("in", "not_in")
TEXT_OPS = ("eq", "ne", "in", "not_in")

# field -> kind; a kind fixes the ops and the value shape.
FIELDS: dict[str, str] = {
    "purchase_count": "count",
    "total_spent": "money",
    "average_order_value": "money",
    "first_purchase_at": "date",
    "last_purchase_at": "date",
    "purchased_sku": "items",
    "purchased_category": "items",
    "customer_group": "text",
    "consent_state": "consent",
}
OPS: dict[str, tuple[str, ...]] = {
    "count": NUMBER_OPS,
    "money": NUMBER_OPS,
    "date": DATE_OPS,
    "items": LIST_OPS,
    "text": TEXT_OPS,
    "consent": TEXT_OPS,
}


@dataclass(frozen=True)
class Instant:
    """A date bound: ``days_ago`` before the run's ``now``, or a fixed UTC instant.

    ``end`` is the instant just after an inclusive absolute bound (the next midnight for a
    plain date, the instant itself otherwise)."""

    days_ago: int | None = None
    at: datetime | None = None
    end: datetime | None = None

    def resolve(self, now: datetime) -> datetime:
        if self.days_ago is not None:
            return now - timedelta(days=self.days_ago)
        assert self.at is not None
        return self.at


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be a whole number")
    if not 0 <= value <= MAX_COUNT:
        raise ValueError(f"must be between 0 and {MAX_COUNT}")
    return value


def _cents(value: Any) -> int:
    """A money amount (a JSON number, at most 2 decimals) as whole cents."""
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError("must be a number such as 49.90")
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:  # pragma: no cover - str of a finite number parses
        raise ValueError("must be a number such as 49.90") from exc
    if not 0 <= amount <= MAX_MONEY:
        raise ValueError(f"must be between 0 and {MAX_MONEY}")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError("must have at most 2 decimal places")
    return int(cents)


def _when(value: Any) -> Instant:
    """{"days_ago": n}, an ISO date (midnight UTC) or an ISO date-time with an offset."""
    if isinstance(value, dict):
        if set(value) != {"days_ago"}:
            raise ValueError('must be {"days_ago": n} or an ISO date such as "2026-01-31"')
        days = value["days_ago"]
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_DAYS:
            raise ValueError(f"days_ago must be a whole number from 0 to {MAX_DAYS}")
        return Instant(days_ago=days)
    if not isinstance(value, str):
        raise ValueError('must be {"days_ago": n} or an ISO date such as "2026-01-31"')
    text = value.strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD)") from exc
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return Instant(at=start, end=start + timedelta(days=1))
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO date or date-time") from exc
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a date-time needs a UTC offset, e.g. 2026-01-31T12:00:00Z")
    at = at.astimezone(UTC)
    return Instant(at=at, end=at + timedelta(microseconds=1))


def _text(value: Any, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    if len(value.strip()) > max_len:
        raise ValueError(f"must be at most {max_len} characters")
    return value.strip()


def _texts(value: Any, max_len: int) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of strings")
    if len(value) > MAX_VALUES:
        raise ValueError(f"must hold at most {MAX_VALUES} values")
    return sorted({_text(v, max_len) for v in value})


def _consent(value: Any) -> str:
    if value not in CONSENT_STATES:
        raise ValueError(f"must be one of: {', '.join(CONSENT_STATES)}")
    return value


def _pair(value: Any, one: Any) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError("between takes a list of two bounds [low, high]")
    low, high = one(value[0]), one(value[1])
    return low, high


def parse_value(field: str, op: str, value: Any) -> Any:
    """The typed value of a condition (raises ValueError with a message for the merchant).

    count → int, money → cents (int), date → Instant, items/text → str or sorted list,
    ``between`` → a (low, high) pair checked low ≤ high.
    """
    kind = FIELDS[field]
    if kind in ("count", "money"):
        one = _count if kind == "count" else _cents
        if op == "between":
            low, high = _pair(value, one)
            if low > high:
                raise ValueError("the low bound is above the high bound")
            return low, high
        return one(value)
    if kind == "date":
        if op == "within":
            if not isinstance(value, dict):
                raise ValueError('within takes {"days_ago": n}')
            return _when(value)
        if op == "between":
            low, high = _pair(value, _when)
            if low.at is None or high.at is None:
                raise ValueError("between takes two ISO dates; use within/before for days_ago")
            if low.at > high.at:
                raise ValueError("the first date is after the second")
            return low, high
        return _when(value)
    if kind == "items":
        return _texts(value, 255)
    if kind == "text":
        return _texts(value, 64) if op in LIST_OPS else _text(value, 64)
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            raise ValueError(f"must be a non-empty list of: {', '.join(CONSENT_STATES)}")
        return sorted({_consent(v) for v in value})
    return _consent(value)


class ConditionSchema(Schema):
    """One condition: a known field, an op that applies to it, and a value of its shape."""

    field = fields.String(
        required=True,
        validate=validate.OneOf(
            list(FIELDS), error="unknown field {input!r}; fields are: {choices}"
        ),
    )
    op = fields.String(required=True)
    value = fields.Raw(required=True)

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        field, op = data["field"], data["op"]
        ops = OPS[FIELDS[field]]
        if op not in ops:
            raise ValidationError(
                f"{op!r} does not apply to {field}; use one of: {', '.join(ops)}", "op"
            )
        try:
            parse_value(field, op, data["value"])
        except ValueError as exc:
            raise ValidationError(str(exc), "value") from exc


class Node(fields.Field):
    """An item of a group: a nested group or a condition (chosen by its keys)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(
                'must be an object: a group {"all": [...]} / {"any": [...]} '
                'or a condition {"field": ..., "op": ..., "value": ...}'
            )
        if "all" in value or "any" in value:
            return GroupSchema().load(value)
        return ConditionSchema().load(value)


_ITEMS = f"a group holds 1 to {MAX_ITEMS} items"


class GroupSchema(Schema):
    """{"all": [...]} (every item matches) or {"any": [...]} (at least one matches)."""

    all_ = fields.List(
        Node(), data_key="all", validate=validate.Length(min=1, max=MAX_ITEMS, error=_ITEMS)
    )
    any_ = fields.List(
        Node(), data_key="any", validate=validate.Length(min=1, max=MAX_ITEMS, error=_ITEMS)
    )

    @validates_schema(skip_on_field_errors=False)
    def _one_kind(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "all_" in data and "any_" in data:
            raise ValidationError("a group has either all or any, not both", "any")

    @post_load
    def _plain(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"all": data["all_"]} if "all_" in data else {"any": data["any_"]}


def _shape_problem(tree: Any) -> str | None:
    """Depth and size bounds, checked iteratively before the recursive load."""
    if not isinstance(tree, dict) or not ({"all", "any"} & set(tree)):
        return 'must be a group: {"all": [...]} or {"any": [...]}'
    stack: list[tuple[Any, int]] = [(tree, 1)]
    conditions = 0
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict):
            continue  # reported by the load, with its path
        if "all" in node or "any" in node:
            if depth > MAX_DEPTH:
                return f"groups nest at most {MAX_DEPTH} deep"
            for key in ("all", "any"):
                items = node.get(key)
                if isinstance(items, list):
                    stack.extend((item, depth + 1) for item in items[: MAX_ITEMS + 1])
        else:
            conditions += 1
            if conditions > MAX_CONDITIONS:
                return f"a rule has at most {MAX_CONDITIONS} conditions"
    return None


class RuleField(fields.Field):
    """A whole rule tree: bounded depth and size, then every group and condition checked."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        problem = _shape_problem(value)
        if problem:
            raise ValidationError(problem)
        return GroupSchema().load(value)


class SegmentIn(Schema):
    """POST /connections/<id>/segments (PUT takes the same fields, each optional)."""

    name = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=100),
            validate.Predicate("strip", error="must not be blank"),
            validate.Predicate(
                "isprintable", error="must be printable text without control characters"
            ),
        ],
    )
    rule = RuleField(required=True)

    @post_load
    def _strip(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "name" in data:
            data["name"] = " ".join(data["name"].split())
        return data


class PreviewIn(Schema):
    """POST /connections/<id>/segments/preview: a rule to count, nothing saved (a name sent
    along with it, as the segment form does, is ignored)."""

    class Meta:
        unknown = EXCLUDE

    rule = RuleField(required=True)


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"rule.all.0.op": [messages]}``, the API's shape."""
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": list(messages)}
    if isinstance(messages, str):
        return {prefix or "_schema": [messages]}
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            for k, v in flatten_errors(value, path).items():
                out.setdefault(k, []).extend(v)
    return out


def load_rule(rule: Any) -> dict[str, Any]:
    """A rule checked and normalized (raises marshmallow.ValidationError)."""
    return PreviewIn().load({"rule": rule})["rule"]
