"""Kibo list-query syntax compiled to SQLite: ``filter`` and ``sortBy``.

Filter grammar (mozu docs "Sorting and Filtering"): ``field op value`` joined with
``and`` / ``or`` (``and`` binds tighter; parentheses allowed). Operators ``eq ne gt ge lt
le sw cont``. Field names are case-insensitive (real code sends ``acceptsmarketing eq
false``). Values: ``true``/``false``, numbers, ISO-8601 dates (``z`` or ``Z``), ``null``,
bare words or quoted strings (``'Mary Ann'``). String comparisons are case-insensitive,
as on Kibo's SQL Server collation. ``sortBy`` is ``field asc|desc`` comma-separated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .common import parse_iso_to_store


class QueryError(ValueError):
    """A filter or sortBy Kibo would reject (400 MISSING_OR_INVALID_PARAMETER)."""


@dataclass(frozen=True)
class Field:
    """A filterable/sortable field: its SQL expression and value kind."""

    sql: str
    kind: str  # int | float | str | bool | date
    convert: Callable[[str], Any] | None = None  # raw value -> SQL value (None = reject)


TOKEN = re.compile(r"\s*(\(|\)|'(?:[^']|'')*'|\"[^\"]*\"|[^\s()]+)")
COMPARE = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
OPERATORS = (*COMPARE, "sw", "cont")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or not m.group(1):
            raise QueryError(f"cannot parse filter near {text[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _unquote(token: str) -> tuple[str, bool]:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1].replace("''", "'"), True
    return token, False


def _convert(field: Field, raw: str, quoted: bool) -> Any:
    if field.convert is not None:
        value = field.convert(raw)
        if value is None:
            raise QueryError(f"{raw!r} is not a valid value here")
        return value
    if field.kind == "bool":
        if raw.lower() not in ("true", "false"):
            raise QueryError(f"{raw!r} is not a boolean")
        return 1 if raw.lower() == "true" else 0
    if field.kind in ("int", "float"):
        try:
            return int(raw) if field.kind == "int" else float(raw)
        except ValueError as exc:
            raise QueryError(f"{raw!r} is not a number") from exc
    if field.kind == "date":
        value = parse_iso_to_store(raw)
        if value is None:
            raise QueryError(f"{raw!r} is not an ISO-8601 date")
        return value
    return raw


class _Parser:
    def __init__(self, text: str, fields: dict[str, Field]) -> None:
        self.toks = _tokens(text)
        self.pos = 0
        self.fields = fields
        self.params: list[Any] = []

    def peek(self) -> str | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise QueryError("filter ends too early")
        self.pos += 1
        return tok

    def parse(self) -> str:
        sql = self.disjunction()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()!r} in filter")
        return sql

    def disjunction(self) -> str:
        parts = [self.conjunction()]
        while (self.peek() or "").lower() == "or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.atom()]
        while (self.peek() or "").lower() == "and":
            self.take()
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def atom(self) -> str:
        tok = self.take()
        if tok == "(":
            inner = self.disjunction()
            if self.take() != ")":
                raise QueryError("missing ')' in filter")
            return inner
        field = self.fields.get(tok.lower())
        if field is None:
            raise QueryError(f"'{tok}' is not a filterable field")
        op = self.take().lower()
        if op not in OPERATORS:
            raise QueryError(f"'{op}' is not a filter operator")
        raw, quoted = _unquote(self.take())
        if raw.lower() == "null" and not quoted and op in ("eq", "ne"):
            return f"({field.sql} IS {'NOT ' if op == 'ne' else ''}NULL)"
        if op in ("sw", "cont"):
            if field.kind != "str":
                raise QueryError(f"'{op}' needs a text field")
            escaped = raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            self.params.append(("%" if op == "cont" else "") + escaped + "%")
            return f"(kibo_fold({field.sql}) LIKE kibo_fold(?) ESCAPE '\\')"
        self.params.append(_convert(field, raw, quoted))
        if field.kind == "str":
            return f"(kibo_fold({field.sql}) {COMPARE[op]} kibo_fold(?))"
        return f"({field.sql} {COMPARE[op]} ?)"


def compile_filter(text: str | None, fields: dict[str, Field]) -> tuple[str, list[Any]]:
    """Return ``(sql, params)`` for a Kibo filter; ``("1=1", [])`` when empty."""
    if not text or not text.strip():
        return "1=1", []
    parser = _Parser(text, fields)
    return parser.parse(), parser.params


def compile_sort(text: str | None, fields: dict[str, Field], tiebreak: str) -> str:
    """Return an ORDER BY clause body for a Kibo ``sortBy``."""
    parts = []
    for chunk in (text or "").split(","):
        words = chunk.split()
        if not words:
            continue
        field = fields.get(words[0].lower())
        if field is None:
            raise QueryError(f"'{words[0]}' is not a sortable field")
        direction = words[1].lower() if len(words) > 1 else "asc"
        if direction not in ("asc", "desc") or len(words) > 2:
            raise QueryError(f"bad sort direction in {chunk.strip()!r}")
        expr = f"kibo_fold({field.sql})" if field.kind == "str" else field.sql
        parts.append(f"{expr} {direction.upper()}")
    parts.append(tiebreak)
    return ", ".join(parts)
