"""The customer's page shows the transition log a real daily sync wrote.

The scenario (built once per module): the Magento sandbox store is imported like a merchant
does it, then an injected clock runs two real daily syncs over loopback HTTP — 31 days after
the newest purchase (its buyer leaves Recent) and 121 days after it (they enter Lapsed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, StoreConnection
from cc_storeplugin.sandbox.stack import Stack, start_stack
from cc_storeplugin.sandbox.storegen import generate_store
from cc_storeplugin.web.customers import readable_log
from tests.sync.test_daily_sync import daily, import_store, last_purchases
from tests.web.conftest import make_merchant, sign_in


@dataclass
class Crossed:
    """What the scenario did: the stack, the connection, the buyer and the runs' instants."""

    stack: Stack
    connection_id: int
    merchant_id: int
    email: str
    customer_id: int
    last_purchase: datetime
    import_now: datetime
    now1: datetime
    now2: datetime
    run1: int
    run2: int


def cross_30_and_120_days(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crossed]:
    """Import a 300-customer store, then daily syncs at +31 and +121 days of its newest
    purchase; yields what happened and stops the stack after."""
    tmp = tmp_path_factory.mktemp("crossed")
    store = tmp / "store.sqlite"
    # the import reads the real clock: the store's newest purchases must be recent today
    store_now = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    generate_store(store, customers=300, seed=7, now=store_now)
    stack = start_stack(
        store,
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'plugin.sqlite'}",
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SECRET_KEY": "customer-page",
            "INSTANCE_DIR": str(tmp),
            "REDIS_URL": None,
        },
        cc_options={"auto_approve": False},
        magento_options={"max_page_size": 300},
    )
    stack.store_file = store
    try:
        with stack.app.app_context():
            db.create_all()
        connection_id, import_now = import_store(stack)
        newest, email = last_purchases(store)[0]
        now1 = newest + timedelta(days=31, hours=1)
        now2 = newest + timedelta(days=121, hours=1)
        run1 = daily(stack, connection_id, "d1", now1)["id"]
        run2 = daily(stack, connection_id, "d2", now2)["id"]
        with stack.app.app_context():
            customer = db.session.scalar(db.select(Customer).where(Customer.email == email))
            merchant_id = db.session.get(StoreConnection, connection_id).merchant_id
            customer_id = customer.id
        yield Crossed(
            stack, connection_id, merchant_id, email, customer_id, newest, import_now,
            now1, now2, run1, run2,
        )  # fmt: skip
    finally:
        stack.stop()
        with stack.app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture(scope="module")
def crossed(tmp_path_factory) -> Iterator[Crossed]:
    yield from cross_30_and_120_days(tmp_path_factory)


def client_of(crossed: Crossed, merchant_id: int | None = None):
    """A test client of the plugin signed in as the connection's merchant (or another)."""
    client = crossed.stack.app.test_client()
    with client.session_transaction() as sess:
        sess["merchant_id"] = merchant_id or crossed.merchant_id
        sess["csrf_token"] = "test-csrf"
    return client


def day(when: datetime) -> str:
    return when.strftime("%Y-%m-%d")


def history(html: str) -> list[str]:
    """The history lines of a customer page, as shown (newest first)."""
    block = html.split('id="transitions"', 1)[1].split("</ul>", 1)[0]
    return [re.sub(r"\s+", " ", li).strip() for li in re.findall(r"<li>(.*?)</li>", block, re.S)]


