"""The CC v3 client: error shapes (spec B7), retries and limits (B6), 401 refresh, paging."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.errors import (
    CCError,
    CCUnavailable,
    QuotaExceeded,
    QuotaExhausted,
    ReauthorizationRequired,
    Throttled,
)
from cc_storeplugin.extensions import db
from tests.conftest import dispose_engines

from . import API, TOKEN_URL, add_merchant, make_cc_app, reload

THROTTLED = {"error_key": "throttled", "error_message": "Too Many Requests"}
QUOTA = {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}
UNAVAILABLE = [
    {
        "error_key": "http.status.service_unavailable",
        "error_message": "Our internal service is temporarily unavailable.",
    }
]


@pytest.fixture
def cc_app(sqlite_url):
    app = make_cc_app(sqlite_url)
    with app.app_context():
        yield app
        db.session.remove()
        dispose_engines()


@pytest.fixture
def merchant(cc_app):
    return add_merchant(access="at-1", refresh="rt-1")


def _client(merchant_id: int, **kw) -> tuple[CCClient, list[float]]:
    client = CCClient(merchant_id, backoff_s=0.01, **kw)
    sleeps: list[float] = []
    client._sleep = sleeps.append
    return client, sleeps


def test_error_bodies_of_both_shapes_are_parsed() -> None:
    array = [
        {"error_key": "contacts.api.validation.error", "error_message": "email is invalid"},
        {"error_key": "contacts.api.validation.error", "error_message": "first_name too long"},
    ]
    err = CCError.from_response(400, json.dumps(array).encode())
    assert (err.status, err.error_key, err.message) == (
        400,
        "contacts.api.validation.error",
        "email is invalid",
    )
    assert err.errors == array
    unauthorized = CCError.from_response(401, b'{"error_key":"unauthorized","error_message":"x"}')
    assert (unauthorized.error_key, unauthorized.errors) == (
        "unauthorized",
        [{"error_key": "unauthorized", "error_message": "x"}],
    )
    assert isinstance(CCError.from_response(429, json.dumps(THROTTLED)), Throttled)
    quota = CCError.from_response(429, json.dumps(QUOTA))
    assert isinstance(quota, QuotaExceeded) and quota.message == "Limit Exceeded"
    garbage = CCError.from_response(502, b"<html>Bad gateway</html>")
    assert garbage.status == 502 and "Bad gateway" in garbage.message


@responses.activate
def test_503_then_success_is_retried_with_backoff(merchant) -> None:
    responses.get(API + "/contact_lists", status=503, json=UNAVAILABLE)
    responses.get(API + "/contact_lists", json={"lists": []})
    client, sleeps = _client(merchant.id)
    assert client.request("GET", "/contact_lists") == {"lists": []}
    assert client.calls == 2 and len(sleeps) == 1
    assert responses.calls[0].request.headers["Authorization"] == "Bearer at-1"


@responses.activate
def test_throttled_429_waits_about_a_second_and_retries(merchant) -> None:
    responses.get(API + "/contacts", status=429, json=THROTTLED)
    responses.get(API + "/contacts", status=429, json=THROTTLED)
    responses.get(API + "/contacts", json={"contacts": [{"contact_id": "c1"}]})
    client, sleeps = _client(merchant.id)
    assert client.request("GET", "/contacts")["contacts"][0]["contact_id"] == "c1"
    assert client.calls == 3 and len(sleeps) == 2 and min(sleeps) >= 1.0


@responses.activate
def test_quota_exceeded_is_not_retried_and_stops_every_later_call(merchant) -> None:
    responses.get(API + "/contacts", status=429, json=QUOTA)
    client, sleeps = _client(merchant.id)
    with pytest.raises(QuotaExceeded):
        client.request("GET", "/contacts")
    assert client.calls == 1 and sleeps == []
    other, _ = _client(merchant.id)  # another worker, same app key
    with pytest.raises(QuotaExhausted):
        other.request("GET", "/contacts")
    assert other.calls == 0 and len(responses.calls) == 1


@responses.activate
def test_permanent_4xx_is_raised_at_once(merchant) -> None:
    body = [{"error_key": "contacts.api.conflict", "error_message": "Email already exists"}]
    responses.post(API + "/contacts", status=409, json=body)
    client, _ = _client(merchant.id)
    with pytest.raises(CCError) as info:
        client.request("POST", "/contacts", json={"email_address": {"address": "a@b.example"}})
    assert (info.value.status, info.value.error_key) == (409, "contacts.api.conflict")
    assert client.calls == 1
    assert json.loads(responses.calls[0].request.body)["email_address"]["address"] == "a@b.example"


@responses.activate
def test_connection_errors_give_up_after_max_retries(merchant) -> None:
    responses.get(API + "/account/summary", body=requests.ConnectionError("refused"))
    client, sleeps = _client(merchant.id, max_retries=3)
    with pytest.raises(CCUnavailable) as info:
        client.account_summary()
    assert client.calls == 4 and len(sleeps) == 3
    assert sleeps == sorted(sleeps)  # exponential backoff (jittered within each step)
    assert "ConnectionError" in str(info.value)


@responses.activate
def test_401_refreshes_once_then_retries_with_the_new_token(merchant) -> None:
    responses.get(API + "/account/summary", status=401, json={"error_key": "unauthorized"})
    responses.get(API + "/account/summary", json={"encoded_account_id": "acct-1"})
    responses.post(
        TOKEN_URL,
        json={"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 86400},
    )
    client, _ = _client(merchant.id)
    assert client.account_summary() == {"encoded_account_id": "acct-1"}
    auth = [c.request.headers.get("Authorization") for c in responses.calls]
    assert auth[0] == "Bearer at-1" and auth[2] == "Bearer at-2"
    assert client.calls == 2
    stored = reload(merchant.id)
    assert (stored.cc_access_token, stored.cc_refresh_token) == ("at-2", "rt-2")


@responses.activate
def test_401_after_a_fresh_token_needs_the_merchant(merchant) -> None:
    responses.get(API + "/account/summary", status=401, json={"error_key": "unauthorized"})
    responses.post(
        TOKEN_URL,
        json={"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 86400},
    )
    client, _ = _client(merchant.id)
    with pytest.raises(ReauthorizationRequired):
        client.account_summary()
    assert client.calls == 2
    assert len([c for c in responses.calls if c.request.url == TOKEN_URL]) == 1
    assert reload(merchant.id).cc_auth_state == "reconnect_required"


@responses.activate
def test_paginate_follows_next_links_until_absent(merchant) -> None:
    responses.get(
        API + "/contacts",
        json={
            "contacts": [{"contact_id": "1"}, {"contact_id": "2"}],
            "_links": {"next": {"href": "/v3/contacts?cursor=abc"}},
        },
        match=[responses.matchers.query_param_matcher({"limit": "2"})],
    )
    responses.get(
        API + "/contacts",
        json={"contacts": [{"contact_id": "3"}]},
        match=[responses.matchers.query_param_matcher({"cursor": "abc"})],
    )
    client, _ = _client(merchant.id)
    ids = [c["contact_id"] for c in client.paginate("/contacts", {"limit": 2}, "contacts")]
    assert ids == ["1", "2", "3"] and client.calls == 2


def test_url_for_accepts_api_paths_and_links(cc_app) -> None:
    client = CCClient(None, access_token="t")
    assert client.url_for("/contacts") == API + "/contacts"
    assert client.url_for("/v3/contacts?cursor=x") == API + "/contacts?cursor=x"
    assert client.url_for(API + "/a") == API + "/a"


@responses.activate
def test_account_emails_asks_for_confirmed_addresses(merchant) -> None:
    responses.get(
        API + "/account/emails",
        json=[{"email_address": "news@shop.example", "confirm_status": "CONFIRMED"}],
        match=[responses.matchers.query_param_matcher({"confirm_status": "CONFIRMED"})],
    )
    client, _ = _client(merchant.id)
    assert [e["email_address"] for e in client.account_emails()] == ["news@shop.example"]


@responses.activate
def test_every_attempt_takes_a_rate_limit_slot(merchant) -> None:
    class CountingLimiter:
        acquired = 0

        def acquire(self) -> None:
            self.acquired += 1

        def exhaust(self) -> None:
            raise AssertionError("not a quota error")

    responses.get(API + "/contacts", status=500, json=UNAVAILABLE)
    responses.get(API + "/contacts", status=429, json=THROTTLED)
    responses.get(API + "/contacts", json={})
    limiter = CountingLimiter()
    client, _ = _client(merchant.id, limiter=limiter)
    client.request("GET", "/contacts")
    assert limiter.acquired == client.calls == len(responses.calls) == 3


def test_a_merchant_flagged_for_reconnection_makes_no_call(merchant) -> None:
    merchant.cc_auth_state = "reconnect_required"
    db.session.commit()
    client, _ = _client(merchant.id)
    with pytest.raises(ReauthorizationRequired):
        client.request("GET", "/contacts")
    assert client.calls == 0


def test_run_level_errors_are_told_apart_from_record_errors() -> None:
    record = CCError.from_response(400, b'[{"error_key":"x","error_message":"bad email"}]')
    assert not record.blocks_run
    assert CCError.from_response(403, b"[]").blocks_run
    assert QuotaExceeded().blocks_run and Throttled().blocks_run
    assert CCUnavailable("down").blocks_run and ReauthorizationRequired(1).blocks_run
