"""Database work spread over several sessions at once, one thread each.

A PostgreSQL statement runs on one core; work that splits into independent parts (segments,
id ranges) finishes sooner on the second core. Each part gets the app context and its own
scoped session, which is removed when the part ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from flask import current_app

from cc_storeplugin.extensions import db

T = TypeVar("T")
R = TypeVar("R")


def in_parallel_sessions(
    work: Callable[[T], R], parts: Iterable[T], *, workers: int, name: str
) -> list[R]:
    """``[work(part) for part in parts]``, ``workers`` at a time, each on its own session;
    the first error is raised here. ``work`` commits what it wants kept."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run(part: T) -> R:
        with app.app_context():
            try:
                return work(part)
            finally:
                db.session.remove()

    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        return list(pool.map(run, parts))
