"""The segments JSON API: built-ins read-only, custom CRUD, preview against a Python oracle,
400 field errors that change nothing, and another merchant's segments out of reach (404)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Segment, SegmentMembership, StoreConnection, SyncRun
from cc_storeplugin.queueing import queues
from cc_storeplugin.segments.evaluate import evaluate_segments
from tests.segments.test_custom_rules import NOW, PEOPLE, cond, oracle_matches, seed
from tests.web.conftest import make_merchant, sign_in

# the rules tests' five contacts plus fifteen alike, so a sample has more to choose from
CROWD = {
    f"m{i:02d}": dict(
        n=2,
        spent="40.00",
        first=NOW - 90 * timedelta(days=1),
        last=NOW - timedelta(days=i),
        group="retail",
        consent="unsubscribed" if i % 5 == 0 else "subscribed",
        items=[("SKU-1", "Shoes", True)],
    )
    for i in range(15)
}
MIRROR = {**PEOPLE, **CROWD}
LOYAL = {"all": [cond("purchase_count", "gte", 2), cond("customer_group", "eq", "retail")]}


@pytest.fixture
def shop(app):
    """Merchant A with an active Magento connection over the small mirror; B has its own."""
    a, b = make_merchant("acct-a"), make_merchant("acct-b")
    conn_a = StoreConnection(merchant=a, platform="magento", status="active")
    conn_b = StoreConnection(merchant=b, platform="magento", status="active")
    db.session.add_all([conn_a, conn_b])
    db.session.commit()
    seed(conn_a.id, MIRROR)
    return {"a": a, "b": b, "conn_a": conn_a.id, "conn_b": conn_b.id}


@pytest.fixture
def as_a(client, shop):
    sign_in(client, shop["a"])
    return client


def url(conn_id: int, rest: str = "") -> str:
    return f"/api/v1/connections/{conn_id}/segments{rest}"


def create(client, conn_id: int, name: str = "Loyal", rule: dict | None = None) -> dict:
    resp = client.post(url(conn_id), json={"name": name, "rule": rule or LOYAL})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def snapshot(conn_id: int) -> list[tuple]:
    """Every segment of the connection as stored: what a refused request must not change."""
    rows = db.session.execute(
        select(Segment.id, Segment.name, Segment.rule, Segment.cc_list_id)
        .where(Segment.connection_id == conn_id)
        .order_by(Segment.id)
    ).all()
    db.session.expire_all()
    return [tuple(r) for r in rows]


def expected_members(rule: dict[str, Any], now: datetime) -> list[str]:
    """The oracle's members in id order (the mirror was seeded in MIRROR's order)."""
    return [f"{name}@x.io" for name, p in MIRROR.items() if oracle_matches(p, rule, now)]


def test_builtins_are_listed_read_only_and_a_saved_segment_joins_them(as_a, shop):
    body = as_a.get(url(shop["conn_a"])).get_json()
    builtins = body["segments"]
    assert [s["name"] for s in builtins] == [
        "All Customers",
        "First-time Customers",
        "Repeat Customers",
        "Recent Customers",
        "Lapsed Customers",
    ]
    assert all(s["read_only"] and s["kind"] == "builtin" for s in builtins)

    made = create(as_a, shop["conn_a"])
    assert made["name"] == "Loyal" and made["list_name"] == "Magento \u2013 Loyal"
    assert made["kind"] == "custom" and not made["read_only"] and made["rule"] == LOYAL
    assert made["cc_list_id"] is None and made["members"] == 0

    listed = as_a.get(url(shop["conn_a"])).get_json()["segments"]
    assert [s["id"] for s in listed][-1] == made["id"] and len(listed) == 6
    got = as_a.get(url(shop["conn_a"], f"/{made['id']}")).get_json()
    assert got["rule"] == LOYAL and got["list_name"] == "Magento \u2013 Loyal"
    # the save queued the sync of the connection's custom segments
    run = db.session.get(SyncRun, made["sync_run_id"])
    assert run.job_id == f"segments-{shop['conn_a']}-{run.id}" and run.status == "QUEUED"
    assert run.job_id in queues.get("sync").job_ids


@pytest.mark.parametrize(
    "rule",
    [
        LOYAL,
        {"all": [cond("purchase_count", "gte", 1)]},
        {"any": [cond("purchased_sku", "in", ["SKU-2"]), cond("total_spent", "gte", 1000)]},
        {"all": [cond("average_order_value", "lte", 50)]},
        {"all": [cond("customer_group", "eq", "nobody")]},
    ],
)
def test_preview_count_and_sample_equal_the_oracle_and_nothing_is_saved(as_a, shop, rule):
    before = snapshot(shop["conn_a"])
    resp = as_a.post(url(shop["conn_a"], "/preview"), json={"name": "ignored", "rule": rule})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    now = datetime.fromisoformat(body["now"])
    expected = expected_members(rule, now)
    assert body["count"] == len(expected)
    assert [c["email"] for c in body["sample"]] == expected[:10]
    unsubscribed = [e for e in expected if MIRROR[e.split("@")[0]]["consent"] == "unsubscribed"]
    assert body["unsubscribed"] == len(unsubscribed)
    assert snapshot(shop["conn_a"]) == before
    assert db.session.scalar(select(func.count()).select_from(SegmentMembership)) == 0


def test_a_sample_shows_the_contacts_figures(as_a, shop):
    body = as_a.post(url(shop["conn_a"], "/preview"), json={"rule": LOYAL}).get_json()
    first = body["sample"][0]
    assert first["email"] == "d@x.io" and first["purchase_count"] == 2
    assert first["total_spent"] == "99.99" and first["consent_state"] == "subscribed"
    assert first["last_purchase_at"].startswith("2026-07-26")


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "post",
            "",
            {"name": "VIP", "rule": {"all": [cond("spend", "gt", 1)]}},
            "rule.all.0.field",
        ),
        ("post", "", {"name": "VIP", "rule": {"all": [cond("total_spent", "gt", "1")]}}, None),
        ("post", "", {"name": "", "rule": LOYAL}, "name"),
        ("post", "", {"rule": LOYAL}, "name"),
        ("post", "", {"name": "Loyal", "rule": LOYAL}, "name"),  # taken
        ("post", "", {"name": "loyal", "rule": LOYAL}, "name"),  # taken, whatever the case
        ("post", "", {"name": "All Customers", "rule": LOYAL}, "name"),  # a built-in's list
        ("post", "/preview", {"rule": {"any": []}}, "rule.any"),
        ("post", "/preview", {}, "rule"),
        ("put", "/{sid}", {"rule": {"all": [cond("purchase_count", "gt", 1.5)]}}, None),
        ("put", "/{sid}", {"name": "Repeat Customers"}, "name"),
        ("put", "/{sid}", {}, "_schema"),
    ],
)
def test_bad_input_is_400_with_field_errors_and_changes_nothing(
    as_a, shop, method, path, body, field
):
    made = create(as_a, shop["conn_a"])
    before = snapshot(shop["conn_a"])
    runs = db.session.scalar(select(func.count()).select_from(SyncRun))
    resp = getattr(as_a, method)(url(shop["conn_a"], path.format(sid=made["id"])), json=body)
    assert resp.status_code == 400, resp.get_json()
    answer = resp.get_json()
    assert answer["error"] and answer["fields"]
    if field is None:  # a bad value: the path ends at the value
        assert [k for k in answer["fields"] if k.endswith(".value")], answer
    else:
        assert field in answer["fields"], answer
    assert snapshot(shop["conn_a"]) == before
    assert db.session.scalar(select(func.count()).select_from(SyncRun)) == runs


def test_a_body_that_is_not_json_is_400(as_a, shop):
    resp = as_a.post(url(shop["conn_a"]), data={"name": "VIP"})
    assert resp.status_code == 400 and "JSON body" in resp.get_json()["error"]
    assert db.session.scalar(select(func.count()).select_from(Segment)) == 0


def test_update_changes_rule_and_name_and_delete_leaves_the_cc_list(as_a, shop):
    made = create(as_a, shop["conn_a"])
    sid = made["id"]
    seg = db.session.get(Segment, sid)
    seg.cc_list_id = "list-loyal"
    db.session.commit()
    new_rule = {"all": [cond("purchase_count", "gte", 5)]}
    resp = as_a.put(url(shop["conn_a"], f"/{sid}"), json={"rule": new_rule})
    assert resp.status_code == 200 and resp.get_json()["rule"] == new_rule
    assert resp.get_json()["cc_list_id"] == "list-loyal"  # same name, same list

    resp = as_a.put(url(shop["conn_a"], f"/{sid}"), json={"name": "Best buyers"})
    body = resp.get_json()
    assert body["list_name"] == "Magento \u2013 Best buyers" and body["rule"] == new_rule
    assert body["cc_list_id"] is None  # a new name is a new list, made on the next sync

    evaluate_segments(shop["conn_a"], NOW)
    assert as_a.get(url(shop["conn_a"], f"/{sid}")).get_json()["members"] == 1  # e: 5 buys
    resp = as_a.delete(url(shop["conn_a"], f"/{sid}"))
    assert resp.status_code == 200
    assert resp.get_json()["deleted"] is True and "Constant Contact" in resp.get_json()["cc_list"]
    assert as_a.get(url(shop["conn_a"], f"/{sid}")).status_code == 404
    members = select(func.count()).where(SegmentMembership.segment_id == sid)
    assert db.session.scalar(members) == 0


def test_builtin_segments_are_read_only(as_a, shop):
    listed = as_a.get(url(shop["conn_a"])).get_json()["segments"]
    sid = listed[0]["id"]
    resp = as_a.put(url(shop["conn_a"], f"/{sid}"), json={"rule": LOYAL})
    assert resp.status_code == 403
    assert as_a.delete(url(shop["conn_a"], f"/{sid}")).status_code == 403
    assert as_a.get(url(shop["conn_a"], f"/{sid}")).get_json()["name"] == "All Customers"


def test_another_merchant_gets_404_and_cannot_read_or_change_a_segment(client, shop):
    sign_in(client, shop["a"])
    made = create(client, shop["conn_a"])
    before = snapshot(shop["conn_a"])

    sign_in(client, shop["b"])
    a, b, sid = shop["conn_a"], shop["conn_b"], made["id"]
    assert client.get(url(a)).status_code == 404
    assert client.post(url(a), json={"name": "Mine", "rule": LOYAL}).status_code == 404
    assert client.post(url(a, "/preview"), json={"rule": LOYAL}).status_code == 404
    for conn_id in (a, b):  # through A's connection, or B's own connection with A's id
        assert client.get(url(conn_id, f"/{sid}")).status_code == 404
        resp = client.put(url(conn_id, f"/{sid}"), json={"name": "Hijacked"})
        assert resp.status_code == 404 and resp.get_json()["error"]
        assert client.delete(url(conn_id, f"/{sid}")).status_code == 404
    # B's own list shows only B's segments, and B's preview counts B's (empty) mirror
    assert sid not in [s["id"] for s in client.get(url(b)).get_json()["segments"]]
    assert client.post(url(b, "/preview"), json={"rule": LOYAL}).get_json()["count"] == 0
    assert snapshot(a) == before

    sign_in(client, shop["a"])
    assert client.get(url(a, f"/{sid}")).get_json()["name"] == "Loyal"


def test_signed_out_is_401_json(client, shop):
    assert client.get(url(shop["conn_a"])).status_code == 401
    resp = client.post(url(shop["conn_a"]), json={"name": "VIP", "rule": LOYAL})
    assert resp.status_code == 401 and resp.get_json()["error"]


def test_openapi_describes_the_segment_routes(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/connections/{id}/segments"])
    assert {"get", "put", "delete"} <= set(paths["/api/v1/connections/{id}/segments/{sid}"])
    assert "post" in paths["/api/v1/connections/{id}/segments/preview"]
