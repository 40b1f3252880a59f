"""The whole Magento journey over real HTTP: plugin, Magento sandbox and CC sandbox on loopback.

The Magento sandbox plays the admin exactly as specs/magento.md §1 describes: it POSTs the
consumer to the Callback URL (5 s timeout, no redirects) and opens the Identity Link popup.
"""

import sqlite3
import time
from datetime import datetime

import pytest
import requests
from cryptography.fernet import Fernet

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Merchant, Segment, StoreConnection, SyncRun
from cc_storeplugin.sandbox.merchant import connect_magento, sign_in
from cc_storeplugin.sandbox.stack import start_stack
from cc_storeplugin.sync.import_job import run_import, start_import
from cc_storeplugin.sync.runs import create_run
from tests.oracle import expected_lists


@pytest.fixture
def stack(tmp_path, store_factory):
    # Dated relative to today: the import runs at the real clock, and the daily-sync tests
    # need recent purchasers at that moment (a fixed date empties "Recent" a month later).
    store = store_factory(customers=300, seed=7, now=None)
    db_file = tmp_path / "plugin.sqlite"
    s = start_stack(
        store,
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_file}",
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SECRET_KEY": "journey",
            "INSTANCE_DIR": str(tmp_path),
            "REDIS_URL": None,
        },
        cc_options={"auto_approve": False},
        magento_options={"max_page_size": 300},
    )
    with s.app.app_context():
        db.create_all()
    s.db_file, s.store_file = db_file, store
    yield s
    s.stop()
    with s.app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def wait_for(app, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            db.session.expire_all()
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_sign_in_connect_allow_select_complete(stack):
    browser = requests.Session()
    sign_in(browser, stack.plugin_url)
    hs = connect_magento(browser, stack.plugin_url, stack.magento.url)

    assert hs.final_url == hs.success_call_back  # redirected there exactly as received
    with stack.app.app_context():
        conn = db.session.get(StoreConnection, hs.connection_id)
        assert conn.status == "importing"
        assert conn.settings["store"]["code"] == "default"
        assert conn.credentials["access_token"]
        merchant = db.session.get(Merchant, conn.merchant_id)
        assert merchant.cc_account_id  # created from the CC account summary

    # The import runs through the new access token; the CC lists equal the oracle's sets.
    run = wait_for(stack.app, lambda: _finished_run(hs.connection_id), timeout=120)
    assert run["status"] == "COMPLETE", run
    assert_cc_lists_match(stack, hs.connection_id, run)
    customers = (
        sqlite3.connect(stack.store_file).execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    )
    assert run["totals"]["customers_in_store"] == customers
    with stack.app.app_context():
        assert db.session.get(StoreConnection, hs.connection_id).status == "active"


def _finished_run(connection_id):
    row = db.session.execute(
        db.select(SyncRun.id, SyncRun.status, SyncRun.totals, SyncRun.checkpoint).where(
            SyncRun.connection_id == connection_id, SyncRun.status.in_(("COMPLETE", "FAILED"))
        )
    ).first()
    return row._asdict() if row else None


def assert_cc_lists_match(stack, connection_id, run):
    """Every CC list holds exactly the contacts the store's rows say it should."""
    now = datetime.fromisoformat(run["checkpoint"]["now"])
    expected = expected_lists(stack.store_file, now)
    with stack.app.app_context():
        segments = db.session.scalars(
            db.select(Segment).where(Segment.connection_id == connection_id)
        ).all()
        lists = {s.key: s.cc_list_id for s in segments}
    assert set(lists) == set(expected)
    for key, list_id in lists.items():
        got = set(
            requests.get(f"{stack.cc.url}/_sandbox/lists/{list_id}/emails", timeout=30).json()[
                "emails"
            ]
        )
        assert got == expected[key], (key, sorted(got ^ expected[key])[:10])


def test_the_raw_database_holds_no_plaintext_secret(stack):
    browser = requests.Session()
    sign_in(browser, stack.plugin_url)
    hs = connect_magento(browser, stack.plugin_url, stack.magento.url)
    with stack.app.app_context():
        conn = db.session.get(StoreConnection, hs.connection_id)
        merchant = db.session.get(Merchant, conn.merchant_id)
        secrets = [
            conn.credentials[k]
            for k in ("consumer_secret", "verifier", "access_token", "access_token_secret")
        ]
        secrets += [merchant.cc_access_token, merchant.cc_refresh_token]
    assert all(secrets)
    raw = sqlite3.connect(stack.db_file)
    dump = "\n".join(raw.iterdump())
    for secret in secrets:
        assert secret not in dump


def test_reauthorize_replaces_the_tokens_and_resumes(stack):
    browser = requests.Session()
    sign_in(browser, stack.plugin_url)
    hs = connect_magento(browser, stack.plugin_url, stack.magento.url)
    with stack.app.app_context():
        old = db.session.get(StoreConnection, hs.connection_id).credentials["access_token"]
    resp = requests.post(
        f"{stack.magento.url}/_sandbox/integrations/{hs.integration_id}/reauthorize", timeout=30
    ).json()
    assert resp["callback_post"].get("status") == 200

    def resumed():
        c = db.session.get(StoreConnection, hs.connection_id)
        token = (c.credentials or {}).get("access_token")
        return c if token and token != old and c.status == "importing" else None

    conn = wait_for(stack.app, resumed)
    assert conn.settings["magento"]["exchange"] == "done"


def test_a_revoked_token_disconnects_and_pauses_the_connection(stack):
    browser = requests.Session()
    sign_in(browser, stack.plugin_url)
    hs = connect_magento(browser, stack.plugin_url, stack.magento.url)
    requests.delete(f"{stack.magento.url}/_sandbox/integrations/{hs.integration_id}", timeout=30)
    with stack.app.app_context():
        start_import(hs.connection_id)
    conn = wait_for(
        stack.app,
        lambda: (
            db.session.get(StoreConnection, hs.connection_id)
            if db.session.get(StoreConnection, hs.connection_id).status == "disconnected"
            else None
        ),
    )
    assert conn.status_reason == "disconnected — reauthorize in Magento"
    page = browser.get(f"{stack.plugin_url}/connections/{hs.connection_id}").text
    assert 'id="disconnected"' in page and "Reauthorize" in page
    # A paused connection's jobs do no work and do not fail.
    with stack.app.app_context():
        again = create_run("import", hs.connection_id).id
        assert run_import(again) == "paused"
        run = db.session.get(SyncRun, again)
        assert run.status == "QUEUED" and run.phase.startswith("paused: disconnected")
