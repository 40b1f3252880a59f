"""searchCriteria query parameters -> parameterized SQL over the store file, as Magento reads them.

PHP parses ``searchCriteria[filter_groups][0][filters][0][field]=...`` into nested arrays
(insertion order, ``[]`` appends); the Web API accepts snake_case and camelCase keys. Filters
in a group are OR-ed, groups AND-ed. Errors carry Magento's message template and parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .serializers import Entity

KEY_ALIASES = {
    "filterGroups": "filter_groups",
    "sortOrders": "sort_orders",
    "pageSize": "page_size",
    "currentPage": "current_page",
    "conditionType": "condition_type",
}
_SEGMENT = re.compile(r"\[([^\]]*)\]")


class SearchError(Exception):
    """A Magento Web API error: HTTP status, message template and parameters."""

    def __init__(self, status: int, message: str, parameters: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.parameters = status, message, parameters

    def body(self) -> dict:
        """The JSON error body Magento sends."""
        out: dict[str, Any] = {"message": self.message}
        if self.parameters is not None:
            out["parameters"] = self.parameters
        return out


def internal_error() -> SearchError:
    """Production-mode mask for an SQL error (unknown column and the like)."""
    import secrets

    report = secrets.token_hex(6) + secrets.token_hex(1)[:1]
    return SearchError(
        500,
        f"Internal Error. Details are available in Magento log file. Report ID: webapi-{report}",
    )


def parse_nested(pairs: list[tuple[str, str]], root: str = "searchCriteria") -> dict | None:
    """PHP parse_str semantics for the ``root[...]`` keys of a query; None when absent."""
    out: dict | None = None
    for key, value in pairs:
        if not key.startswith(root):
            continue
        rest = key[len(root) :]
        segs = _SEGMENT.findall(rest)
        if rest and not segs:
            continue
        if out is None:
            out = {}
        if not segs:
            continue  # searchCriteria=... alone: an empty criteria
        node = out
        for i, seg in enumerate(segs):
            last = i == len(segs) - 1
            if seg == "":
                seg = str(sum(1 for k in node if k.isdigit()))
            if last:
                node[seg] = value
            else:
                nxt = node.get(seg)
                if not isinstance(nxt, dict):
                    nxt = node[seg] = {}
                node = nxt
    return out


def _norm(d: Any) -> Any:
    if not isinstance(d, dict):
        return d
    return {KEY_ALIASES.get(k, k): _norm(v) for k, v in d.items()}


def _int(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise SearchError(
        400,
        'The "%value" value\'s type is invalid. The "%type" type was expected. '
        "Verify and try again.",
        {"value": value if isinstance(value, str) else "Array", "type": "int"},
    )


@dataclass
class Criteria:
    """The parsed searchCriteria plus its echo for the response."""

    groups: list[list[dict]] = field(default_factory=list)
    sorts: list[tuple[str, str]] = field(default_factory=list)
    page_size: int | None = None
    current_page: int | None = None
    echo: dict = field(default_factory=dict)


def parse(
    pairs: list[tuple[str, str]], max_page_size: int | None, default_page_size: int = 20
) -> Criteria:
    """Read searchCriteria from decoded query pairs; applies the input-limit rules."""
    raw = parse_nested(pairs)
    if raw is None:
        raise SearchError(400, "%fieldName is a required field.", {"fieldName": "searchCriteria"})
    raw = _norm(raw)
    crit = Criteria()
    echo_groups = []
    groups = raw.get("filter_groups")
    for group in groups.values() if isinstance(groups, dict) else []:
        filters = group.get("filters") if isinstance(group, dict) else None
        flist, echo_f = [], []
        for f in filters.values() if isinstance(filters, dict) else []:
            if not isinstance(f, dict):
                continue
            cond = f.get("condition_type") or "eq"
            flist.append({"field": f.get("field"), "value": f.get("value"), "condition_type": cond})
            # required getters print null when unset; condition_type defaults to "eq"
            echo_f.append(
                {"field": f.get("field"), "value": f.get("value"), "condition_type": cond}
            )
        crit.groups.append(flist)
        echo_groups.append({"filters": echo_f})
    crit.echo["filter_groups"] = echo_groups
    sorts = raw.get("sort_orders")
    echo_s = []
    for s in sorts.values() if isinstance(sorts, dict) else []:
        if not isinstance(s, dict):
            continue
        direction = s.get("direction")
        if direction is not None and str(direction).upper() not in ("ASC", "DESC"):
            raise SearchError(
                400,
                'Sort order direction "%1" is invalid. Verify and try again.',
                [direction],
            )
        crit.sorts.append((s.get("field"), "ASC" if str(direction).upper() == "ASC" else "DESC"))
        echo_s.append({"field": s.get("field"), "direction": direction})
    if echo_s:
        crit.echo["sort_orders"] = echo_s
    if "page_size" in raw:
        crit.page_size = _int(raw["page_size"])
        if max_page_size is not None and crit.page_size > max_page_size:
            raise SearchError(
                400, "Maximum SearchCriteria pageSize is %max", {"max": max_page_size}
            )
    elif max_page_size is not None:
        crit.page_size = default_page_size
    if crit.page_size is not None:
        crit.echo["page_size"] = crit.page_size
    if "current_page" in raw:
        crit.current_page = _int(raw["current_page"])
        crit.echo["current_page"] = crit.current_page
    return crit


def _field(entity: Entity, name: Any):
    f = entity.fields.get(name) if isinstance(name, str) else None
    if f is None:
        if entity.unknown_field_status == 400:
            raise SearchError(
                400, 'The "%1" attribute name is invalid. Reset the name and try again.', [name]
            )
        raise internal_error()
    return f


def _condition(entity: Entity, flt: dict) -> tuple[str, list]:
    """One filter -> SQL fragment and parameters (Magento's collection condition types)."""
    f = _field(entity, flt["field"])
    col, cond, value = f.sql, str(flt["condition_type"]).lower(), flt["value"]
    coll = " COLLATE NOCASE" if f.text else ""
    value = "" if value is None else value
    simple = {
        "eq": "=",
        "neq": "!=",
        "gt": ">",
        "gteq": ">=",
        "moreq": ">=",
        "from": ">=",
        "lt": "<",
        "lteq": "<=",
        "to": "<=",
    }
    if cond in simple:
        return f"{col} {simple[cond]} ?{coll}", [value]
    if cond in ("like", "nlike"):
        neg = "NOT " if cond == "nlike" else ""
        return f"{col} {neg}LIKE ?", [value]
    if cond in ("in", "nin"):
        values = value.split(",") if isinstance(value, str) else [value]
        marks = ",".join("?" * len(values))
        neg = "NOT " if cond == "nin" else ""
        return f"{col}{coll} {neg}IN ({marks})", values
    if cond == "null":
        return f"{col} IS NULL", []
    if cond == "notnull":
        return f"{col} IS NOT NULL", []
    if cond in ("finset", "nfinset"):
        neg = "NOT " if cond == "nfinset" else ""
        return f"(',' || {col} || ',') {neg}LIKE ('%,' || ? || ',%')", [value]
    raise internal_error()


def compile_where(entity: Entity, crit: Criteria) -> tuple[str, list]:
    """WHERE clause (``""`` when no filters) and its parameters."""
    clauses, params = [], []
    for group in crit.groups:
        parts = []
        for flt in group:
            sql, p = _condition(entity, flt)
            parts.append(sql)
            params += p
        if parts:
            clauses.append("(" + " OR ".join(parts) + ")")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def compile_order(entity: Entity, crit: Criteria) -> list[tuple[str, str, bool]]:
    """ORDER BY terms (sql, direction, nullable); id ASC by default and as the tie-breaker."""
    terms = []
    for name, direction in crit.sorts:
        f = entity.fields.get(name) if isinstance(name, str) else None
        if f is None:
            raise internal_error()
        terms.append((f.sql, direction, f.nullable))
    if not any(sql == entity.id_sql for sql, _, _ in terms):
        terms.append((entity.id_sql, "ASC", False))
    return terms
