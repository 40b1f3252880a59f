"""The whole Magento journey over real HTTP: plugin, Magento sandbox and CC sandbox on loopback.

The Magento sandbox plays the admin exactly as specs/magento.md §1 describes: it POSTs the
consumer to the Callback URL (5 s timeout, no redirects) and opens the Identity Link popup.
"""

import sqlite3
import time

import pytest
import requests
from cryptography.fernet import Fernet

from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import enqueue
from cc_storeplugin.models import Merchant, StoreConnection, SyncRun
from cc_storeplugin.sandbox.merchant import connect_magento, sign_in
from cc_storeplugin.sandbox.stack import start_stack
from cc_storeplugin.sync.imports import record_import_request
from cc_storeplugin.sync.runs import create_run


@pytest.fixture
def stack(tmp_path, store_factory):
    store = store_factory(customers=300, seed=7)
    db_file = tmp_path / "plugin.sqlite"
    s = start_stack(
        store,
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_file}",
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SECRET_KEY": "journey",
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

    # The import job records the store's real totals through the new access token.
    customers = (
        sqlite3.connect(stack.store_file).execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    )
    totals = wait_for(
        stack.app,
        lambda: db.session.scalars(
            db.select(SyncRun.totals).where(
                SyncRun.connection_id == hs.connection_id, SyncRun.phase == "requested"
            )
        ).first(),
    )
    assert totals["customers_in_store"] == customers


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
        run = create_run("import", hs.connection_id)
        enqueue(record_import_request, run.id, queue="imports", sync_run_id=run.id)
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
        assert record_import_request(again) == "paused"
        run = db.session.get(SyncRun, again)
        assert run.status == "QUEUED" and run.phase.startswith("paused: disconnected")
