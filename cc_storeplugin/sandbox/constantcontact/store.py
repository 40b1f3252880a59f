"""SQLite-backed state of the CC sandbox: contacts, lists, memberships, activities, campaigns.

One connection guarded by one lock (SQLite file or a private in-memory database), so a
1,000,000-contact account with its list memberships lives on disk pages, not in Python objects.
"""

from __future__ import annotations

import random
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    contact_id TEXT NOT NULL UNIQUE,
    email_key TEXT,
    address TEXT,
    first_name TEXT, last_name TEXT, job_title TEXT, company_name TEXT,
    birthday_month INTEGER, birthday_day INTEGER, anniversary TEXT,
    permission TEXT NOT NULL DEFAULT 'not_set',
    opt_in_source TEXT, opt_in_date REAL,
    opt_out_source TEXT, opt_out_date REAL, opt_out_reason TEXT,
    confirm_status TEXT NOT NULL DEFAULT 'off',
    create_source TEXT, update_source TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    email_created_at REAL, email_updated_at REAL,
    deleted_at REAL,
    extra TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS contacts_email ON contacts(account, email_key);
CREATE INDEX IF NOT EXISTS contacts_updated ON contacts(updated_at);
CREATE INDEX IF NOT EXISTS contacts_optout ON contacts(opt_out_date)
    WHERE opt_out_date IS NOT NULL;
CREATE TABLE IF NOT EXISTS lists (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    list_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    favorite INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    deleted_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS lists_name ON lists(account, name) WHERE deleted_at IS NULL;
CREATE TABLE IF NOT EXISTS memberships (
    list INTEGER NOT NULL,
    contact INTEGER NOT NULL,
    PRIMARY KEY (list, contact)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_contact ON memberships(contact, list);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    activity_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    applied INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'initialized',
    created_at REAL NOT NULL, due_at REAL NOT NULL,
    started_at REAL, completed_at REAL,
    payload TEXT,
    status TEXT,
    errors TEXT
);
CREATE INDEX IF NOT EXISTS activities_pending ON activities(applied, due_at);
CREATE TABLE IF NOT EXISTS export_rows (
    activity INTEGER NOT NULL,
    contact INTEGER NOT NULL,
    PRIMARY KEY (activity, contact)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    campaign_id TEXT NOT NULL UNIQUE,
    activity_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL,
    sent_at REAL
);
CREATE TABLE IF NOT EXISTS sends (
    campaign INTEGER NOT NULL,
    contact INTEGER NOT NULL,
    created_time REAL NOT NULL,
    PRIMARY KEY (campaign, contact)
) WITHOUT ROWID;
"""

_NOT = r"@\s\"(),:;<>\[\]\\"
EMAIL_RE = re.compile(rf"^[^{_NOT}]+@[^{_NOT}]+\.[^{_NOT}.]{{2,}}$")
ACTIVE = ("implicit", "explicit")


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> CC's ISO-8601 form ``2026-11-23T12:13:48Z`` (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(ts: float | None) -> str | None:
    """Epoch seconds -> ``YYYY-MM-DD`` (CC's ``deleted_at`` uses a date)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def parse_iso(value: str) -> float:
    """ISO-8601 date or date-time (Z, offset or naive UTC) -> epoch seconds; ValueError if bad."""
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def valid_email(address: str, max_len: int = 80) -> bool:
    """CC-style syntactic email check (no DNS): one @, a dotted domain, no spaces."""
    return 0 < len(address) <= max_len and EMAIL_RE.match(address) is not None


class Store:
    """The sandbox database: one SQLite connection, a lock, an id generator and the clock."""

    def __init__(self, db_path: str | None, clock: Callable[[], float], seed: int = 0) -> None:
        self.conn = sqlite3.connect(
            db_path or ":memory:", check_same_thread=False, isolation_level=None
        )
        self.conn.execute("PRAGMA journal_mode=WAL" if db_path else "PRAGMA journal_mode=MEMORY")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-65536")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.conn.executescript(SCHEMA)
        self.lock = threading.RLock()
        self.clock = clock
        # a reopened database continues with a different stream, so ids never collide
        used = self.conn.execute(
            "SELECT (SELECT COUNT(*) FROM contacts) + (SELECT COUNT(*) FROM lists)"
            " + (SELECT COUNT(*) FROM activities) + (SELECT COUNT(*) FROM campaigns)"
        ).fetchone()[0]
        self._rng = random.Random(f"{seed}:{used}")
        self.next_due = 0.0  # earliest due time of a queued activity (activities.pump)

    def new_id(self) -> str:
        """A version-4 UUID string drawn from the seeded generator (deterministic runs)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def new_ids(self, n: int) -> list[str]:
        """``n`` fresh UUIDs at once (bulk imports)."""
        bits = self._rng.getrandbits
        return [str(uuid.UUID(int=bits(128), version=4)) for _ in range(n)]

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run one transaction (rolled back on error)."""
        with self.lock:
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | list | dict = ()) -> list[sqlite3.Row]:
        """Run a read under the lock and return all rows as tuples."""
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | list | dict = ()):
        """First row of a read, or None."""
        with self.lock:
            return self.conn.execute(sql, params).fetchone()

    def list_row(self, account: str, list_id: str, with_deleted: bool = False):
        """(id, list_id, name, description, favorite, created_at, updated_at, deleted_at)."""
        sql = (
            "SELECT id, list_id, name, description, favorite, created_at, updated_at, deleted_at"
            " FROM lists WHERE account=? AND list_id=?"
        )
        if not with_deleted:
            sql += " AND deleted_at IS NULL"
        return self.one(sql, (account, list_id))

    def list_ids_to_rows(self, account: str, list_ids: list[str]) -> dict[str, int] | None:
        """Map list UUIDs to row ids; None if any is unknown or deleted."""
        out: dict[str, int] = {}
        for lid in list_ids:
            row = self.list_row(account, str(lid))
            if row is None:
                return None
            out[str(lid)] = row[0]
        return out

    def contact_rows_by_ids(self, account: str, contact_ids: list[str]) -> dict[str, tuple]:
        """contact UUID -> (row id, permission, opt_out_source, deleted_at) for known ones."""
        out: dict[str, tuple] = {}
        ids = [str(c) for c in contact_ids]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.query(
                "SELECT contact_id, id, permission, opt_out_source, deleted_at FROM contacts"
                f" WHERE account=? AND contact_id IN ({marks})",
                [account, *chunk],
            ):
                out[row[0]] = row[1:]
        return out
