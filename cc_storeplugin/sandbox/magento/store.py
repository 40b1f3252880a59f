"""Paged reads of the store file: a connection pool, cached counts and keyset page boundaries.

Results equal LIMIT/OFFSET over a deterministic order; for speed, the last sort key of each
served page is remembered, so the next page seeks (``(k, id) > (?, ?)``) instead of skipping
rows. Caches are keyed on a data version (own writes + the file's stat), so any change to
the store file invalidates them.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..storegen import open_store

CACHE_SIZE = 4096


class Store:
    """Thread-safe access to one store file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if not Path(self.path).exists():
            raise FileNotFoundError(self.path)
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        first = open_store(self.path)  # creates missing tables/indexes once
        self._setup(first)
        self._pool.put(first)
        self._lock = threading.Lock()
        self._writes = 0
        self._counts: OrderedDict[tuple, int] = OrderedDict()
        self._bounds: OrderedDict[tuple, dict[int, tuple]] = OrderedDict()

    @staticmethod
    def _setup(conn: sqlite3.Connection) -> None:
        conn.row_factory = None
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA mmap_size = 1073741824")
        conn.execute("PRAGMA cache_size = -65536")

    @contextmanager
    def conn(self) -> Iterator[sqlite3.Connection]:
        """Borrow a connection from the pool."""
        try:
            c = self._pool.get_nowait()
        except queue.Empty:
            c = sqlite3.connect(self.path, check_same_thread=False)
            self._setup(c)
        try:
            yield c
        finally:
            self._pool.put(c)

    def version(self) -> tuple:
        """Changes whenever the store file changes (our writes or anyone else's)."""
        stats = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(self.path + suffix)
                stats.append((st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                stats.append(None)
        return (self._writes, *stats)

    def wrote(self) -> None:
        """Record one of our own writes (invalidates caches)."""
        with self._lock:
            self._writes += 1

    def _cache_get(self, cache: OrderedDict, key: tuple):
        with self._lock:
            value = cache.get(key)
            if value is not None:
                cache.move_to_end(key)
            return value

    def _cache_put(self, cache: OrderedDict, key: tuple, value) -> None:
        with self._lock:
            cache[key] = value
            cache.move_to_end(key)
            while len(cache) > CACHE_SIZE:
                cache.popitem(last=False)

    def count(self, table: str, where: str, params: list) -> int:
        """COUNT(*) of a filtered table (cached per data version)."""
        key = ("count", table, where, tuple(params), self.version())
        hit = self._cache_get(self._counts, key)
        if hit is not None:
            return hit
        with self.conn() as c:
            n = c.execute(f"SELECT COUNT(*) FROM {table}{where}", params).fetchone()[0]  # noqa: S608
        self._cache_put(self._counts, key, n)
        return n

    def page(
        self,
        select: str,
        table: str,
        where: str,
        params: list,
        order: list[tuple[str, str, bool]],
        limit: int | None,
        offset: int,
    ) -> list[tuple]:
        """Rows ``(item_json, id, *sort_keys)`` of one page; seeks from a remembered boundary."""
        keys = ", ".join(sql for sql, _, _ in order)
        order_sql = ", ".join(f"{sql} {d}" for sql, d, _ in order)
        directions = {d for _, d, _ in order}
        seekable = bool(limit) and len(directions) == 1 and not any(n for *_, n in order)
        base_key = (table, where, tuple(params), tuple(order), self.version())
        known, bound = 0, None
        if seekable and offset:
            known, bound = self._nearest_bound(base_key, offset)
        sql = f"SELECT {select}, {keys} FROM {table}"  # noqa: S608
        args = list(params)
        if bound is not None:
            op = ">" if directions == {"ASC"} else "<"
            cond = f"({keys}) {op} ({', '.join('?' * len(bound))})"
            sql += f"{where} AND {cond}" if where else f" WHERE {cond}"
            args += list(bound)
        else:
            sql += where
        sql += f" ORDER BY {order_sql}"
        if limit:
            sql += " LIMIT ? OFFSET ?"
            args += [limit, offset - known]
        with self.conn() as c:
            rows = c.execute(sql, args).fetchall()
        if seekable and rows:
            self._remember(base_key, offset + len(rows), tuple(rows[-1][-len(order) :]))
        return rows

    def _nearest_bound(self, base_key: tuple, offset: int) -> tuple[int, tuple | None]:
        """The last sort key at the largest remembered offset <= ``offset`` (0, None if none)."""
        with self._lock:
            marks = self._bounds.get(base_key)
            if not marks:
                return 0, None
            self._bounds.move_to_end(base_key)
            best = max((o for o in marks if o <= offset), default=0)
            return (best, marks[best]) if best else (0, None)

    def _remember(self, base_key: tuple, offset: int, bound: tuple) -> None:
        with self._lock:
            marks = self._bounds.setdefault(base_key, {})
            self._bounds.move_to_end(base_key)
            marks[offset] = bound
            if len(marks) > CACHE_SIZE:
                marks.pop(min(marks))
            while len(self._bounds) > 64:
                self._bounds.popitem(last=False)

    def query(self, sql: str, params: list | tuple = ()) -> list[tuple]:
        """Run a read query."""
        with self.conn() as c:
            return c.execute(sql, params).fetchall()

    def execute(self, sql: str, params: list | tuple = ()) -> int:
        """Run a write and commit; returns the changed row count."""
        with self.conn() as c:
            cur = c.execute(sql, params)
            c.commit()
        self.wrote()
        return cur.rowcount
