"""Fixtures for the import's end-to-end tests: a whole stack on loopback, the oracle's
expectations (also in the form the completion email counts them) and the CC sandbox's lists."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
from cryptography.fernet import Fernet

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Segment, SyncRun
from cc_storeplugin.sandbox.stack import Stack, start_stack
from tests.oracle import expected_lists
from tests.sandbox.conftest import store_factory  # noqa: F401  (generated stores)
from tests.web.test_magento_journey import wait_for  # noqa: F401  (re-exported)


def build_stack(
    tmp_path: Path,
    store: Path,
    database_url: str | None = None,
    *,
    redis_url: str | None = None,
    cc_options: dict[str, Any] | None = None,
    magento_options: dict[str, Any] | None = None,
    **config: Any,
) -> Stack:
    """CC + Magento sandboxes + plugin; embedded worker unless ``redis_url`` is given."""
    settings = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url or f"sqlite:///{tmp_path / 'plugin.sqlite'}",
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SECRET_KEY": "import-tests",
        "INSTANCE_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        **config,
    }
    stack = start_stack(
        store,
        settings,
        cc_options={"auto_approve": False, **(cc_options or {})},
        magento_options={"max_page_size": 300, **(magento_options or {})},
    )
    with stack.app.app_context():
        db.drop_all()
        db.create_all()
    stack.store_file = store
    return stack


def stop_stack(stack: Stack) -> None:
    stack.stop()
    with stack.app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """``stack_factory(store, database_url=None, redis_url=None, **options)``; stopped after."""
    made: list[Stack] = []

    def make(store: Path, database_url: str | None = None, **kwargs: Any) -> Stack:
        stack = build_stack(tmp_path, store, database_url, **kwargs)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stop_stack(stack)


def finished_run(connection_id: int) -> dict[str, Any] | None:
    """The connection's import run once COMPLETE or FAILED (for ``wait_for``)."""
    row = db.session.execute(
        db.select(SyncRun.id, SyncRun.status, SyncRun.totals, SyncRun.checkpoint).where(
            SyncRun.connection_id == connection_id,
            SyncRun.kind == "import",
            SyncRun.status.in_(("COMPLETE", "FAILED")),
        )
    ).first()
    return row._asdict() if row else None


def run_now(run: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(run["checkpoint"]["now"])


def store_membership(store_file: Path, now: datetime) -> dict[str, set[str]]:
    """The oracle's lists before invalid emails are left out: what the store itself holds."""
    with mock.patch("tests.oracle.check_email", lambda email: (email, None)):
        return expected_lists(store_file, now)


def invalid_contacts(store_file: Path, now: datetime) -> set[str]:
    """Contacts (normalized emails) the oracle says cannot be sent: invalid addresses."""
    sendable = expected_lists(store_file, now)["all"]
    return store_membership(store_file, now)["all"] - {e.lower() for e in sendable}


def cc_lists_by_key(app, connection_id: int) -> dict[str, tuple[str, str]]:
    """segment key → (CC list id, CC list name as the plugin recorded it)."""
    with app.app_context():
        segs = db.session.scalars(
            db.select(Segment).where(Segment.connection_id == connection_id)
        ).all()
        return {s.key: (s.cc_list_id, s.name) for s in segs}


def cc_list(cc_url: str, list_id: str) -> dict[str, Any]:
    """The CC sandbox's view of a list: name, count and member emails."""
    resp = requests.get(f"{cc_url}/_sandbox/lists/{list_id}/emails", timeout=30)
    resp.raise_for_status()
    return resp.json()


def assert_lists_equal_oracle(
    stack: Stack, connection_id: int, expected: dict[str, set[str]]
) -> dict[str, dict[str, Any]]:
    """Every CC list holds exactly the expected emails, each once; returns the CC lists."""
    lists = cc_lists_by_key(stack.app, connection_id)
    assert set(lists) == set(expected)
    got_lists = {}
    for key, (list_id, _) in lists.items():
        got = cc_list(stack.cc.url, list_id)
        emails = got["emails"]
        assert len(emails) == len(set(emails)) == got["count"], (key, "duplicate members")
        missing = sorted(expected[key] - set(emails))
        extra = sorted(set(emails) - expected[key])
        assert not missing and not extra, (key, missing[:10], extra[:10])
        got_lists[key] = got
    state = requests.get(f"{stack.cc.url}/_sandbox/state", timeout=30).json()
    # one CC contact per address: no duplicate contacts either
    assert state["contacts"]["total"] == len(expected["all"]), state["contacts"]
    return got_lists


def store_count(store_file: Path, table: str) -> int:
    with sqlite3.connect(store_file) as con:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
