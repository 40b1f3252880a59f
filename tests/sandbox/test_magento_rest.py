"""Magento sandbox REST: searchCriteria, paging modes, store-code paths, PUT, schemas."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from math import ceil
from pathlib import Path

import pytest
import requests

from tests.sandbox.openapi import response_validator
from tests.sandbox.test_magento_oauth import T0, Connected

SPEC = "magento-admin-2.4.9.yaml"


def check(path: str, resp: requests.Response, method: str = "get") -> dict:
    """Assert 2xx and validate the body against the 2.4.9 admin OpenAPI."""
    assert resp.status_code == 200, resp.text
    response_validator(SPEC, path, method, 200)(resp.json())
    return resp.json()


@pytest.fixture(scope="module")
def store(small_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the shared 2,000-customer store (PUT writes to it)."""
    path = tmp_path_factory.mktemp("magento") / "store.sqlite"
    shutil.copy(small_store, path)
    return path


@pytest.fixture(scope="module")
def mg(store: Path) -> Iterator[Connected]:
    c = Connected(store, store_codes=["default", "fr"])
    yield c
    c.close()


@pytest.fixture(scope="module")
def db(store: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(store)
    yield conn
    conn.close()


def sc(*filters, sort=None, size=None, page=None) -> list[tuple[str, str]]:
    """searchCriteria pairs: filters are lists of (field, value, condition) per group."""
    out = []
    for g, group in enumerate(filters):
        for f, (field, value, cond) in enumerate(group):
            pre = f"searchCriteria[filter_groups][{g}][filters][{f}]"
            out += [
                (f"{pre}[field]", field),
                (f"{pre}[value]", value),
                (f"{pre}[condition_type]", cond),
            ]
    for i, (field, direction) in enumerate(sort or []):
        out.append((f"searchCriteria[sortOrders][{i}][field]", field))
        if direction:
            out.append((f"searchCriteria[sortOrders][{i}][direction]", direction))
    if size is not None:
        out.append(("searchCriteria[pageSize]", str(size)))
    if page is not None:
        out.append(("searchCriteria[currentPage]", str(page)))
    return out or [("searchCriteria", "")]


def ids(mg: Connected, path: str, params, key: str = "id") -> list[int]:
    body = check(path, mg.rest("GET", path, params))
    return [item[key] for item in body["items"]]


def test_search_bodies_match_openapi(mg: Connected) -> None:
    body = check("/V1/customers/search", mg.rest("GET", "/rest/V1/customers/search", sc(size=5)))
    assert body["total_count"] == 2000 and len(body["items"]) == 5
    assert body["search_criteria"] == {"filter_groups": [], "page_size": 5}
    customer = body["items"][0]
    assert customer["addresses"] == [] and isinstance(
        customer["extension_attributes"]["is_subscribed"], bool
    )
    orders = check("/V1/orders", mg.rest("GET", "/rest/V1/orders", sc(size=50)))
    assert all(o["items"] and o["items"][0]["sku"] for o in orders["items"])
    guests = [o for o in orders["items"] if o["customer_is_guest"] == 1]
    assert guests and all("customer_id" not in o for o in guests)
    carts = mg.rest("GET", "/rest/V1/carts/search", sc(size=40)).json()
    guest_carts = [c for c in carts["items"] if c["customer_is_guest"]]
    assert guest_carts and carts["items"] != guest_carts
    for cart in guest_carts:  # real Magento prints the non-nullable getters as null here
        assert cart["customer"]["firstname"] is None and cart["customer"]["lastname"] is None
        cart["customer"] = {"email": "", "firstname": "", "lastname": ""}
    response_validator(SPEC, "/V1/carts/search", "get", 200)(carts)
    assert all(isinstance(c["is_active"], bool) for c in carts["items"])
    for path in ("/V1/store/storeViews", "/V1/store/websites", "/V1/customers/7", "/V1/orders/3"):
        check(path, mg.rest("GET", "/rest" + path))
    views = mg.rest("GET", "/rest/V1/store/storeViews").json()
    assert [v["code"] for v in views] == ["admin", "default", "fr"]


def test_cart_totals(mg: Connected, db: sqlite3.Connection) -> None:
    cid, grand = db.execute(
        "SELECT id, grand_total FROM carts WHERE is_active = 1 LIMIT 1"
    ).fetchone()
    body = mg.rest("GET", f"/rest/V1/carts/{cid}/totals").json()
    assert body["grand_total"] == pytest.approx(grand)
    assert {s["code"] for s in body["total_segments"]} >= {"subtotal", "grand_total"}
    closed = db.execute("SELECT id FROM carts WHERE is_active = 0 LIMIT 1").fetchone()[0]
    resp = mg.rest("GET", f"/rest/V1/carts/{closed}/totals")
    assert resp.status_code == 404
    assert resp.json()["parameters"] == {"fieldName": "cartId", "fieldValue": closed}


def test_paging_by_id_covers_everything_once(mg: Connected) -> None:
    seen, page = [], 1
    while True:
        body = mg.rest(
            "GET", "/rest/V1/customers/search", sc(sort=[("entity_id", "ASC")], size=300, page=page)
        ).json()
        assert body["total_count"] == 2000
        if page <= ceil(2000 / 300):
            assert len(body["items"]) == (300 if page < 7 else 200)
        else:
            assert body["items"] == []  # 2.4: past the end is empty
            break
        seen += [c["id"] for c in body["items"]]
        page += 1
    assert seen == sorted(seen) and len(set(seen)) == 2000


def test_paging_by_updated_at_equals_unpaged_order(mg: Connected, db: sqlite3.Connection) -> None:
    sort = [("updated_at", "DESC")]
    everything = ids(mg, "/rest/V1/orders", sc(sort=sort), key="entity_id")  # no pageSize: all rows
    assert len(everything) == db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    paged = []
    for page in range(1, 5):
        paged += ids(mg, "/rest/V1/orders", sc(sort=sort, size=250, page=page), key="entity_id")
    assert paged == everything[:1000]
    stamps = [
        r[0] for r in db.execute("SELECT updated_at FROM orders ORDER BY updated_at DESC, id")
    ]
    got = mg.rest("GET", "/rest/V1/orders", sc(sort=sort, size=5, page=3)).json()["items"]
    assert [o["updated_at"] for o in got] == stamps[10:15]


def test_input_limit_and_legacy_paging(store: Path) -> None:
    c = Connected(store, max_page_size=300)
    try:
        resp = c.rest("GET", "/rest/V1/customers/search", sc(size=301))
        assert resp.status_code == 400
        assert resp.json() == {
            "message": "Maximum SearchCriteria pageSize is %max",
            "parameters": {"max": 300},
        }
        body = c.rest("GET", "/rest/V1/customers/search", sc()).json()
        assert len(body["items"]) == 20 and body["search_criteria"]["page_size"] == 20
        assert len(c.rest("GET", "/rest/V1/customers/search", sc(size=300)).json()["items"]) == 300
    finally:
        c.close()
    legacy = Connected(store, legacy_paging=True)
    try:
        last = legacy.rest("GET", "/rest/V1/customers/search", sc(size=300, page=7)).json()
        past = legacy.rest("GET", "/rest/V1/customers/search", sc(size=300, page=9)).json()
        assert past["items"] == last["items"] and len(past["items"]) == 200
        assert past["search_criteria"]["current_page"] == 9
    finally:
        legacy.close()


def _expect(db: sqlite3.Connection, where: str, params=()) -> list[int]:
    sql = f"SELECT id FROM customers WHERE {where} ORDER BY id"  # noqa: S608
    return [r[0] for r in db.execute(sql, params)]


@pytest.mark.parametrize(
    ("flt", "where", "params"),
    [
        (("group_id", "2", "eq"), "group_id = 2", ()),
        (("group_id", "1", "neq"), "group_id != 1", ()),
        (("created_at", "2025-06-01 00:00:00", "gt"), "created_at > ?", ("2025-06-01 00:00:00",)),
        (
            ("created_at", "2025-06-01 00:00:00", "gteq"),
            "created_at >= ?",
            ("2025-06-01 00:00:00",),
        ),
        (("created_at", "2024-06-01 00:00:00", "lt"), "created_at < ?", ("2024-06-01 00:00:00",)),
        (
            ("created_at", "2024-06-01 00:00:00", "lteq"),
            "created_at <= ?",
            ("2024-06-01 00:00:00",),
        ),
        (("entity_id", "3,5,8,13", "in"), "id IN (3, 5, 8, 13)", ()),
        (("entity_id", "1,2,3", "nin"), "id NOT IN (1, 2, 3)", ()),
        (("email", "%@gmail.com", "like"), "lower(email) LIKE '%@gmail.com'", ()),
        (("id", "", "notnull"), "1", ()),
        (("id", "", "null"), "0", ()),
    ],
)
def test_condition_types(mg: Connected, db, flt, where, params) -> None:
    got = ids(mg, "/rest/V1/customers/search", sc([flt], sort=[("entity_id", "ASC")]))
    assert got == _expect(db, where, params)


def test_or_within_group_and_across_groups(mg: Connected, db: sqlite3.Connection) -> None:
    groups = (
        [("group_id", "2", "eq"), ("group_id", "3", "eq")],
        [("created_at", "2025-01-01 00:00:00", "gteq")],
    )
    got = ids(mg, "/rest/V1/customers/search", sc(*groups, sort=[("entity_id", "ASC")]))
    assert got == _expect(db, "group_id IN (2, 3) AND created_at >= '2025-01-01 00:00:00'")
    guests = mg.rest("GET", "/rest/V1/orders", sc([("customer_id", "", "null")], size=500)).json()
    n = db.execute("SELECT COUNT(*) FROM orders WHERE customer_id IS NULL").fetchone()[0]
    assert guests["total_count"] == n and all(o["customer_is_guest"] == 1 for o in guests["items"])
    echo = guests["search_criteria"]["filter_groups"][0]["filters"][0]
    assert echo == {"field": "customer_id", "value": "", "condition_type": "null"}


def test_sort_orders(mg: Connected, db: sqlite3.Connection) -> None:
    desc = ids(mg, "/rest/V1/customers/search", sc(sort=[("email", "DESC")], size=10))
    rows = db.execute("SELECT id FROM customers ORDER BY email DESC, id LIMIT 10").fetchall()
    assert desc == [r[0] for r in rows]
    resp = mg.rest("GET", "/rest/V1/customers/search", sc(sort=[("entity_id", None)], size=3))
    assert [c["id"] for c in resp.json()["items"]] == [2000, 1999, 1998]  # DESC unless told ASC
    assert resp.json()["search_criteria"]["sort_orders"] == [
        {"field": "entity_id", "direction": None}
    ]
    assert ids(mg, "/rest/V1/customers/search", sc(size=3)) == [1, 2, 3]


def test_errors(mg: Connected) -> None:
    bad = mg.rest("GET", "/rest/V1/customers/search", sc([("nope", "1", "eq")]))
    assert bad.status_code == 400
    assert bad.json() == {
        "message": 'The "%1" attribute name is invalid. Reset the name and try again.',
        "parameters": ["nope"],
    }
    sql_error = mg.rest("GET", "/rest/V1/orders", sc([("nope", "1", "eq")]))
    assert sql_error.status_code == 500
    assert sql_error.json()["message"].startswith("Internal Error. Details are available")
    missing = mg.rest("GET", "/rest/V1/orders")
    assert missing.status_code == 400
    assert missing.json()["parameters"] == {"fieldName": "searchCriteria"}
    typed = mg.rest("GET", "/rest/V1/orders", [("searchCriteria[pageSize]", "ten")])
    assert typed.status_code == 400 and typed.json()["parameters"]["type"] == "int"
    assert mg.rest("GET", "/rest/V1/customers/99999").status_code == 404


@pytest.mark.parametrize(
    ("prefix", "status"),
    [
        ("/rest/V1", 200),
        ("/rest/default/V1", 200),
        ("/rest/fr/V1", 200),
        ("/rest/all/V1", 200),
        ("/index.php/rest/V1", 200),
        ("/index.php/rest/default/V1", 200),
        ("/rest/nope/V1", 404),
    ],
)
def test_store_code_paths(mg: Connected, prefix: str, status: int) -> None:
    resp = mg.rest("GET", f"{prefix}/customers/search", sc(size=1))
    assert resp.status_code == status
    if status == 404:
        assert resp.json() == {"message": "Request does not match any route."}


def test_put_is_subscribed(mg: Connected) -> None:
    before = check("/V1/customers/5", mg.rest("GET", "/rest/V1/customers/5"))
    flipped = not before["extension_attributes"]["is_subscribed"]
    mg.clock.now = T0 + 3600
    customer = {**before, "extension_attributes": {"is_subscribed": flipped}}
    resp = mg.rest("PUT", "/rest/V1/customers/5", json_body={"customer": customer})
    after = check("/V1/customers/{customerId}", resp, "put")
    assert after["extension_attributes"]["is_subscribed"] is flipped
    assert after["updated_at"] == "2027-01-15 09:00:00"
    again = mg.rest(
        "GET", "/rest/V1/customers/search", sc([("updated_at", "2027-01-15 09:00:00", "gteq")])
    ).json()
    assert [c["id"] for c in again["items"]] == [5]
    assert again["items"][0]["extension_attributes"]["is_subscribed"] is flipped
    no_name = {k: v for k, v in before.items() if k != "firstname"}
    resp = mg.rest("PUT", "/rest/V1/customers/5", json_body={"customer": no_name})
    assert resp.status_code == 400 and resp.json()["parameters"] == {"fieldName": "firstname"}
    assert (
        mg.rest("PUT", "/rest/V1/customers/99999", json_body={"customer": before}).status_code
        == 404
    )


def test_faults_are_magento_shaped_and_counted(store: Path) -> None:
    c = Connected(store)
    try:
        requests.post(f"{c.url}/_sandbox/faults", json={"p429": 1.0}, timeout=30)
        resp = c.rest("GET", "/rest/V1/store/websites")
        assert resp.status_code == 429
        assert resp.json()["message"] == "Too Many Requests"
        calls = requests.get(f"{c.url}/_sandbox/stats", timeout=30).json()["calls"]
        assert calls["GET /<mgrest:base>/V1/store/websites"] == 1
    finally:
        c.close()


def test_fields_partial_response(mg: Connected) -> None:
    params = [*sc(size=2), ("fields", "items[id,email,extension_attributes[is_subscribed]]")]
    body = mg.rest("GET", "/rest/V1/customers/search", params).json()
    assert set(body) == {"items"}  # total_count only when listed
    assert all(set(c) == {"id", "email", "extension_attributes"} for c in body["items"])
    params = [*sc(size=2), ("fields", "items[entity_id,items[sku]],total_count")]
    body = mg.rest("GET", "/rest/V1/orders", params).json()
    assert set(body) == {"items", "total_count"}
    assert all(set(i) == {"sku"} for o in body["items"] for i in o["items"])
