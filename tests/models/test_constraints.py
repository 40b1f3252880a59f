"""The model's constraints hold on SQLite and on PostgreSQL."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    ConsentEvent,
    Customer,
    LedgerIsAppendOnly,
    Merchant,
    StoreConnection,
    StoreEvent,
    normalize_email,
)


def _connection(merchant: Merchant, platform: str = "magento") -> StoreConnection:
    conn = StoreConnection(merchant=merchant, platform=platform)
    db.session.add(conn)
    db.session.flush()
    return conn


@pytest.fixture
def merchant(any_db_app):
    m = Merchant(cc_account_id="acct-1", name="Acme")
    db.session.add(m)
    db.session.commit()
    return m


def test_same_email_twice_in_one_connection_is_rejected(merchant):
    conn = _connection(merchant)
    db.session.add(Customer(connection_id=conn.id, email=normalize_email(" Ann@Example.com ")))
    db.session.commit()
    db.session.add(Customer(connection_id=conn.id, email=normalize_email("ann@example.COM")))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert db.session.scalar(select(db.func.count()).select_from(Customer)) == 1


def test_same_email_is_allowed_across_connections(merchant):
    a, b = _connection(merchant), _connection(merchant, "kibo")
    db.session.add_all(
        [
            Customer(connection_id=a.id, email="ann@example.com"),
            Customer(connection_id=b.id, email="ann@example.com"),
        ]
    )
    db.session.commit()
    assert db.session.scalar(select(db.func.count()).select_from(Customer)) == 2


def test_unknown_platform_and_status_are_rejected(merchant):
    db.session.add(StoreConnection(merchant=merchant, platform="shopify"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(StoreConnection(merchant=merchant, platform="magento", status="happy"))
    with pytest.raises(IntegrityError):
        db.session.commit()


def test_the_same_event_id_is_stored_once(merchant):
    payload = {"eventId": "e-1", "topic": "customeraccount.updated"}
    db.session.add(StoreEvent(platform="kibo", event_id="e-1", topic="x", payload=payload))
    db.session.commit()
    db.session.add(StoreEvent(platform="kibo", event_id="e-1", topic="x", payload=payload))
    with pytest.raises(IntegrityError):
        db.session.commit()


def test_secrets_are_unreadable_in_the_raw_row(merchant):
    conn = _connection(merchant)
    conn.credentials = {"consumer_secret": "cs-PLAINTEXT-123", "access_token": "at-PLAIN-456"}
    merchant.cc_refresh_token = "rt-PLAINTEXT-789"
    db.session.commit()
    raw_conn = db.session.execute(
        text("SELECT credentials FROM store_connections WHERE id = :id"), {"id": conn.id}
    ).scalar_one()
    raw_merchant = db.session.execute(
        text("SELECT cc_refresh_token FROM merchants WHERE id = :id"), {"id": merchant.id}
    ).scalar_one()
    for raw, secret in (
        (raw_conn, "PLAINTEXT-123"),
        (raw_conn, "PLAIN-456"),
        (raw_merchant, "PLAINTEXT-789"),
    ):
        assert secret not in raw
        assert raw.startswith("gAAAA")  # a Fernet token
    db.session.expire_all()
    assert db.session.get(StoreConnection, conn.id).credentials["consumer_secret"] == (
        "cs-PLAINTEXT-123"
    )
    assert db.session.get(Merchant, merchant.id).cc_refresh_token == "rt-PLAINTEXT-789"


def test_timestamps_come_back_as_aware_utc(merchant):
    conn = _connection(merchant)
    when = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    db.session.add(Customer(connection_id=conn.id, email="a@b.example", last_purchase_at=when))
    db.session.commit()
    db.session.expire_all()
    got = db.session.scalars(select(Customer)).one().last_purchase_at
    assert got == when and got.tzinfo is not None


def test_the_consent_ledger_is_append_only(merchant):
    conn = _connection(merchant)
    entry = ConsentEvent(
        connection_id=conn.id,
        email="a@b.example",
        action="unsubscribed",
        source="constantcontact",
        occurred_at=datetime.now(UTC),
    )
    db.session.add(entry)
    db.session.commit()
    entry.action = "subscribed"
    with pytest.raises(LedgerIsAppendOnly):
        db.session.commit()
    db.session.rollback()
    db.session.delete(entry)
    with pytest.raises(LedgerIsAppendOnly):
        db.session.commit()
    db.session.rollback()
    assert db.session.get(ConsentEvent, entry.id).action == "unsubscribed"
