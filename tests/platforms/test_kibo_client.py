"""KiboClient: app tickets, tenant lookup, context headers and retries (sandbox + responses)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import responses

from cc_storeplugin.platforms.kibo.client import KiboClient
from cc_storeplugin.platforms.kibo.errors import KiboError, KiboUnauthorized, KiboUnavailable
from cc_storeplugin.sandbox.kibo import DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET, create_app
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread
from tests.sandbox.conftest import store_factory  # noqa: F401

TENANT, MAIN, OUTLET = 12345, 23456, 23457
ACCOUNTS = "/api/commerce/customer/accounts"
TICKETS = "POST /api/platform/applications/authtickets"
REFRESH = "PUT /api/platform/applications/authtickets/refresh-ticket"


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(store_factory) -> Path:  # noqa: F811
    return store_factory(customers=120, seed=3)


@pytest.fixture
def kibo(store: Path) -> Iterator[Callable[..., RunningServer]]:
    servers: list[RunningServer] = []

    def start(**opts) -> RunningServer:
        servers.append(serve_in_thread(create_app(store=str(store), **opts)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def client_for(server: RunningServer, **kw) -> KiboClient:
    kw.setdefault("backoff_s", 0.01)
    return KiboClient(server.url, DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET, TENANT, **kw)


def stats(server: RunningServer) -> dict[str, int]:
    return requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()["calls"]


def count(store: Path, sql: str) -> int:
    with sqlite3.connect(store) as conn:
        return conn.execute(sql).fetchone()[0]


def test_ticket_tenant_lookup_and_a_tenant_call(kibo, store: Path) -> None:
    server = kibo()
    client = client_for(server)
    body = client.get(ACCOUNTS, {"pageSize": 5, "sortBy": "id asc"})
    assert body["totalCount"] == count(store, "SELECT COUNT(*) FROM customers")
    assert [a["id"] for a in body["items"]] == [1, 2, 3, 4, 5]
    assert client.tenant_url == server.url  # the tenant's domain, with the home pod's scheme
    client.get("commerce/orders", {"pageSize": 1})  # paths without /api work too
    calls = stats(server)
    assert calls[TICKETS] == 1 and calls["GET /api/platform/tenants/<int:tenant_id>"] == 1
    assert client.calls == 4


def test_site_header_scopes_orders(kibo, store: Path) -> None:
    server = kibo()
    outlet = client_for(server, site_id=OUTLET)
    body = outlet.get("/api/commerce/orders", {"pageSize": 3})
    assert body["totalCount"] == count(store, "SELECT COUNT(*) FROM orders WHERE store_id % 2 = 0")
    assert {o["siteId"] for o in body["items"]} == {OUTLET}
    with pytest.raises(KiboError) as exc:
        client_for(server, site_id=99).get("/api/commerce/orders", {"pageSize": 1})
    assert (exc.value.status, exc.value.code) == (404, "ITEM_NOT_FOUND")


def test_bad_secret_is_unauthorized_and_not_retried(kibo) -> None:
    server = kibo()
    client = KiboClient(server.url, DEFAULT_APPLICATION_ID, "0" * 32, TENANT, backoff_s=0.01)
    with pytest.raises(KiboUnauthorized):
        client.get(ACCOUNTS, {"pageSize": 1})
    assert client.calls == 1


def test_wrong_tenant_reauthenticates_once_then_gives_up(kibo) -> None:
    server = kibo()
    client = KiboClient(server.url, DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET, 999,
                        tenant_host=server.url, backoff_s=0.01)  # fmt: skip
    with pytest.raises(KiboUnauthorized, match="tenant 999"):
        client.get(ACCOUNTS, {"pageSize": 1})
    calls = stats(server)
    assert calls[TICKETS] == 2 and calls[f"GET {ACCOUNTS}"] == 2


def test_ticket_is_refreshed_before_expiry_and_renewed_after(kibo) -> None:
    clock = Clock()
    server = kibo(clock=clock, ticket_ttl_s=3600, refresh_ttl_s=7200)
    client = client_for(server)
    client._clock = clock
    client.get(ACCOUNTS, {"pageSize": 1})
    clock.t += 3500  # inside the 180 s margin: refresh, don't re-authenticate
    client.get(ACCOUNTS, {"pageSize": 1})
    calls = stats(server)
    assert (calls[TICKETS], calls.get(REFRESH)) == (1, 1)
    clock.t += 7200  # the refresh token has expired too: authenticate from scratch
    client.get(ACCOUNTS, {"pageSize": 1})
    calls = stats(server)
    assert (calls[TICKETS], calls.get(REFRESH)) == (2, 1)
    assert calls[f"GET {ACCOUNTS}"] == 3  # no call failed on an expired token


def test_revoked_ticket_gets_one_fresh_ticket(kibo) -> None:
    server = kibo()
    client = client_for(server)
    client.get(ACCOUNTS, {"pageSize": 1})
    refresh = client._ticket.refresh_token
    url = f"{server.url}/api/platform/applications/authtickets/{refresh}"
    assert requests.delete(url, timeout=10).ok
    assert client.get(ACCOUNTS, {"pageSize": 1})["items"]
    assert stats(server)[TICKETS] == 2


def test_sandbox_faults_are_retried(kibo, store: Path, caplog) -> None:
    server = kibo(p429=0.3, p5xx=0.2, pdrop=0.1, seed=4)
    client = client_for(server, max_retries=10)
    caplog.set_level(logging.DEBUG)
    total = count(store, "SELECT COUNT(*) FROM customers")
    ids = []
    for start in range(0, total, 50):
        ids += [
            a["id"] for a in client.get(ACCOUNTS, {"startIndex": start, "pageSize": 50})["items"]
        ]
    assert ids == list(range(1, total + 1))
    assert client.calls > 5  # 3 pages + ticket + tenant, and faults on top
    assert DEMO_SHARED_SECRET not in caplog.text
    assert client._ticket.access_token not in caplog.text
    assert DEMO_SHARED_SECRET not in repr(client)


HOME = "https://home.example"
TENANT_URL = "https://t12345.example"


def mocked_client(**kw) -> KiboClient:
    ticket = {
        "accessToken": "tok",
        "accessTokenExpiration": "2099-01-01T00:00:00.000Z",
        "refreshToken": "r",
        "refreshTokenExpiration": "2099-01-02T00:00:00Z",
    }
    responses.post(f"{HOME}/api/platform/applications/authtickets", json=ticket)
    client = KiboClient(HOME, "app", "secret", TENANT, tenant_host="t12345.example", **kw)
    client._sleep = lambda s: None
    return client


@responses.activate
def test_retries_429_and_5xx_then_succeeds() -> None:
    client = mocked_client()
    url = f"{TENANT_URL}{ACCOUNTS}"
    responses.get(url, status=429, headers={"Retry-After": "1"}, json={"message": "slow"})
    responses.get(url, status=503, json={"errorCode": "SYSTEM_MAINTENANCE", "message": "m"})
    responses.get(url, json={"items": [], "totalCount": 0})
    assert client.get(ACCOUNTS, {"pageSize": 1}) == {"items": [], "totalCount": 0}
    sent = [c.request for c in responses.calls]
    assert len(sent) == 4 and client.calls == 4
    assert sent[-1].headers["x-vol-app-claims"] == "tok"
    assert sent[-1].headers["x-vol-tenant"] == str(TENANT) and "x-vol-site" not in sent[-1].headers
    assert "x-vol-app-claims" not in sent[0].headers  # the auth call itself has no claims


@responses.activate
def test_permanent_4xx_is_not_retried() -> None:
    client = mocked_client(site_id=MAIN)
    body = {"errorCode": "ITEM_NOT_FOUND", "message": "Customer account 7 not found"}
    responses.get(f"{TENANT_URL}{ACCOUNTS}/7", status=404, json=body)
    with pytest.raises(KiboError, match="account 7 not found") as exc:
        client.get(f"{ACCOUNTS}/7")
    assert exc.value.code == "ITEM_NOT_FOUND" and not isinstance(exc.value, KiboUnavailable)
    assert client.calls == 2
    assert responses.calls[-1].request.headers["x-vol-site"] == str(MAIN)


@responses.activate
def test_exhausted_retries_raise_unavailable() -> None:
    client = mocked_client(max_retries=2)
    responses.get(f"{TENANT_URL}{ACCOUNTS}", body=requests.ConnectionError("refused"))
    with pytest.raises(KiboUnavailable, match="ConnectionError"):
        client.get(ACCOUNTS)
    assert client.calls == 1 + 3
