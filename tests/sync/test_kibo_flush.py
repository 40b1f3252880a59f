"""The Kibo event flush over real HTTP: the Kibo sandbox's signed sender → POST /kibo/events of
the served plugin → run_kibo_flush → the chosen list in the CC sandbox.

Also the fixture (``kibo_stack``) the unsubscribe and loop tests share.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.lists import find_or_create_list
from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    ConsentEvent,
    Merchant,
    StoreConnection,
    StoreEvent,
    SyncError,
    SyncRun,
)
from cc_storeplugin.sandbox.kibo import DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET
from cc_storeplugin.sandbox.kibo import create_app as kibo_app
from cc_storeplugin.sandbox.merchant import sign_in
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread
from cc_storeplugin.sandbox.stack import Stack
from cc_storeplugin.sandbox.storegen import generate_store
from cc_storeplugin.sync import kibo_settings
from cc_storeplugin.sync.kibo_flush import export_opted_in, run_kibo_flush
from tests.sync.conftest import cc_list

TENANT = 12345


def post(url: str, **kwargs: Any) -> requests.Response:
    return requests.post(url, timeout=60, **kwargs)


def get(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, timeout=60, **kwargs)


@dataclass
class KiboStack:
    stack: Stack
    kibo: RunningServer
    store: Path
    connection_id: int
    list_id: str

    @property
    def app(self):
        return self.stack.app

    def signup(self, email: str, first: str, last: str, accepts: bool = True) -> int:
        """A shopper creates an account on the storefront (customeraccount.created)."""
        body = {"emailAddress": email, "firstName": first, "lastName": last}
        resp = post(
            f"{self.kibo.url}/_sandbox/customers", json={**body, "acceptsMarketing": accepts}
        )
        resp.raise_for_status()
        return resp.json()["account"]["id"]

    def edit(self, account_id: int, **fields: Any) -> None:
        """A shopper edits the account (customeraccount.updated)."""
        resp = post(f"{self.kibo.url}/_sandbox/customers/{account_id}", json=fields)
        resp.raise_for_status()

    def wait_delivered(self) -> None:
        resp = post(f"{self.kibo.url}/_sandbox/events/wait", json={"timeout": 30})
        assert resp.json()["idle"], "the Kibo sandbox still has deliveries pending"

    def accepts_marketing(self, account_id: int) -> bool:
        with sqlite3.connect(self.store) as con:
            row = con.execute(
                "SELECT accepts_marketing FROM customers WHERE id = ?", (account_id,)
            ).fetchone()
        return bool(row[0])

    def list_emails(self) -> list[str]:
        return cc_list(self.stack.cc.url, self.list_id)["emails"]

    def flush(self, period: str) -> dict[str, Any]:
        with self.app.app_context():
            outcome = run_kibo_flush(self.connection_id, period)
            run = db.session.scalar(
                select(SyncRun).where(SyncRun.job_id == f"kibo-flush-{self.connection_id}-{period}")
            )
            return {"outcome": outcome, "status": run.status, "totals": dict(run.totals or {})}

    def contact(self, email: str) -> dict[str, Any]:
        with self.app.app_context():
            merchant_id = db.session.get(StoreConnection, self.connection_id).merchant_id
            page = CCClient(merchant_id).request("GET", "/contacts", params={"email": email})
            return (page.get("contacts") or [None])[0]

    def set(self, **values: Any) -> None:
        with self.app.app_context():
            conn = db.session.get(StoreConnection, self.connection_id)
            current = kibo_settings.load(conn)
            for key, value in values.items():
                setattr(current, key, value)
            kibo_settings.save(conn, current)
            db.session.commit()


@pytest.fixture
def kibo_stack(tmp_path: Path, stack_factory) -> KiboStack:
    store = tmp_path / "kibo-store.sqlite"
    generate_store(store, customers=6, seed=5)
    kibo = serve_in_thread(kibo_app(store=str(store), tenant_id=TENANT))
    stack = stack_factory(
        store,
        KIBO_HOME_BASE_URL=kibo.url,
        KIBO_APPLICATION_ID=DEFAULT_APPLICATION_ID,
        KIBO_SHARED_SECRET=DEMO_SHARED_SECRET,
    )
    stack.extra.append(kibo)
    sign_in(requests.Session(), stack.plugin_url)
    with stack.app.app_context():
        merchant = db.session.scalars(select(Merchant)).one()
        conn = StoreConnection(
            merchant_id=merchant.id,
            platform="kibo",
            external_id=str(TENANT),
            status="active",
            settings={"installed": True, "enabled": True},
        )
        db.session.add(conn)
        db.session.commit()
        list_id = find_or_create_list(CCClient(merchant.id), "Kibo opt-ins")
        kibo_settings.save(
            conn, kibo_settings.KiboSettings(list_id=list_id, list_name="Kibo opt-ins")
        )
        db.session.commit()
        connection_id = conn.id
    post(f"{kibo.url}/_sandbox/endpoint", json={"url": f"{stack.plugin_url}/kibo/events"})
    yield KiboStack(stack, kibo, store, connection_id, list_id)
    kibo.app.extensions["kibo"].events.stop()


def events_by_status(app, connection_id: int) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(
            select(StoreEvent.status, db.func.count())
            .where(StoreEvent.topic.like("customeraccount.%"))
            .group_by(StoreEvent.status)
        ).all()
        return dict(rows)


def test_an_opt_in_reaches_the_list_once_through_retries_duplicates_and_fan_out(kibo_stack):
    ks = kibo_stack
    # deliveries fail first (wrong path → 404, Kibo retries), then reach the plugin
    post(f"{ks.kibo.url}/_sandbox/endpoint", json={"url": f"{ks.stack.plugin_url}/kibo/x"})
    post(f"{ks.kibo.url}/_sandbox/retry-policy", json={"delays": [0.3]})
    account = ks.signup("Ada.Opt@Example.com", "Ada", "Lovelace")
    time.sleep(0.5)
    post(f"{ks.kibo.url}/_sandbox/endpoint", json={"url": f"{ks.stack.plugin_url}/kibo/events"})
    ks.wait_delivered()
    deliveries = get(f"{ks.kibo.url}/_sandbox/deliveries").json()["deliveries"]
    assert len(deliveries) == 2  # one per site
    assert all(len(d["attempts"]) > 1 for d in deliveries)  # retried
    post(f"{ks.kibo.url}/_sandbox/deliveries/{deliveries[0]['id']}/replay")  # duplicate
    ks.edit(account, firstName="Ada")  # an update, older topics collapse
    ks.wait_delivered()

    result = ks.flush("p1")
    assert result["status"] == "COMPLETE", result
    assert ks.list_emails() == ["ada.opt@example.com"]
    totals = result["totals"]
    assert totals["events"] == 4  # 2 created (fan-out) + 2 updated; the replay was stored once
    assert (totals["customers"], totals["exported"], totals["errors"]) == (1, 1, 0)
    assert events_by_status(ks.app, ks.connection_id) == {"applied": 1, "ignored": 3}
    with ks.app.app_context():
        ledger = db.session.scalars(select(ConsentEvent)).all()
        assert [(e.email, e.action) for e in ledger] == [("ada.opt@example.com", "subscribed")]

    again = ks.flush("p1")
    assert again["outcome"] == "already complete"
    nothing = ks.flush("p2")
    assert nothing["totals"]["events"] == 0 and nothing["totals"]["exported"] == 0
    state = get(f"{ks.stack.cc.url}/_sandbox/state").json()
    assert state["contacts"]["total"] == 1


def test_welcome_on_sends_new_opt_ins_through_the_sign_up_form(kibo_stack):
    ks = kibo_stack
    ks.set(welcome_email=True)
    ks.signup("grace@example.com", "Grace", "Hopper")
    ks.signup("nobody@example.com", "No", "Body", accepts=False)
    ks.wait_delivered()
    result = ks.flush("w1")
    assert result["totals"]["exported"] == 1
    assert result["totals"]["skipped"] == 1
    assert ks.list_emails() == ["grace@example.com"]
    contact = ks.contact("grace@example.com")
    assert contact["email_address"]["permission_to_send"] == "explicit"
    assert contact["email_address"]["opt_in_source"] == "Contact"
    assert (contact["first_name"], contact["last_name"]) == ("Grace", "Hopper")
    stats = get(f"{ks.stack.cc.url}/_sandbox/stats").json()["calls"]
    assert any("sign_up_form" in rule for rule in stats), stats


def test_a_contact_from_another_source_keeps_its_name_and_only_joins_the_list(kibo_stack):
    ks = kibo_stack
    with ks.app.app_context():
        merchant_id = db.session.get(StoreConnection, ks.connection_id).merchant_id
        CCClient(merchant_id).request(
            "POST",
            "/contacts",
            json={
                "email_address": {"address": "lin@example.com", "permission_to_send": "implicit"},
                "first_name": "Lin",
                "last_name": "FromFacebook",
                "create_source": "Account",
            },
        )
    ks.set(welcome_email=True)
    ks.signup("lin@example.com", "Linda", "Kibo")
    ks.wait_delivered()
    assert ks.flush("o1")["totals"]["exported"] == 1
    assert ks.list_emails() == ["lin@example.com"]
    contact = ks.contact("lin@example.com")
    assert (contact["first_name"], contact["last_name"]) == ("Lin", "FromFacebook")


def test_an_email_change_keeps_the_old_address_and_a_poison_event_is_quarantined(kibo_stack):
    ks = kibo_stack
    account = ks.signup("old@example.com", "Olga", "Old")
    ks.wait_delivered()
    ks.flush("e1")
    ks.edit(account, emailAddress="new@example.com")
    post(
        f"{ks.kibo.url}/_sandbox/events",
        json={"topic": "customeraccount.updated", "entityId": "not-an-id", "siteId": 23456},
    )
    ks.wait_delivered()
    result = ks.flush("e2")
    assert result["status"] == "COMPLETE"
    assert sorted(ks.list_emails()) == ["new@example.com", "old@example.com"]
    assert ks.contact("old@example.com")["email_address"]["permission_to_send"] != "unsubscribed"
    assert result["totals"]["errors"] == 1
    with ks.app.app_context():
        errors = db.session.scalars(select(SyncError)).all()
        assert [e.record_ref for e in errors] == ["customer not-an-id"]
        failed = db.session.scalars(select(StoreEvent).where(StoreEvent.status == "failed")).all()
        assert [e.entity_id for e in failed] == ["not-an-id"]


def test_injected_429s_and_5xx_lose_nothing(kibo_stack):
    ks = kibo_stack
    for n in range(5):
        ks.signup(f"shopper{n}@example.com", f"S{n}", "Shopper")
    ks.wait_delivered()
    post(f"{ks.kibo.url}/_sandbox/faults", json={"p5xx": 0.3, "p429": 0.2, "seed": 4})
    post(f"{ks.stack.cc.url}/_sandbox/faults", json={"p5xx": 0.2, "p429": 0.2, "seed": 4})
    result = ks.flush("f1")
    post(f"{ks.kibo.url}/_sandbox/faults", json={"p5xx": 0, "p429": 0})
    post(f"{ks.stack.cc.url}/_sandbox/faults", json={"p5xx": 0, "p429": 0})
    assert result["status"] == "COMPLETE"
    assert ks.list_emails() == [f"shopper{n}@example.com" for n in range(5)]
    faults = get(f"{ks.stack.cc.url}/_sandbox/stats").json()["faults"]
    assert faults  # faults were really injected


def test_export_opted_in_sends_every_opted_in_customer_of_the_connection(kibo_stack):
    ks = kibo_stack
    ks.signup("yes@example.com", "Yes", "Please", accepts=True)
    ks.signup("no@example.com", "No", "Thanks", accepts=False)
    ks.wait_delivered()
    ks.set(list_id=None)
    assert ks.flush("x1")["totals"]["exported"] == 0  # no list chosen yet: kept in the mirror
    ks.set(list_id=ks.list_id)
    with ks.app.app_context():
        conn = db.session.get(StoreConnection, ks.connection_id)
        run = SyncRun(kind="import", connection_id=conn.id, status="RUNNING", totals={})
        db.session.add(run)
        db.session.commit()
        counts = export_opted_in(CCClient(conn.merchant_id), conn.id, run.id)
    assert counts["exported"] == 1 and counts["errors"] == 0
    assert ks.list_emails() == ["yes@example.com"]