def test_the_page_shows_recent_to_lapsed_with_dates_and_reasons(crossed):
    client = client_of(crossed)
    resp = client.get(f"/connections/{crossed.connection_id}/customers/{crossed.customer_id}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert crossed.email in html
    bought = day(crossed.last_purchase)
    lines = history(html)
    assert lines[0] == (
        f"Recent \u2192 Lapsed on {day(crossed.now2)}: last purchase {bought}, 121 days ago"
    )
    assert lines[1] == f"Left Recent on {day(crossed.now1)}: last purchase {bought}, 31 days ago"
    # the import put them in Recent (and in All) on the import's day
    assert any(
        re.fullmatch(
            rf"Entered Recent on {day(crossed.import_now)}: last purchase {bought}, \d+ days? ago",
            line,
        )
        for line in lines[2:]
    ), lines
    assert f"Entered All on {day(crossed.import_now)}: customer since first import" in lines
    # the lists they are in now
    segments = html.split('id="segments"', 1)[1].split("</ul>", 1)[0]
    assert "Magento \u2013 Lapsed Customers" in segments
    assert "Magento \u2013 Recent Customers" not in segments
    assert f'id="last-purchase">{bought}<' in html


def test_search_by_email_prefix_links_to_the_customer(crossed):
    client = client_of(crossed)
    prefix = "  " + crossed.email[:5].upper()
    resp = client.get(
        f"/connections/{crossed.connection_id}/customers", query_string={"email": prefix}
    )
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    link = f"/connections/{crossed.connection_id}/customers/{crossed.customer_id}"
    assert f'href="{link}"' in html
    emails = re.findall(r'customers/\d+">([^<]+)</a>', html)
    assert emails and all(e.startswith(crossed.email[:5]) for e in emails)
    nothing = client.get(
        f"/connections/{crossed.connection_id}/customers", query_string={"email": "zzz-nobody"}
    )
    assert 'id="no-customers"' in nothing.get_data(as_text=True)
    # the connection page links here
    page = client.get(f"/connections/{crossed.connection_id}").get_data(as_text=True)
    assert f'href="/connections/{crossed.connection_id}/customers" id="customers-link"' in page


def test_another_merchant_gets_404_for_the_page_and_the_search(crossed):
    with crossed.stack.app.app_context():
        other = make_merchant("acct-other-page")
        other_id = other.id
    client = client_of(crossed, other_id)
    base = f"/connections/{crossed.connection_id}/customers"
    assert client.get(base).status_code == 404
    page = client.get(f"{base}/{crossed.customer_id}")
    assert page.status_code == 404 and crossed.email not in page.get_data(as_text=True)


def test_a_customer_of_another_connection_is_404_even_for_the_same_merchant(crossed):
    with crossed.stack.app.app_context():
        second = StoreConnection(merchant_id=crossed.merchant_id, platform="magento")
        db.session.add(second)
        db.session.commit()
        second_id = second.id
    client = client_of(crossed)
    resp = client.get(f"/connections/{second_id}/customers/{crossed.customer_id}")
    assert resp.status_code == 404


def test_signed_out_is_sent_to_sign_in(crossed):
    client = crossed.stack.app.test_client()
    resp = client.get(f"/connections/{crossed.connection_id}/customers/{crossed.customer_id}")
    assert resp.status_code == 302 and "/auth/constantcontact/login" in resp.headers["Location"]


def test_moves_within_one_run_read_as_one_line():
    at = datetime.fromisoformat("2026-11-23T03:00:00+00:00")
    log = [
        {"segment_key": "recent", "segment_name": "Magento \u2013 Recent Customers",
         "action": "entered", "reason": "entered Recent: last purchase 2026-11-20, 3 days ago",
         "occurred_at": at, "sync_run_id": 9},
        {"segment_key": "lapsed", "segment_name": "Magento \u2013 Lapsed Customers",
         "action": "left", "reason": "left Lapsed: last purchase 2026-11-20, 3 days ago",
         "occurred_at": at, "sync_run_id": 9},
        {"segment_key": "first_time", "segment_name": "Magento \u2013 First-time Customers",
         "action": "left", "reason": "left First-time: 2 purchases",
         "occurred_at": at, "sync_run_id": 9},
        {"segment_key": "repeat", "segment_name": "Magento \u2013 Repeat Customers",
         "action": "entered", "reason": "entered Repeat: 2 purchases",
         "occurred_at": at, "sync_run_id": 9},
    ]  # fmt: skip
    texts = sorted(line["text"] for line in readable_log(log))
    assert texts == [
        "First-time \u2192 Repeat on 2026-11-23: 2 purchases",
        "Lapsed \u2192 Recent on 2026-11-23: last purchase 2026-11-20, 3 days ago",
    ]


def test_signed_in_merchant_without_the_connection_fixture_gets_404(client, app):
    merchant = make_merchant("acct-lone")
    sign_in(client, merchant)
    assert client.get("/connections/999/customers").status_code == 404
