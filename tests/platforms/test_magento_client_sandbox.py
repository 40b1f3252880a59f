"""MagentoClient against the Magento sandbox over loopback HTTP: activation, exchange, REST."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask, request

from cc_storeplugin.platforms.magento.client import MagentoClient
from cc_storeplugin.platforms.magento.errors import (
    MagentoConsumerExpired,
    MagentoError,
    MagentoUnauthorized,
)
from cc_storeplugin.sandbox.magento import create_app
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread
from cc_storeplugin.sandbox.storegen import generate_store

CUSTOMERS = 700  # pages of 300: 300 + 300 + 100


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mgclient") / "store.sqlite"
    generate_store(path, customers=CUSTOMERS, orders=CUSTOMERS, carts=10, seed=7,
                   now="2026-11-01 00:00:00")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[RunningServer, list[dict]]]:
    """Our Callback URL: records the form Magento POSTs."""
    posts: list[dict] = []
    app = Flask("callback-receiver")

    @app.post("/callback")
    def callback():
        posts.append(request.form.to_dict())
        return "ok"

    server = serve_in_thread(app)
    yield server, posts
    server.stop()


class Sandbox:
    """A running Magento sandbox with helpers to activate an integration."""

    def __init__(self, receiver: tuple[RunningServer, list[dict]], **opts) -> None:
        self.offset = 0.0
        self.app = create_app(clock=lambda: time.time() + self.offset, **opts)
        self.server = serve_in_thread(self.app)
        self.url = self.server.url
        self.receiver, self.posts = receiver

    def activate(self) -> dict:
        """Admin: add the integration and click Activate + Allow; returns the POSTed fields."""
        body = {"name": "Constant Contact", "email": "dev@example.com",
                "endpoint": self.receiver.url + "/callback",
                "identity_link_url": "https://cc.example/identity"}  # fmt: skip
        integ = requests.post(f"{self.url}/_sandbox/integrations", json=body, timeout=10).json()
        act = requests.post(f"{self.url}/_sandbox/integrations/{integ['id']}/activate", timeout=10)
        assert act.status_code == 200, act.text
        creds = self.posts[-1]
        assert creds["oauth_consumer_key"] == act.json()["oauth_consumer_key"]
        return creds

    def connected(self, **kw) -> MagentoClient:
        creds = self.activate()
        client = MagentoClient(creds["store_base_url"], creds["oauth_consumer_key"],
                               creds["oauth_consumer_secret"], backoff_s=0.01, **kw)  # fmt: skip
        client.exchange_tokens(creds["oauth_verifier"])
        return client

    def stats(self) -> dict:
        return requests.get(f"{self.url}/_sandbox/stats", timeout=10).json()


@pytest.fixture
def sandbox_factory(
    store: Path, receiver: tuple[RunningServer, list[dict]]
) -> Iterator[Callable[..., Sandbox]]:
    made: list[Sandbox] = []

    def make(**opts) -> Sandbox:
        sb = Sandbox(receiver, store=str(store), **opts)
        made.append(sb)
        return sb

    yield make
    for sb in made:
        sb.server.stop()


def all_ids(client: MagentoClient, **kw) -> tuple[list[int], list[int]]:
    pages, ids = [], []
    kw.setdefault("page_size", 300)
    for page, body in client.iter_pages("customers/search", **kw):
        pages.append(page)
        ids += [c["id"] for c in body["items"]]
    return pages, ids


@pytest.mark.parametrize("style", ["plain", "index.php", "store_code", "index.php+store_code"])
def test_exchange_then_store_views_and_customers(sandbox_factory, style: str) -> None:
    sb = sandbox_factory(store_codes=["en", "fr"], base_url_style=style)
    client = sb.connected(store_code="en")
    assert client.access_token and len(client.access_token) == 32
    integ = requests.get(f"{sb.url}/_sandbox/integrations/1", timeout=10).json()
    assert integ["status"] == "active"
    views = client.store_views()
    assert {v["code"] for v in views} >= {"admin", "en", "fr"}
    assert {w["id"] for w in client.websites()} >= {1, 2}
    pages, ids = all_ids(client)
    assert pages == [1, 2, 3]
    assert len(ids) == CUSTOMERS == len(set(ids)) and ids == sorted(ids)


def test_store_views_before_a_store_is_chosen(sandbox_factory) -> None:
    """The Identity Link popup lists stores with the client's default store code."""
    sb = sandbox_factory(store_codes=["en"], base_url_style="index.php+store_code")
    client = sb.connected()  # store_code "default", which this store does not have
    assert [v["code"] for v in client.store_views()] == ["admin", "en", "store_2"]


def test_input_limit_mode(sandbox_factory) -> None:
    sb = sandbox_factory(max_page_size=300)
    client = sb.connected()
    pages, ids = all_ids(client)
    assert pages == [1, 2, 3] and len(set(ids)) == CUSTOMERS
    with pytest.raises(MagentoError, match="Maximum SearchCriteria pageSize is 300") as exc:
        client.search("customers/search", page_size=301, current_page=1)
    assert exc.value.status == 400


