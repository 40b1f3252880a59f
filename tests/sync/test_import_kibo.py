"""The same import pipeline serves Kibo: the Kibo sandbox over a generated store fills the
"Kibo – …" lists in the CC sandbox with exactly the oracle's sets."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.lists import find_or_create_list
from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Merchant, StoreConnection
from cc_storeplugin.sandbox.kibo import DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET
from cc_storeplugin.sandbox.kibo import create_app as kibo_app
from cc_storeplugin.sandbox.merchant import sign_in
from cc_storeplugin.sandbox.server import serve_in_thread
from cc_storeplugin.segments.builtin import BUILTINS
from cc_storeplugin.sync import kibo_settings
from cc_storeplugin.sync.import_job import start_import
from tests.oracle import expected_lists
from tests.sync.conftest import (
    assert_lists_equal_oracle,
    cc_list,
    cc_lists_by_key,
    finished_run,
    run_now,
    store_count,
    wait_for,
)

TENANT_ID = 12345


@pytest.fixture
def kibo(store_factory):
    store = store_factory(customers=500, seed=13)
    server = serve_in_thread(kibo_app(store=str(store), tenant_id=TENANT_ID))
    server.store_file = store
    yield server
    server.stop()


@pytest.mark.slow
def test_a_kibo_import_fills_the_kibo_lists_with_the_expected_contacts(kibo, stack_factory):
    stack = stack_factory(
        kibo.store_file,
        KIBO_HOME_BASE_URL=kibo.url,
        KIBO_APPLICATION_ID=DEFAULT_APPLICATION_ID,
        KIBO_SHARED_SECRET=DEMO_SHARED_SECRET,
    )
    sign_in(requests.Session(), stack.plugin_url)
    with stack.app.app_context():
        merchant = db.session.scalars(db.select(Merchant)).one()
        conn = StoreConnection(
            merchant_id=merchant.id,
            platform="kibo",
            external_id=str(TENANT_ID),
            status="importing",
            settings={},
        )
        db.session.add(conn)
        db.session.commit()
        chosen = find_or_create_list(CCClient(merchant.id), "Kibo newsletter")
        kibo_settings.save(
            conn, kibo_settings.KiboSettings(list_id=chosen, list_name="Kibo newsletter")
        )
        db.session.commit()
        connection_id = conn.id
        start_import(connection_id)

    run = wait_for(stack.app, lambda: finished_run(connection_id), timeout=120)
    assert run["status"] == "COMPLETE", run
    expected = expected_lists(kibo.store_file, run_now(run))
    lists = cc_lists_by_key(stack.app, connection_id)
    for key, (list_id, name) in lists.items():
        assert name == f"Kibo \u2013 {BUILTINS[key].list_suffix}"
        assert cc_list(stack.cc.url, list_id)["name"] == name
    assert_lists_equal_oracle(stack, connection_id, expected)
    assert run["totals"]["customers_in_store"] == store_count(kibo.store_file, "customers")
    assert run["totals"]["orders_in_store"] == store_count(kibo.store_file, "orders")
    # "Sync Contacts" also fills the list chosen on the Settings tab with the opted-in.
    with stack.app.app_context():
        opted_in = set(
            db.session.scalars(
                select(Customer.email).where(
                    Customer.connection_id == connection_id, Customer.consent_state == "subscribed"
                )
            )
        )
    assert opted_in and set(cc_list(stack.cc.url, chosen)["emails"]) == opted_in
    assert run["totals"]["kibo_list"]["exported"] == len(opted_in)
    stats = requests.get(f"{kibo.url}/_sandbox/stats", timeout=10).json()
    assert stats["total"] > 0  # the data came from the Kibo sandbox, not the Magento one
    magento = requests.get(f"{stack.magento.url}/_sandbox/stats", timeout=10).json()
    assert not any("V1/" in rule for rule in magento["calls"]), magento["calls"]
