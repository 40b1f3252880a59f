"""Partial responses: ``?fields=items[id,email],total_count`` (Webapi field filtering).

A name keeps that key whole; ``name[a,b[c]]`` keeps only the listed sub-keys, applied to
each element when the value is a list. Keys not listed are dropped, so ``total_count``
disappears unless asked for, as in Magento.
"""

from __future__ import annotations

from typing import Any


def parse(spec: str) -> dict[str, Any]:
    """``a,b[c,d[e]]`` -> ``{"a": None, "b": {"c": None, "d": {"e": None}}}``."""
    root: dict[str, Any] = {}
    stack = [root]
    name = ""
    for ch in spec + ",":
        if ch == "[":
            child: dict[str, Any] = {}
            stack[-1][name.strip()] = child
            stack.append(child)
            name = ""
        elif ch in ",]":
            if name.strip():
                stack[-1][name.strip()] = None
            name = ""
            if ch == "]" and len(stack) > 1:
                stack.pop()
        else:
            name += ch
    return root


def apply(data: Any, wanted: dict[str, Any] | None) -> Any:
    """Keep only the wanted keys (recursively; lists are filtered element-wise)."""
    if wanted is None:
        return data
    if isinstance(data, list):
        return [apply(item, wanted) for item in data]
    if not isinstance(data, dict):
        return data
    return {k: apply(v, wanted[k]) for k, v in data.items() if k in wanted}