def test_legacy_paging_mode_terminates(sandbox_factory) -> None:
    sb = sandbox_factory(legacy_paging=True)
    client = sb.connected()
    last = client.search("customers/search", sort_orders=[("entity_id", "ASC")],
                         page_size=300, current_page=3)  # fmt: skip
    past = client.search("customers/search", sort_orders=[("entity_id", "ASC")],
                         page_size=300, current_page=4)  # fmt: skip
    assert past["items"] == last["items"]  # the ≤2.3 behaviour really is on
    before = client.calls
    pages, ids = all_ids(client)
    assert pages == [1, 2, 3] and len(set(ids)) == CUSTOMERS
    assert client.calls - before == 3
    # resuming past the end yields the repeated last page once, then stops
    assert [p for p, _ in client.iter_pages("customers/search", start_page=9)] == [9]


def test_bad_secret_is_unauthorized_and_not_retried(sandbox_factory) -> None:
    sb = sandbox_factory()
    good = sb.connected()
    bad = MagentoClient(good.store_base_url, good.consumer_key, good.consumer_secret,
                        good.access_token, "x" * 32)  # fmt: skip
    with pytest.raises(MagentoUnauthorized) as exc:
        bad.search("customers/search", page_size=1, current_page=1)
    assert "signature is invalid" in exc.value.message.lower()
    assert bad.calls == 1


def test_bad_consumer_secret_fails_the_exchange(sandbox_factory) -> None:
    sb = sandbox_factory()
    creds = sb.activate()
    client = MagentoClient(creds["store_base_url"], creds["oauth_consumer_key"], "y" * 32)
    with pytest.raises(MagentoUnauthorized):
        client.exchange_tokens(creds["oauth_verifier"])


def test_exchange_after_the_consumer_window(sandbox_factory) -> None:
    sb = sandbox_factory()
    creds = sb.activate()
    sb.offset = 301.0
    client = MagentoClient(creds["store_base_url"], creds["oauth_consumer_key"],
                           creds["oauth_consumer_secret"])  # fmt: skip
    with pytest.raises(MagentoConsumerExpired):
        client.exchange_tokens(creds["oauth_verifier"])


def test_revoked_integration_is_unauthorized(sandbox_factory) -> None:
    sb = sandbox_factory()
    client = sb.connected()
    assert requests.delete(f"{sb.url}/_sandbox/integrations/1", timeout=10).ok
    with pytest.raises(MagentoUnauthorized):
        client.store_views()


def test_set_subscription_round_trip(sandbox_factory) -> None:
    sb = sandbox_factory()
    client = sb.connected()
    body = client.search("customers/search", page_size=50, current_page=1)
    cust = next(c for c in body["items"] if c["extension_attributes"].get("is_subscribed"))
    saved = client.set_subscription(cust["id"], False)
    assert saved["extension_attributes"]["is_subscribed"] is False
    again = client.get(f"customers/{cust['id']}")
    assert again["extension_attributes"]["is_subscribed"] is False
    assert (again["email"], again["firstname"]) == (cust["email"], cust["firstname"])


def test_faults_are_retried_and_nothing_is_lost(sandbox_factory) -> None:
    sb = sandbox_factory()
    client = sb.connected(max_retries=8)
    faults = {"p429": 0.2, "p5xx": 0.2, "pdrop": 0.15, "seed": 3}
    assert requests.post(f"{sb.url}/_sandbox/faults", json=faults, timeout=10).ok
    client.calls = 0
    pages, ids = all_ids(client)
    assert pages == [1, 2, 3] and len(set(ids)) == CUSTOMERS
    assert client.calls > 3  # faults were met and retried
    assert client.calls == sb.stats()["total"] - 2  # every attempt counted (+ the 2 token calls)


def test_page_count_matches_total_count(sandbox_factory) -> None:
    sb = sandbox_factory()
    client = sb.connected()
    first = client.search("customers/search", page_size=300, current_page=1)
    assert math.ceil(first["total_count"] / 300) == 3


@pytest.mark.parametrize("ahead", [1, 2, 5])
def test_pages_requested_ahead_come_in_order_with_exact_calls(sandbox_factory, ahead) -> None:
    sb = sandbox_factory()
    client = sb.connected(max_retries=8)
    client.calls = 0
    pages, ids = all_ids(client, page_size=100, ahead=ahead)
    assert pages == list(range(1, math.ceil(CUSTOMERS / 100) + 1))
    assert ids == sorted(ids) and len(set(ids)) == CUSTOMERS
    assert client.calls == len(pages)  # nothing requested past the last page

    faults = {"p429": 0.2, "p5xx": 0.2, "pdrop": 0.15, "seed": 5}
    assert requests.post(f"{sb.url}/_sandbox/faults", json=faults, timeout=10).ok
    pages, ids = all_ids(client, page_size=100, ahead=ahead)
    assert len(set(ids)) == CUSTOMERS and ids == sorted(ids)


def test_reading_ahead_stops_at_a_repeated_page_and_when_the_caller_stops(sandbox_factory) -> None:
    sb = sandbox_factory(legacy_paging=True)
    client = sb.connected()
    assert [p for p, _ in client.iter_pages("customers/search", start_page=9, ahead=3)] == [9]
    stream = client.iter_pages("customers/search", page_size=100, ahead=3)
    assert next(stream)[0] == 1
    stream.close()  # the requests in flight finish and are dropped
