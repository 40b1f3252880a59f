"""Dialect-neutral SQL expressions for segment reasons: whole days between instants, UTC dates.

Each construct compiles to PostgreSQL date arithmetic or to SQLite's julianday/strftime, so
rules and reason texts are written once and run on both backends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String, case, cast
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class whole_days_between(FunctionElement):  # noqa: N801 - reads like a SQL function
    """Whole days elapsed from ``earlier`` to ``later`` (floor, to the second), as an integer."""

    type = Integer()
    inherit_cache = True
    name = "whole_days_between"


@compiles(whole_days_between)
def _days_default(element: whole_days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    tz = "TIMESTAMP WITH TIME ZONE"
    span = f"CAST({later} AS {tz}) - CAST({earlier} AS {tz})"
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM ({span})) / 86400) AS INTEGER)"


@compiles(whole_days_between, "sqlite")
def _days_sqlite(element: whole_days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    # Round to whole seconds first: julianday() differences carry float error (30.0 → 29.999…).
    seconds = f"CAST(ROUND((julianday({later}) - julianday({earlier})) * 86400) AS INTEGER)"
    floor_neg = f"-((86399 - {seconds}) / 86400)"
    return f"(CASE WHEN {seconds} >= 0 THEN {seconds} / 86400 ELSE {floor_neg} END)"


class utc_date_text(FunctionElement):  # noqa: N801 - reads like a SQL function
    """The UTC calendar date of a timestamp as 'YYYY-MM-DD' text."""

    type = String()
    inherit_cache = True
    name = "utc_date_text"


@compiles(utc_date_text)
def _date_default(element: utc_date_text, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"to_char(({value}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(utc_date_text, "sqlite")
def _date_sqlite(element: utc_date_text, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    # SQLite stores UTC timestamps as naive text (see models.base.UTCDateTime).
    return f"date({value})"


def as_text(value: ColumnElement[Any]) -> ColumnElement[str]:
    """An integer (or any scalar) rendered as text for concatenation."""
    return cast(value, String)


def counted(n: ColumnElement[int], singular: str, plural: str) -> ColumnElement[str]:
    """'1 purchase' / '3 purchases': a number and the right word, in SQL."""
    word = case((n == 1, singular), else_=plural)
    return as_text(n) + " " + word


class money_text(FunctionElement):  # noqa: N801 - reads like a SQL function
    """An amount as text with two decimals ('250.00') on both backends."""

    type = String()
    inherit_cache = True
    name = "money_text"


@compiles(money_text)
def _money_default(element: money_text, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"to_char(ROUND(CAST({value} AS NUMERIC), 2), 'FM999999999999990.00')"


@compiles(money_text, "sqlite")
def _money_sqlite(element: money_text, compiler: Any, **kw: Any) -> str:
    (value,) = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"printf('%.2f', {value})"
