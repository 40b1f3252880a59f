"""The Identity Link popup refuses what it must and explains what to do."""

from urllib.parse import urlencode

import pytest

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection
from tests.web.conftest import make_merchant, sign_in

KEY = "a" * 32


@pytest.fixture
def conn(merchant):
    c = StoreConnection(
        merchant=merchant,
        platform="magento",
        status="connecting",
        store_base_url="https://shop.example/",
        credentials={"consumer_key": KEY, "consumer_secret": "b" * 32, "verifier": "c" * 32},
        settings={"magento": {"exchange": "pending", "generation": 1}},
    )
    db.session.add(c)
    db.session.commit()
    return c


def _url(conn, **params):
    query = {
        "oauth_consumer_key": KEY,
        "success_call_back": "https://shop.example/admin/admin/integration/loginSuccessCallback/key/x/",
    }
    query.update(params)
    return f"/magento/connections/{conn.key}/identity?" + urlencode(query)


def test_signed_out_goes_to_constant_contact_sign_in_and_comes_back(client, conn):
    resp = client.get(_url(conn))
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/auth/constantcontact/login?next=")
    assert "identity" in resp.headers["Location"]


def test_another_merchants_popup_is_403(client, conn):
    sign_in(client, make_merchant("acct-other"))
    assert client.get(_url(conn)).status_code == 403


def test_success_call_back_on_another_host_is_refused(signed_in, conn):
    resp = signed_in.get(_url(conn, success_call_back="https://evil.example/steal"))
    assert resp.status_code == 400
    assert "success_call_back" in resp.get_data(as_text=True)


def test_a_different_consumer_key_is_refused(signed_in, conn):
    resp = signed_in.get(_url(conn, oauth_consumer_key="z" * 32))
    assert resp.status_code == 400 and "oauth_consumer_key" in resp.get_data(as_text=True)


def test_missing_parameter_is_named(signed_in, conn):
    resp = signed_in.get(f"/magento/connections/{conn.key}/identity?oauth_consumer_key={KEY}")
    assert resp.status_code == 400 and "success_call_back" in resp.get_data(as_text=True)


def test_before_magento_called_back_the_page_says_what_to_do(signed_in, merchant):
    c = StoreConnection(merchant=merchant, platform="magento")
    db.session.add(c)
    db.session.commit()
    resp = signed_in.get(_url(c))
    assert resp.status_code == 409 and "Activate" in resp.get_data(as_text=True)


def test_the_allow_page_shows_what_will_be_shared(signed_in, conn):
    page = signed_in.get(_url(conn)).get_data(as_text=True)
    assert 'id="allow"' in page
    for resource in ("Magento_Customer::customer", "Magento_Sales::actions_view"):
        assert resource in page


def test_an_expired_exchange_tells_the_merchant_to_reauthorize_in_magento(signed_in, conn):
    conn.settings = {
        "magento": {
            "exchange": "expired",
            "generation": 1,
            "exchange_error": "Consumer key has expired",
        }
    }
    db.session.commit()
    resp = signed_in.post(_url(conn), data={"step": "allow", "csrf_token": "test-csrf"})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert "five minutes" in text and "Reauthorize" in text


def test_a_pending_exchange_shows_a_self_refreshing_wait_page(signed_in, conn):
    resp = signed_in.post(_url(conn), data={"step": "allow", "csrf_token": "test-csrf"})
    assert resp.status_code == 200
    assert 'http-equiv="refresh"' in resp.get_data(as_text=True)


def test_allow_without_the_csrf_token_is_refused(signed_in, conn):
    resp = signed_in.post(_url(conn), data={"step": "allow"})
    assert resp.status_code == 400 and "csrf_token" in resp.get_data(as_text=True)
