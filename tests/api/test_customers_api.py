"""The customers JSON API: search by email prefix, a customer's facts, segments and the
transition log written by real daily syncs (an injected clock crossing 30 and 120 days)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection
from tests.web.conftest import make_merchant
from tests.web.test_customer_page import Crossed, client_of, cross_30_and_120_days


@pytest.fixture(scope="module")
def crossed(tmp_path_factory) -> Iterator[Crossed]:
    yield from cross_30_and_120_days(tmp_path_factory)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_customer_shows_facts_segments_and_the_log_newest_first(crossed):
    client = client_of(crossed)
    resp = client.get(
        f"/api/v1/connections/{crossed.connection_id}/customers/{crossed.customer_id}"
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["email"] == crossed.email and body["purchases"] >= 1
    assert at(body["last_purchase_at"]) == crossed.last_purchase
    assert float(body["total_spent"]) > 0
    assert body["consent_state"] in ("subscribed", "not_set")
    keys = {s["key"] for s in body["segments"]}
    assert "lapsed" in keys and "recent" not in keys and "all" in keys

    log = body["transitions"]
    stamps = [at(t["occurred_at"]) for t in log]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    bought = crossed.last_purchase.strftime("%Y-%m-%d")
    newest, previous = log[0], log[1]
    assert newest == {
        "segment": "Magento \u2013 Lapsed Customers",
        "segment_key": "lapsed",
        "action": "entered",
        "reason": f"entered Lapsed: last purchase {bought}, 121 days ago",
        "occurred_at": newest["occurred_at"],
        "run_id": crossed.run2,
    }
    assert at(newest["occurred_at"]) == crossed.now2
    assert previous["segment_key"] == "recent" and previous["action"] == "left"
    assert previous["reason"] == f"left Recent: last purchase {bought}, 31 days ago"
    assert at(previous["occurred_at"]) == crossed.now1 and previous["run_id"] == crossed.run1
    entered_recent = [t for t in log if t["segment_key"] == "recent" and t["action"] == "entered"]
    assert [at(t["occurred_at"]) for t in entered_recent] == [crossed.import_now]


def test_search_by_normalized_email_prefix_is_paged(crossed):
    client = client_of(crossed)
    url = f"/api/v1/connections/{crossed.connection_id}/customers"
    found = client.get(url, query_string={"email": " " + crossed.email[:6].upper()}).get_json()
    assert crossed.customer_id in [c["id"] for c in found["customers"]]
    assert all(c["email"].startswith(crossed.email[:6]) for c in found["customers"])

    first = client.get(url, query_string={"per_page": 100}).get_json()
    second = client.get(url, query_string={"per_page": 100, "page": 2}).get_json()
    assert len(first["customers"]) == 100 and first["has_more"] is True
    emails = [c["email"] for c in first["customers"] + second["customers"]]
    assert emails == sorted(emails) and len(set(emails)) == len(emails)
    assert client.get(url, query_string={"email": "100%_"}).get_json()["customers"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [({"page": "0"}, "page"), ({"page": "x"}, "page"), ({"per_page": "1000"}, "per_page")],
)
def test_bad_paging_is_400_naming_the_field(crossed, query, field):
    resp = client_of(crossed).get(
        f"/api/v1/connections/{crossed.connection_id}/customers", query_string=query
    )
    assert resp.status_code == 400
    assert field in resp.get_json()["fields"]


def test_merchant_b_gets_404_and_sees_nothing(crossed):
    with crossed.stack.app.app_context():
        other_id = make_merchant("acct-other-api").id
    client = client_of(crossed, other_id)
    base = f"/api/v1/connections/{crossed.connection_id}/customers"
    for resp in (client.get(base), client.get(f"{base}/{crossed.customer_id}")):
        assert resp.status_code == 404
        assert crossed.email not in resp.get_data(as_text=True)


def test_a_customer_of_another_connection_is_404(crossed):
    with crossed.stack.app.app_context():
        second = StoreConnection(merchant_id=crossed.merchant_id, platform="magento")
        db.session.add(second)
        db.session.commit()
        second_id = second.id
    resp = client_of(crossed).get(
        f"/api/v1/connections/{second_id}/customers/{crossed.customer_id}"
    )
    assert resp.status_code == 404


def test_signed_out_is_401_json(crossed):
    client = crossed.stack.app.test_client()
    resp = client.get(f"/api/v1/connections/{crossed.connection_id}/customers")
    assert resp.status_code == 401 and "error" in resp.get_json()


def test_openapi_describes_the_customer_routes(crossed):
    spec = crossed.stack.app.test_client().get("/api/v1/openapi.json").get_json()
    assert "/api/v1/connections/{id}/customers" in spec["paths"]
    assert "/api/v1/connections/{id}/customers/{customer_id}" in spec["paths"]
