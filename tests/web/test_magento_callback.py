"""The Callback URL: answers fast, checks the key and fields, stores secrets encrypted."""

import pytest
from sqlalchemy import text

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection
from cc_storeplugin.queueing import queues

GOOD = {
    "oauth_consumer_key": "a" * 32,
    "oauth_consumer_secret": "b1" * 16,
    "oauth_verifier": "c2" * 16,
    "store_base_url": "https://shop.example/",
}


@pytest.fixture
def conn(merchant):
    c = StoreConnection(merchant=merchant, platform="magento")
    db.session.add(c)
    db.session.commit()
    return c


def _post(client, conn, **changes):
    form = {**GOOD, **changes}
    form = {k: v for k, v in form.items() if v is not None}
    return client.post(f"/magento/connections/{conn.key}/callback", data=form)


def test_a_valid_callback_is_stored_encrypted_and_starts_the_exchange(client, conn):
    resp = _post(client, conn)
    assert resp.status_code == 200
    db.session.expire_all()
    assert conn.status == "connecting"
    assert conn.store_base_url == "https://shop.example/"
    assert conn.credentials["consumer_secret"] == GOOD["oauth_consumer_secret"]
    raw = db.session.execute(
        text("SELECT credentials FROM store_connections WHERE id = :i"), {"i": conn.id}
    ).scalar_one()
    assert GOOD["oauth_consumer_secret"] not in raw and GOOD["oauth_verifier"] not in raw
    assert queues.get("default").job_ids == [f"magento-exchange-{conn.id}-1"]


def test_an_unknown_connection_key_is_404_and_stores_nothing(client, conn):
    resp = client.post("/magento/connections/nope/callback", data=GOOD)
    assert resp.status_code == 404
    db.session.expire_all()
    assert conn.credentials is None and conn.status == "waiting_for_store"


@pytest.mark.parametrize(
    "field,value",
    [
        ("oauth_verifier", None),
        ("oauth_verifier", "SHORT"),
        ("oauth_consumer_key", "A" * 32),
        ("oauth_consumer_secret", ""),
        ("store_base_url", "ftp://shop.example/"),
        ("store_base_url", None),
    ],
)
def test_missing_or_malformed_fields_are_400_naming_the_field(client, conn, field, value):
    resp = _post(client, conn, **{field: value})
    assert resp.status_code == 400
    assert resp.get_json()["field"] == field
    assert field in resp.get_json()["error"]
    db.session.expire_all()
    assert conn.credentials is None and conn.status == "waiting_for_store"
    assert queues.get("default").count == 0


def test_the_callback_never_redirects_and_needs_no_csrf_or_login(client, conn):
    resp = _post(client, conn)
    assert resp.status_code == 200 and "Location" not in resp.headers


def test_an_http_store_is_accepted_with_a_visible_warning(signed_in, conn):
    assert _post(signed_in, conn, store_base_url="http://shop.example/").status_code == 200
    page = signed_in.get(f"/connections/{conn.id}").get_data(as_text=True)
    assert 'id="insecure"' in page and "http://" in page


def test_reauthorize_with_the_same_consumer_replaces_the_verifier(client, conn):
    _post(client, conn)
    db.session.expire_all()
    conn.credentials = {**conn.credentials, "access_token": "t" * 32, "access_token_secret": "s"}
    conn.status = "active"
    db.session.commit()
    assert _post(client, conn, oauth_verifier="d3" * 16).status_code == 200
    db.session.expire_all()
    assert conn.credentials["verifier"] == "d3" * 16
    assert "access_token" not in conn.credentials
    assert conn.status == "connecting"
    assert conn.settings["magento"]["resume_status"] == "active"
    assert f"magento-exchange-{conn.id}-2" in queues.get("default").job_ids


def test_another_integration_cannot_take_over_a_connected_store(client, conn):
    _post(client, conn)
    db.session.expire_all()
    conn.status = "active"
    db.session.commit()
    resp = _post(client, conn, oauth_consumer_key="z" * 32)
    assert resp.status_code == 409 and resp.get_json()["field"] == "oauth_consumer_key"
    db.session.expire_all()
    assert conn.credentials["consumer_key"] == "a" * 32
