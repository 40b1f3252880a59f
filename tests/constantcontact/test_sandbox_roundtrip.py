"""Sign-in, token life and revocation against the CC sandbox over loopback HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import text

from cc_storeplugin.constantcontact import oauth2
from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.errors import ReauthorizationRequired
from cc_storeplugin.extensions import db
from tests.conftest import dispose_engines, make_app

from . import cc_sandbox, reload, sandbox_calls, sandbox_sign_in

TOKEN_KEY = "POST /oauth2/default/v1/token"
ACCOUNT = "a07e1lsandbox0001"


@pytest.fixture
def sandbox_app(sqlite_url):
    """(sandbox server, app context pointing at it)."""
    with cc_sandbox() as (server, settings):
        app = make_app(sqlite_url, **settings)
        with app.app_context():
            db.create_all()
            yield server, app
            db.session.remove()
            dispose_engines()


def test_sign_in_creates_the_merchant_with_encrypted_tokens(sandbox_app) -> None:
    server, _ = sandbox_app
    merchant = sandbox_sign_in()
    stored = reload(merchant.id)
    assert (stored.cc_account_id, stored.name, stored.email) == (
        ACCOUNT,
        "Sandbox Outfitters",
        "owner@sandbox-outfitters.example",
    )
    assert stored.cc_auth_state == "connected"
    assert set(stored.cc_scopes.split()) == set(oauth2.SCOPES.split())
    assert stored.cc_token_expires_at - datetime.now(UTC) > timedelta(hours=23)
    raw = db.session.execute(text("SELECT cc_access_token, cc_refresh_token FROM merchants")).one()
    assert stored.cc_access_token not in raw[0] and stored.cc_refresh_token not in raw[1]
    client = CCClient(merchant.id)
    assert client.account_summary()["organization_name"] == "Sandbox Outfitters"
    emails = [e["email_address"] for e in client.account_emails()]
    assert emails == ["owner@sandbox-outfitters.example", "news@sandbox-outfitters.example"]
    assert client.calls == 2
    assert sandbox_calls(server.url, TOKEN_KEY) == 1  # no refresh while the token is fresh

    again = sandbox_sign_in()  # signing in again finds the same merchant
    assert (
        again.id == merchant.id
        and db.session.execute(text("SELECT COUNT(*) FROM merchants")).scalar_one() == 1
    )


def test_a_wrong_pkce_verifier_is_refused(sandbox_app) -> None:
    _, challenge = oauth2.new_pkce_pair()
    resp = requests.get(oauth2.authorization_url("s", challenge), allow_redirects=False, timeout=10)
    code = resp.headers["Location"].split("code=")[1].split("&")[0]
    with pytest.raises(oauth2.AuthorizationFailed) as info:
        oauth2.exchange_code(code, oauth2.new_pkce_pair()[0])
    assert info.value.error == "invalid_grant"


def test_a_token_near_expiry_is_refreshed_before_the_call(sandbox_app) -> None:
    server, _ = sandbox_app
    merchant = sandbox_sign_in()
    first = reload(merchant.id)
    old_access, old_refresh = first.cc_access_token, first.cc_refresh_token
    first.cc_token_expires_at = datetime.now(UTC) + timedelta(seconds=60)
    db.session.commit()
    client = CCClient(merchant.id)
    assert client.account_summary()["encoded_account_id"] == ACCOUNT
    assert client.calls == 1  # refreshed up front, no 401 round trip
    stored = reload(merchant.id)
    assert stored.cc_access_token != old_access and stored.cc_refresh_token != old_refresh
    assert sandbox_calls(server.url, TOKEN_KEY) == 2


def test_a_token_expired_at_cc_is_refreshed_after_the_401(sandbox_app) -> None:
    server, _ = sandbox_app
    merchant = sandbox_sign_in()
    old_access = merchant.cc_access_token
    requests.post(server.url + "/_sandbox/clock", json={"advance_s": 86400 + 60}, timeout=10)
    client = CCClient(merchant.id)
    assert client.account_summary()["encoded_account_id"] == ACCOUNT
    assert client.calls == 2  # the 401, then the retry with the new token
    stored = reload(merchant.id)
    assert stored.cc_access_token != old_access and stored.cc_auth_state == "connected"


def test_revoked_access_needs_the_merchant_then_reconnecting_resumes(sandbox_app) -> None:
    server, _ = sandbox_app
    merchant = sandbox_sign_in()
    requests.post(server.url + "/_sandbox/revoke", json={}, timeout=10)
    client = CCClient(merchant.id)
    with pytest.raises(ReauthorizationRequired) as info:
        client.account_summary()
    assert info.value.merchant_id == merchant.id
    assert reload(merchant.id).cc_auth_state == "reconnect_required"
    later = CCClient(merchant.id)
    with pytest.raises(ReauthorizationRequired):
        later.request("GET", "/contact_lists")
    assert later.calls == 0  # paused: nothing more is spent on a dead grant

    back = sandbox_sign_in()
    assert back.id == merchant.id and reload(merchant.id).cc_auth_state == "connected"
    assert CCClient(merchant.id).account_summary()["encoded_account_id"] == ACCOUNT


def test_the_shared_limiter_keeps_the_client_under_ccs_four_per_second(sandbox_app) -> None:
    server, _ = sandbox_app
    merchant = sandbox_sign_in()
    client = CCClient(merchant.id)
    for n in range(3):
        client.request("POST", "/contact_lists", json={"name": f"List {n}"})
    start = time.monotonic()
    names = [item["name"] for item in client.paginate("/contact_lists", {"limit": 1}, "lists")]
    assert sorted(names) == ["List 0", "List 1", "List 2"]
    for _ in range(4):
        client.account_summary()
    assert client.calls == 3 + 3 + 4  # not one call was throttled and retried
    assert time.monotonic() - start >= 1.0
    log = requests.get(server.url + "/_sandbox/log?limit=1000", timeout=10).json()["entries"]
    assert all(entry["status"] != 429 for entry in log)
