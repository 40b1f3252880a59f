"""An independent oracle: the built-in lists a store file should produce, computed directly
from the store's rows with the DESIGN's rules (not with the plugin's SQL)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cc_storeplugin.constantcontact.emails import check_email

NOT_PURCHASES = {"canceled", "closed", "pending_payment"}


def expected_lists(store_file: str | Path, now: datetime, unsubscribed: set[str] = frozenset()):
    """key → set of emails that must be in that Constant Contact list."""
    db = sqlite3.connect(str(store_file))
    contacts = {e.strip().lower() for (e,) in db.execute("SELECT email FROM customers")}
    count: dict[str, int] = defaultdict(int)
    last: dict[str, datetime] = {}
    for email, state, created in db.execute("SELECT customer_email, state, created_at FROM orders"):
        key = email.strip().lower()
        contacts.add(key)
        if state in NOT_PURCHASES:
            continue
        count[key] += 1
        when = datetime.strptime(created, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        last[key] = max(last.get(key, when), when)
    db.close()
    lists: dict[str, set[str]] = {
        k: set() for k in ("all", "first_time", "repeat", "recent", "lapsed")
    }
    for email in contacts:
        sendable, _ = check_email(email)
        if sendable is None or email in unsubscribed:
            continue
        n, at = count.get(email, 0), last.get(email)
        lists["all"].add(sendable)
        if n == 1:
            lists["first_time"].add(sendable)
        if n >= 2:
            lists["repeat"].add(sendable)
        if at is not None and at >= now - timedelta(days=30):
            lists["recent"].add(sendable)
        if n >= 1 and at < now - timedelta(days=120):
            lists["lapsed"].add(sendable)
    return lists
