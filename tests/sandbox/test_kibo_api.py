"""Kibo sandbox over HTTP: app auth tickets, customer accounts, orders, carts, errors."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cc_storeplugin.sandbox.kibo import DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET, create_app
from cc_storeplugin.sandbox.kibo.orders import STATE_MAP, kibo_statuses
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread
from cc_storeplugin.sandbox.storegen import generate_store
from tests.sandbox.openapi import response_validator

CUSTOMER = "kibo-openapi_customer.json"
COMMERCE = "kibo-openapi_commerce.json"
APPDEV = "kibo-openapi_appdevelopement.json"
TENANT, MAIN, OUTLET = 12345, 23456, 23457


class Clock:
    """A settable epoch clock for the sandbox."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kibo") / "kibo-api.sqlite"
    generate_store(path, customers=300, seed=7, now="2026-11-01 00:00:00")
    return path


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def kibo(store: Path, clock: Clock) -> Iterator[RunningServer]:
    server = serve_in_thread(create_app(store=str(store), clock=clock, ticket_ttl_s=600))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def db(store: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(str(store))
    yield conn
    conn.close()


def authenticate(base: str) -> dict:
    resp = requests.post(
        f"{base}/api/platform/applications/authtickets",
        json={"applicationId": DEFAULT_APPLICATION_ID, "sharedSecret": DEMO_SHARED_SECRET},
        timeout=5,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def headers(kibo: RunningServer) -> dict[str, str]:
    return {"x-vol-app-claims": authenticate(kibo.url)["accessToken"], "x-vol-tenant": str(TENANT)}


def get(kibo: RunningServer, path: str, headers: dict, **params) -> requests.Response:
    return requests.get(f"{kibo.url}{path}", headers=headers, params=params, timeout=10)


def assert_kibo_error(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["errorCode"] == code
    assert {"message", "applicationName", "additionalErrorData", "items", "exceptionDetail"} <= set(
        body
    )


# --- auth ----------------------------------------------------------------------------


def test_auth_ticket_issue_matches_schema_and_rejects_bad_secret(kibo: RunningServer) -> None:
    ticket = authenticate(kibo.url)
    response_validator(APPDEV, "/platform/applications/authtickets", "post", 200)(ticket)
    assert set(ticket) == {
        "accessToken",
        "accessTokenExpiration",
        "refreshToken",
        "refreshTokenExpiration",
    }
    assert ticket["accessTokenExpiration"].endswith("Z")
    bad = requests.post(
        f"{kibo.url}/api/platform/applications/authtickets",
        json={"applicationId": DEFAULT_APPLICATION_ID, "sharedSecret": "nope"},
        timeout=5,
    )
    assert_kibo_error(bad, 401, "UNAUTHORIZED")


def test_tenant_api_needs_a_live_ticket(kibo: RunningServer, clock: Clock) -> None:
    path = "/api/commerce/customer/accounts"
    assert_kibo_error(get(kibo, path, {}), 401, "UNAUTHORIZED")
    assert_kibo_error(get(kibo, path, {"x-vol-app-claims": "forged"}), 401, "UNAUTHORIZED")
    ticket = authenticate(kibo.url)
    assert get(kibo, path, {"x-vol-app-claims": ticket["accessToken"]}).status_code == 200
    bearer = {"Authorization": f"Bearer {ticket['accessToken']}"}
    assert get(kibo, path, bearer).status_code == 200
    claims = {"x-vol-app-claims": ticket["accessToken"]}
    assert_kibo_error(get(kibo, path, {**claims, "x-vol-tenant": "999"}), 401, "UNAUTHORIZED")
    assert_kibo_error(get(kibo, path, {**claims, "x-vol-site": "1"}), 404, "ITEM_NOT_FOUND")
    saved = clock.t
    try:
        clock.t += 601  # ticket_ttl_s=600
        expired = get(kibo, path, claims)
        assert_kibo_error(expired, 401, "UNAUTHORIZED")
        assert "expired" in expired.json()["message"]
    finally:
        clock.t = saved


def test_refresh_gives_new_access_token_and_keeps_refresh_token(
    kibo: RunningServer, clock: Clock
) -> None:
    ticket = authenticate(kibo.url)
    saved = clock.t
    try:
        clock.t += 601
        resp = requests.put(
            f"{kibo.url}/api/platform/applications/authtickets/refresh-ticket",
            json={"refreshToken": ticket["refreshToken"]},
            timeout=5,
        )
        assert resp.status_code == 200
        new = resp.json()
        response_validator(APPDEV, "/platform/applications/authtickets/refresh-ticket", "put", 200)(
            new
        )
        assert new["accessToken"] != ticket["accessToken"]
        assert new["refreshToken"] == ticket["refreshToken"]
        assert new["refreshTokenExpiration"] == ticket["refreshTokenExpiration"]
        assert new["accessTokenExpiration"] > ticket["accessTokenExpiration"]
        path = "/api/commerce/customer/accounts"
        assert get(kibo, path, {"x-vol-app-claims": new["accessToken"]}).status_code == 200
        assert get(kibo, path, {"x-vol-app-claims": ticket["accessToken"]}).status_code == 401
        clock.t = saved + 86401  # past the refresh token's lifetime
        late = requests.put(
            f"{kibo.url}/api/platform/applications/authtickets/refresh-ticket",
            json={"refreshToken": ticket["refreshToken"]},
            timeout=5,
        )
        assert_kibo_error(late, 401, "UNAUTHORIZED")
    finally:
        clock.t = saved


def test_revoke_and_oauth_variant(kibo: RunningServer) -> None:
    ticket = authenticate(kibo.url)
    url = f"{kibo.url}/api/platform/applications/authtickets"
    assert requests.delete(f"{url}/{ticket['refreshToken']}", timeout=5).status_code == 200
    again = requests.put(f"{url}/refresh-ticket/{ticket['refreshToken']}", timeout=5)
    assert again.status_code == 401
    oauth = requests.post(
        f"{url}/oauth",
        json={
            "client_id": DEFAULT_APPLICATION_ID,
            "client_secret": DEMO_SHARED_SECRET,
            "grant_type": "client_credentials",
        },
        timeout=5,
    )
    assert oauth.status_code == 200
    body = oauth.json()
    response_validator(APPDEV, "/platform/applications/authtickets/oauth", "post", 200)(body)
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 600
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert get(kibo, "/api/commerce/orders", bearer).status_code == 200


def test_tenant_lookup_gives_domain_and_sites(kibo: RunningServer, headers: dict) -> None:
    body = get(kibo, f"/api/platform/tenants/{TENANT}", headers).json()
    assert body["id"] == TENANT
    assert body["domain"] == f"127.0.0.1:{kibo.port}"
    assert [s["id"] for s in body["sites"]] == [MAIN, OUTLET]
    assert get(kibo, "/api/platform/tenants/1", headers).status_code == 404


# --- customer accounts -------------------------------------------------------------


def test_accounts_page_through_everything_once(
    kibo: RunningServer, headers: dict, db: sqlite3.Connection
) -> None:
    total = db.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    validate = response_validator(CUSTOMER, "/commerce/customer/accounts", "get", 200)
    seen: list[int] = []
    start = 0
    while True:
        resp = get(kibo, "/api/commerce/customer/accounts", headers, startIndex=start, pageSize=70)
        body = resp.json()
        validate(body)
        assert body["totalCount"] == total and body["pageCount"] == math.ceil(total / 70)
        assert body["startIndex"] == start and body["pageSize"] == 70
        if not body["items"]:
            break
        seen += [a["id"] for a in body["items"]]
        start += 70
    assert sorted(seen) == seen and len(seen) == len(set(seen)) == total
    default = get(kibo, "/api/commerce/customer/accounts", headers).json()
    assert default["pageSize"] == 20 and len(default["items"]) == 20


def test_page_size_over_200_is_rejected_or_clamped(
    kibo: RunningServer, headers: dict, store: Path
) -> None:
    resp = get(kibo, "/api/commerce/customer/accounts", headers, pageSize=201)
    assert_kibo_error(resp, 400, "MISSING_OR_INVALID_PARAMETER")
    assert get(kibo, "/api/commerce/customer/accounts", headers, pageSize=200).status_code == 200
    clamp = serve_in_thread(create_app(store=str(store), oversize_page="clamp"))
    try:
        claims = {"x-vol-app-claims": authenticate(clamp.url)["accessToken"]}
        body = get(clamp, "/api/commerce/customer/accounts", claims, pageSize=500).json()
        assert body["pageSize"] == 200 and len(body["items"]) == 200
    finally:
        clamp.stop()


def _ids(kibo: RunningServer, headers: dict, flt: str, **extra) -> list[int]:
    resp = get(kibo, "/api/commerce/customer/accounts", headers, filter=flt, pageSize=200, **extra)
    assert resp.status_code == 200, resp.text
    return [a["id"] for a in resp.json()["items"]]


def _sql_ids(db: sqlite3.Connection, where: str, *params) -> list[int]:
    sql = f"SELECT id FROM customers WHERE {where} ORDER BY id LIMIT 200"  # noqa: S608
    return [r[0] for r in db.execute(sql, params)]


def test_account_filters(kibo: RunningServer, headers: dict, db: sqlite3.Connection) -> None:
    email, first = db.execute("SELECT email, firstname FROM customers WHERE id = 17").fetchone()
    same = [
        i
        for i, e in db.execute("SELECT id, email FROM customers ORDER BY id")
        if e.casefold() == email.casefold()
    ]
    assert _ids(kibo, headers, f"emailAddress eq {email.upper()}") == same[:200]
    assert 17 in _ids(kibo, headers, f"emailAddress eq '{email}'")
    assert _ids(kibo, headers, "acceptsmarketing eq false") == _sql_ids(db, "accepts_marketing = 0")
    assert _ids(kibo, headers, "acceptsMarketing eq true and id lt 100") == _sql_ids(
        db, "accepts_marketing = 1 AND id < 100"
    )
    assert _ids(kibo, headers, "id eq 3 or id eq 5 or (id ge 10 and id le 12)") == [
        3,
        5,
        10,
        11,
        12,
    ]
    assert _ids(kibo, headers, "id le 6 and id ne 4") == [1, 2, 3, 5, 6]
    assert _ids(kibo, headers, f"firstName sw {first[:3]}") == _sql_ids(
        db, "firstname LIKE ?", first[:3] + "%"
    )
    assert _ids(kibo, headers, "emailAddress cont @gmail") == _sql_ids(db, "email LIKE '%@gmail%'")
    assert len(_ids(kibo, headers, "isActive eq true")) == 200
    assert _ids(kibo, headers, "isAnonymous eq true") == []
    cut = db.execute("SELECT updated_at FROM customers ORDER BY updated_at LIMIT 1 OFFSET 150")
    cut = cut.fetchone()[0]
    iso = cut.replace(" ", "T") + "Z"
    assert _ids(kibo, headers, f"auditInfo.updateDate gt {iso}") == _sql_ids(
        db, "updated_at > ?", cut
    )
    assert _ids(kibo, headers, f"updateDate le {iso.lower()}") == _sql_ids(
        db, "updated_at <= ?", cut
    )
    for bad in ("nosuchfield eq 1", "id eq", "id zz 3", "acceptsMarketing eq maybe", "(id eq 1"):
        resp = get(kibo, "/api/commerce/customer/accounts", headers, filter=bad)
        assert_kibo_error(resp, 400, "MISSING_OR_INVALID_PARAMETER")


def test_account_sort_and_response_fields(kibo: RunningServer, headers: dict) -> None:
    path = "/api/commerce/customer/accounts"
    desc = get(kibo, path, headers, sortBy="id desc", pageSize=5).json()["items"]
    assert [a["id"] for a in desc] == sorted((a["id"] for a in desc), reverse=True)
    by_name = get(kibo, path, headers, sortBy="lastName asc", pageSize=50).json()["items"]
    names = [a["lastName"].lower() for a in by_name]
    assert names == sorted(names)
    slim = get(kibo, path, headers, pageSize=2, responseFields="totalCount,items(id,emailAddress)")
    body = slim.json()
    assert set(body) == {"totalCount", "items"}
    assert all(set(a) == {"id", "emailAddress"} for a in body["items"])
    assert_kibo_error(
        get(kibo, path, headers, sortBy="bogus asc"), 400, "MISSING_OR_INVALID_PARAMETER"
    )


def test_get_and_put_account(
    kibo: RunningServer, headers: dict, clock: Clock, db: sqlite3.Connection
) -> None:
    url = f"{kibo.url}/api/commerce/customer/accounts/42"
    account = requests.get(url, headers=headers, timeout=5).json()
    response_validator(CUSTOMER, "/commerce/customer/accounts/{accountId}", "get", 200)(account)
    assert account["id"] == 42 and isinstance(account["userId"], str) and account["isActive"]
    assert "updateDate" not in account and account["auditInfo"]["updateDate"].endswith("Z")
    flipped = not account["acceptsMarketing"]
    clock.t = time.time() + 3
    sent = {**account, "acceptsMarketing": flipped, "firstName": "Renée", "isActive": False}
    resp = requests.put(url, json=sent, headers=headers, timeout=5)
    assert resp.status_code == 200
    response_validator(CUSTOMER, "/commerce/customer/accounts/{accountId}", "put", 200)(resp.json())
    again = requests.get(url, headers=headers, timeout=5).json()
    assert again["acceptsMarketing"] is flipped and again["firstName"] == "Renée"
    assert again["isActive"] is True  # isActive is not changed through PUT
    assert again["auditInfo"]["updateDate"] > account["auditInfo"]["updateDate"]
    row = db.execute("SELECT accepts_marketing FROM customers WHERE id = 42").fetchone()
    assert row[0] == int(flipped)
    listed = _ids(kibo, headers, f"acceptsMarketing eq {str(flipped).lower()} and id eq 42")
    assert listed == [42]
    missing = requests.put(url.replace("/42", "/999999"), json=sent, headers=headers, timeout=5)
    assert_kibo_error(missing, 404, "ITEM_NOT_FOUND")
    assert_kibo_error(
        get(kibo, "/api/commerce/customer/accounts/999999", headers), 404, "ITEM_NOT_FOUND"
    )
    bad = requests.put(url, json={"acceptsMarketing": "yes"}, headers=headers, timeout=5)
    assert_kibo_error(bad, 400, "MISSING_OR_INVALID_PARAMETER")


# --- orders --------------------------------------------------------------------------


def _order_count(kibo: RunningServer, headers: dict, flt: str) -> int:
    resp = get(kibo, "/api/commerce/orders", headers, filter=flt, pageSize=1)
    assert resp.status_code == 200, resp.text
    return resp.json()["totalCount"]


def test_status_mapping_table() -> None:
    assert kibo_statuses("complete")[0] == kibo_statuses("closed")[0] == "Completed"
    assert kibo_statuses("canceled") == ("Cancelled", "Void", "NotFulfilled")
    assert kibo_statuses("pending_payment")[:2] == ("Pending", "AwaitingPayment")
    assert set(STATE_MAP) >= {"new", "processing", "holded"}


def test_orders_list_schema_and_status_filters(
    kibo: RunningServer, headers: dict, db: sqlite3.Connection
) -> None:
    body = get(kibo, "/api/commerce/orders", headers, pageSize=25).json()
    response_validator(COMMERCE, "/commerce/orders", "get", 200)(body)
    assert body["totalCount"] == db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    order = body["items"][0]
    assert len(order["id"]) == 32 and int(order["id"], 16) >= 0
    assert order["items"] and order["items"][0]["product"]["productCode"]
    assert order["siteId"] in (MAIN, OUTLET) and order["tenantId"] == TENANT
    states = dict(db.execute("SELECT state, COUNT(*) FROM orders GROUP BY state").fetchall())
    assert _order_count(kibo, headers, "status eq Cancelled") == states.get("canceled", 0)
    assert _order_count(kibo, headers, "status eq completed") == states.get(
        "complete", 0
    ) + states.get("closed", 0)
    assert _order_count(kibo, headers, "paymentStatus eq AwaitingPayment") == states.get(
        "pending_payment", 0
    )
    refunded = db.execute("SELECT id, total_refunded FROM orders WHERE state = 'closed' LIMIT 1")
    row = refunded.fetchone()
    if row is not None:
        got = get(kibo, "/api/commerce/orders", headers, filter=f"orderNumber eq {row[0]}")
        assert got.json()["items"][0]["amountRefunded"] == round(row[1], 2)


def test_orders_filter_by_customer_date_and_site(
    kibo: RunningServer, headers: dict, db: sqlite3.Connection
) -> None:
    cust = db.execute(
        "SELECT customer_id, COUNT(*) FROM orders WHERE customer_id IS NOT NULL "
        "GROUP BY customer_id ORDER BY 2 DESC LIMIT 1"
    ).fetchone()
    assert _order_count(kibo, headers, f"customerAccountId eq {cust[0]}") == cust[1]
    since = "2026-01-01 00:00:00"
    expected = db.execute("SELECT COUNT(*) FROM orders WHERE created_at > ?", (since,)).fetchone()
    assert _order_count(kibo, headers, "submittedDate gt 2026-01-01T00:00:00Z") == expected[0]
    both = "status eq Completed and submittedDate gt 2026-01-01T00:00:00z"
    assert _order_count(kibo, headers, both) <= expected[0]
    everything = _order_count(kibo, headers, "orderNumber gt 0")
    main = get(kibo, "/api/commerce/orders", {**headers, "x-vol-site": str(MAIN)}, pageSize=200)
    outlet = get(kibo, "/api/commerce/orders", {**headers, "x-vol-site": str(OUTLET)})
    assert {o["siteId"] for o in main.json()["items"]} <= {MAIN}
    assert main.json()["totalCount"] + outlet.json()["totalCount"] == everything


def test_get_order_by_id(kibo: RunningServer, headers: dict) -> None:
    first = get(kibo, "/api/commerce/orders", headers, pageSize=1).json()["items"][0]
    resp = get(kibo, f"/api/commerce/orders/{first['id']}", headers)
    response_validator(COMMERCE, "/commerce/orders/{orderId}", "get", 200)(resp.json())
    assert resp.json()["orderNumber"] == first["orderNumber"]
    assert_kibo_error(get(kibo, "/api/commerce/orders/" + "0" * 32, headers), 404, "ITEM_NOT_FOUND")


# --- carts ---------------------------------------------------------------------------


def test_carts_read_shapes(kibo: RunningServer, headers: dict) -> None:
    listed = requests.get(f"{kibo.url}/_sandbox/carts", timeout=5).json()["items"]
    assert listed
    cart_id = next((c["id"] for c in listed if c["customerAccountId"]), listed[0]["id"])
    cart = get(kibo, f"/api/commerce/carts/{cart_id}", headers).json()
    response_validator(COMMERCE, "/commerce/carts/{cartId}", "get", 200)(cart)
    assert cart["id"] == cart_id and cart["items"]
    summary = get(kibo, f"/api/commerce/carts/{cart_id}/summary", headers).json()
    response_validator(COMMERCE, "/commerce/carts/{cartId}/summary", "get", 200)(summary)
    assert summary["itemCount"] == len(cart["items"]) and summary["hasActiveCart"]
    items = get(kibo, f"/api/commerce/carts/{cart_id}/items", headers).json()
    response_validator(COMMERCE, "/commerce/carts/{cartId}/items", "get", 200)(items)
    assert items["totalCount"] == len(cart["items"])
    if cart["userId"]:
        mine = get(kibo, f"/api/commerce/carts/user/{cart['userId']}", headers).json()
        response_validator(COMMERCE, "/commerce/carts/user/{userId}", "get", 200)(mine)
        owner = _ids(kibo, headers, f"userId eq {cart['userId']}")
        assert len(owner) == 1
    assert_kibo_error(get(kibo, "/api/commerce/carts/" + "f" * 32, headers), 404, "ITEM_NOT_FOUND")


# --- faults --------------------------------------------------------------------------


def test_injected_faults_use_kibo_error_body(store: Path) -> None:
    server = serve_in_thread(create_app(store=str(store), p5xx=1.0, seed=3))
    try:
        resp = requests.get(f"{server.url}/api/commerce/orders", timeout=5)
        assert resp.status_code in (500, 502, 503)
        assert resp.json()["errorCode"] in ("UNEXPECTED_ERROR", "SYSTEM_MAINTENANCE")
        control = requests.post(
            f"{server.url}/_sandbox/faults", json={"p5xx": 0, "p429": 1.0}, timeout=5
        )
        assert control.status_code == 200
        assert_kibo_error(
            requests.get(f"{server.url}/api/commerce/orders", timeout=5), 429, "TOO_MANY_REQUESTS"
        )
        stats = requests.get(f"{server.url}/_sandbox/stats", timeout=5).json()
        assert stats["calls"]["GET /api/commerce/orders"] == 2
    finally:
        server.stop()


def test_unknown_api_route_has_kibo_body(kibo: RunningServer, headers: dict) -> None:
    assert_kibo_error(get(kibo, "/api/commerce/nothing/here", headers), 404, "ITEM_NOT_FOUND")
