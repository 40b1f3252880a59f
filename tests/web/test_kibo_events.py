"""POST /kibo/events fed by the real Kibo sandbox sender over loopback HTTP.

Signed deliveries, retries after 500s, replayed duplicates, per-site fan-out, stale dates,
bad signatures, malformed and oversize bodies, application.* topics out of order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, text

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Merchant, StoreConnection, StoreEvent
from cc_storeplugin.sandbox.kibo import DEMO_SHARED_SECRET
from cc_storeplugin.sandbox.kibo import create_app as kibo_app
from cc_storeplugin.sandbox.kibo.events import build_event_body, signed_headers
from cc_storeplugin.sandbox.kibo.signing import format_http_date
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread
from cc_storeplugin.sandbox.storegen import generate_store
from cc_storeplugin.sync.kibo_events import (
    UNINSTALLED_REASON,
    apply_application_events,
    claim_tenant_events,
    coalesce_customer_events,
    event_instant,
    mark_applied,
    mark_ignored,
    pending_events,
    store_events,
)
from tests.conftest import dispose_engines, make_app

TENANT, MAIN, OUTLET = "12345", 23456, 23457
APP_KEY = "sandbox.ccplugin.1.0.0.Release"


# --- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kibo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path: Path = tmp_path_factory.mktemp("kibo-intake") / "store.sqlite"
    generate_store(path, customers=20, seed=3, now="2026-11-01 00:00:00")
    server = serve_in_thread(kibo_app(store=str(path)))
    yield server
    server.app.extensions["kibo"].events.stop()
    server.stop()


@pytest.fixture
def plugin(sqlite_url: str):
    """The plugin app with the sandbox's shared secret, tables created (context pushed)."""
    app = make_app(sqlite_url, KIBO_SHARED_SECRET=DEMO_SHARED_SECRET)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        dispose_engines()


class FlakyFront:
    """WSGI wrapper: per request, 'refuse' (500, plugin not called), 'lose' (plugin stores,
    the 200 is replaced by a 500, as if the ack was lost), then pass-through."""

    def __init__(self, app, plan: list[str]) -> None:
        self.app, self.plan, self.lock = app, list(plan), threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            step = self.plan.pop(0) if self.plan else "pass"
        if step == "pass":
            return self.app(environ, start_response)
        if step == "refuse":
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        else:
            out = self.app(environ, lambda *a, **k: lambda data: None)
            b"".join(out)
            getattr(out, "close", lambda: None)()
        start_response("500 INTERNAL SERVER ERROR", [("Content-Type", "application/json")])
        return [b'{"error": "down"}']


def _point(kibo: RunningServer, url: str, max_attempts: int = 6) -> None:
    ctl = f"{kibo.url}/_sandbox"
    requests.post(f"{ctl}/endpoint", json={"url": url}, timeout=5).raise_for_status()
    policy = {"delays": [0.05], "maxAttempts": max_attempts}
    requests.post(f"{ctl}/retry-policy", json=policy, timeout=5).raise_for_status()


@pytest.fixture
def served(plugin, kibo: RunningServer) -> Iterator[RunningServer]:
    server = serve_in_thread(plugin)
    _point(kibo, f"{server.url}/kibo/events")
    yield server
    _wait(kibo)
    server.stop()


def _wait(kibo: RunningServer) -> None:
    resp = requests.post(f"{kibo.url}/_sandbox/events/wait", json={"timeout": 15}, timeout=20)
    assert resp.json()["idle"] is True


def send(kibo: RunningServer, *events: dict) -> list[dict]:
    """Emit events through the sandbox, wait for delivery, return the final deliveries."""
    resp = requests.post(f"{kibo.url}/_sandbox/events", json={"events": list(events)}, timeout=5)
    assert resp.status_code == 202, resp.text
    _wait(kibo)
    return [delivery(kibo, d["id"]) for d in resp.json()["deliveries"]]


def delivery(kibo: RunningServer, delivery_id: int) -> dict:
    return requests.get(f"{kibo.url}/_sandbox/deliveries/{delivery_id}", timeout=5).json()


def stored() -> list[StoreEvent]:
    db.session.remove()
    return list(db.session.scalars(select(StoreEvent).order_by(StoreEvent.id)))


def connect_tenant(**settings) -> int:
    merchant = Merchant(cc_account_id="acct-kibo", name="Kibo shop")
    conn = StoreConnection(
        merchant=merchant, platform="kibo", external_id=TENANT, status="active", settings=settings
    )
    db.session.add_all([merchant, conn])
    db.session.commit()
    return conn.id


def post_signed(url: str, body: bytes, **kw) -> requests.Response:
    headers = signed_headers(
        DEMO_SHARED_SECRET,
        body,
        date=kw.pop("date", None) or format_http_date(),
        tenant_id=int(TENANT),
        site_id=MAIN,
        tenant_domain="t12345.sandbox.mozu.com",
        **kw,
    )
    return requests.post(f"{url}/kibo/events", data=body, headers=headers, timeout=10)


# --- intake over HTTP from the sandbox ------------------------------------------------------
def test_a_signed_delivery_is_stored_queued_with_tenant_site_and_connection(kibo, served):
    conn_id = connect_tenant()
    (got,) = send(kibo, {"topic": "customeraccount.created", "entityId": "1001", "siteId": MAIN})
    assert [a["status"] for a in got["attempts"]] == [200]
    (row,) = stored()
    body = json.loads(got["body"])
    assert (row.platform, row.event_id, row.topic, row.entity_id) == (
        "kibo",
        body["eventId"],
        "customeraccount.created",
        "1001",
    )
    assert (row.tenant_id, row.site_id, row.connection_id) == (TENANT, str(MAIN), conn_id)
    assert row.status == "queued" and row.payload == body


def test_retries_after_500s_are_stored_once(kibo, plugin):
    server = serve_in_thread(FlakyFront(plugin, ["refuse", "lose"]))
    try:
        _point(kibo, f"{server.url}/kibo/events")
        (got,) = send(kibo, {"topic": "order.closed", "entityId": "ab" * 16, "siteId": MAIN})
    finally:
        server.stop()
    assert [a["status"] for a in got["attempts"]] == [500, 500, 200]
    assert [r.event_id for r in stored()] == [json.loads(got["body"])["eventId"]]


def test_replayed_duplicates_are_accepted_and_stored_once(kibo, served):
    (first,) = send(kibo, {"topic": "cart.updated", "entityId": "cd" * 16, "siteId": MAIN})
    for options in ({}, {"keepDate": True}):
        resp = requests.post(
            f"{kibo.url}/_sandbox/deliveries/{first['id']}/replay", json=options, timeout=5
        )
        assert resp.status_code == 202
    _wait(kibo)
    replays = [
        d
        for d in requests.get(f"{kibo.url}/_sandbox/deliveries", timeout=5).json()["deliveries"]
        if d["replayOf"] == first["id"]
    ]
    assert len(replays) == 2 and all(d["attempts"][-1]["status"] == 200 for d in replays)
    assert len(stored()) == 1


def test_per_site_fan_out_is_stored_per_copy_and_applied_once(kibo, served):
    copies = send(kibo, {"topic": "customeraccount.updated", "entityId": "1002"})
    assert sorted(d["siteId"] for d in copies) == [MAIN, OUTLET]
    rows = stored()
    assert len({r.event_id for r in rows}) == 2
    assert len({r.payload["correlationId"] for r in rows}) == 1

    latest = coalesce_customer_events(TENANT)
    assert list(latest) == ["1002"]
    assert mark_applied([latest["1002"].id]) == 1
    assert pending_events(tenant_id=TENANT) == []
    assert sorted(r.status for r in stored()) == ["applied", "ignored"]
    assert coalesce_customer_events(TENANT) == {}


def test_customer_events_coalesce_to_the_latest_per_customer(kibo, served):
    send(
        kibo,
        {"topic": "customeraccount.created", "entityId": "7", "siteId": MAIN},
        {"topic": "customeraccount.created", "entityId": "8", "siteId": MAIN},
        {"topic": "customeraccount.updated", "entityId": "7", "siteId": MAIN},
        {"topic": "order.closed", "entityId": "ef" * 16, "siteId": MAIN},
    )
    send(kibo, {"topic": "customeraccount.deleted", "entityId": "8", "siteId": OUTLET})
    latest = coalesce_customer_events(TENANT, limit=10)
    assert {k: v.topic for k, v in latest.items()} == {
        "7": "customeraccount.updated",
        "8": "customeraccount.deleted",
    }
    left = pending_events(tenant_id=TENANT)
    assert sorted(e.topic for e in left) == [
        "customeraccount.deleted",
        "customeraccount.updated",
        "order.closed",
    ]


@pytest.mark.parametrize(
    ("spec", "status"),
    [({"staleDateSeconds": 300}, 401), ({"badSignature": True}, 401)],
    ids=["stale-date", "bad-signature"],
)
def test_unverified_deliveries_are_refused_and_nothing_is_stored(kibo, served, spec, status):
    _point(kibo, f"{served.url}/kibo/events", max_attempts=2)
    (got,) = send(
        kibo, {"topic": "customeraccount.created", "entityId": "9", "siteId": MAIN, **spec}
    )
    assert [a["status"] for a in got["attempts"]] == [status, status]
    assert got["status"] == "failed"
    assert stored() == []


# --- refusals with their JSON errors (bodies signed with the sandbox's own code) --------------
def test_stale_date_and_bad_signature_answer_json_errors(served):
    body = build_event_body("customeraccount.created", "10")
    stale = post_signed(served.url, body, date=format_http_date(time.time() - 181))
    assert stale.status_code == 401 and "Date" in stale.json()["error"]
    forged = post_signed(served.url, body, bad_signature=True)
    assert forged.status_code == 401 and "signature" in forged.json()["error"]
    unsigned = requests.post(f"{served.url}/kibo/events", data=body, timeout=5)
    assert unsigned.status_code == 401
    assert stored() == []


def test_malformed_json_and_missing_fields_are_400_naming_the_field(served):
    bad = post_signed(served.url, b'{"eventId": "x", "topic": ')
    assert bad.status_code == 400 and bad.json()["error"] == "body is not valid JSON"
    for missing in ("eventId", "topic"):
        body = json.loads(build_event_body("customeraccount.created", "11"))
        del body[missing]
        resp = post_signed(served.url, json.dumps(body).encode())
        assert resp.status_code == 400
        assert resp.json()["field"] == missing and missing in resp.json()["error"]
    assert stored() == []


def test_an_oversize_body_is_413_before_anything_is_read(served):
    body = b'{"eventId": "big", "topic": "cart.updated", "pad": "' + b"x" * (1 << 20) + b'"}'
    resp = post_signed(served.url, body)
    assert resp.status_code == 413 and "larger" in resp.json()["error"]
    assert stored() == []


def test_without_a_shared_secret_events_are_refused(sqlite_url):
    app = make_app(sqlite_url, KIBO_SHARED_SECRET=None)
    resp = app.test_client().post("/kibo/events", data=build_event_body("cart.updated", "1"))
    assert resp.status_code == 503 and "KIBO_SHARED_SECRET" in resp.json["error"]


# --- application.* state ----------------------------------------------------------------------
def test_application_topics_out_of_order_keep_the_newest_state(kibo, served):
    conn_id = connect_tenant()
    # The disabled event is older but held back, so it arrives after the newer enabled.
    made = requests.post(
        f"{kibo.url}/_sandbox/events",
        json={"topic": "application.disabled", "entityId": APP_KEY, "holdSeconds": 0.6},
        timeout=5,
    ).json()["deliveries"]
    time.sleep(0.01)
    send(kibo, {"topic": "application.enabled", "entityId": APP_KEY})
    _wait(kibo)
    assert all(delivery(kibo, d["id"])["attempts"][-1]["status"] == 200 for d in made)
    db.session.remove()
    conn = db.session.get(StoreConnection, conn_id)
    assert (conn.settings["enabled"], conn.settings["installed"]) == (True, True)
    assert conn.status == "active"
    by_topic = sorted((r.topic, r.status) for r in stored())
    assert by_topic == [
        ("application.disabled", "ignored"),
        ("application.disabled", "ignored"),
        ("application.enabled", "applied"),
        ("application.enabled", "ignored"),
    ]


def test_install_before_the_merchant_links_waits_then_applies(kibo, served):
    send(kibo, {"topic": "application.installed", "entityId": APP_KEY, "siteId": MAIN})
    (row,) = stored()
    assert (row.status, row.connection_id) == ("queued", None)

    conn_id = connect_tenant()
    assert claim_tenant_events(conn_id) == 1
    assert [e.id for e in pending_events(connection_id=conn_id)] == [row.id]
    assert apply_application_events(TENANT) == {"applied": 1, "ignored": 0}
    db.session.remove()
    conn = db.session.get(StoreConnection, conn_id)
    assert (conn.settings["installed"], conn.settings["enabled"]) == (True, False)


def test_uninstall_disconnects_and_a_newer_install_revives(kibo, served):
    conn_id = connect_tenant()
    send(kibo, {"topic": "application.enabled", "entityId": APP_KEY, "siteId": MAIN})
    send(kibo, {"topic": "application.uninstalled", "entityId": APP_KEY, "siteId": MAIN})
    db.session.remove()
    gone = db.session.get(StoreConnection, conn_id)
    assert (gone.status, gone.status_reason) == ("disconnected", UNINSTALLED_REASON)
    assert (gone.settings["installed"], gone.settings["enabled"]) == (False, False)

    send(kibo, {"topic": "application.installed", "entityId": APP_KEY, "siteId": MAIN})
    db.session.remove()
    back = db.session.get(StoreConnection, conn_id)
    assert (back.status, back.status_reason) == ("active", None)
    assert (back.settings["installed"], back.settings["enabled"]) == (True, False)


# --- store helpers on both databases -----------------------------------------------------------
def test_duplicate_posts_are_stored_once_on_each_database(any_db_app):
    any_db_app.config["KIBO_SHARED_SECRET"] = DEMO_SHARED_SECRET
    client = any_db_app.test_client()
    body = build_event_body("customeraccount.updated", "42")
    headers = signed_headers(
        DEMO_SHARED_SECRET,
        body,
        date=format_http_date(),
        tenant_id=12345,
        site_id=MAIN,
        tenant_domain="t12345.sandbox.mozu.com",
    )
    answers = [client.post("/kibo/events", data=body, headers=headers).json for _ in range(3)]
    assert [a["status"] for a in answers] == ["accepted", "duplicate", "duplicate"]
    (row,) = db.session.scalars(select(StoreEvent)).all()
    assert coalesce_customer_events(TENANT) == {"42": row}
    assert mark_applied([row.id]) == 1
    assert mark_ignored([row.id]) == 0 and mark_applied([row.id]) == 0  # applied once


def test_event_instant_sorts_kibo_timestamps_in_utc():
    assert event_instant("2014-09-17T03:07:13.5655802Z") == "2014-09-17T03:07:13.5655802Z"
    assert event_instant("2014-09-17T05:07:13.1+02:00") == "2014-09-17T03:07:13.1000000Z"
    assert event_instant("2014-09-17T03:07:13Z") < event_instant("2014-09-17T03:07:13.0000001Z")
    assert event_instant("yesterday") is None


@pytest.mark.postgres
def test_concurrent_copies_of_one_event_are_stored_once_on_postgresql(pg_database_url):
    from concurrent.futures import ThreadPoolExecutor

    app = make_app(pg_database_url, KIBO_SHARED_SECRET=DEMO_SHARED_SECRET)
    with app.app_context():
        db.drop_all()
        db.create_all()
        server = serve_in_thread(app)
        try:
            body = build_event_body("customeraccount.created", "77")
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: post_signed(server.url, body), range(16)))
        finally:
            server.stop()
        assert {r.status_code for r in answers} == {200}
        assert sorted(r.json()["status"] for r in answers).count("accepted") == 1
        assert len(stored()) == 1
        db.session.remove()
        dispose_engines()
        db.drop_all()
        dispose_engines()


# --- the fast intake path: statements shared by concurrent requests, the payload as sent --------
def test_a_get_on_the_event_url_is_refused_by_flask(sqlite_url):
    app = make_app(sqlite_url, KIBO_SHARED_SECRET=DEMO_SHARED_SECRET)
    resp = app.test_client().get("/kibo/events")
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]


def test_a_repeated_event_id_among_rows_stored_together_is_stored_once(any_db_app):
    first = build_event_body("customeraccount.updated", "5")
    other = build_event_body("order.closed", "ab" * 16)
    rows = [(json.loads(first), TENANT, str(MAIN), first)] * 2
    rows.append((json.loads(other), TENANT, None, None))
    assert store_events(rows) == [True, False, True]
    assert store_events(rows[:1]) == [False]
    got = {r.event_id: r for r in stored()}
    assert got[json.loads(first)["eventId"]].payload == json.loads(first)
    assert got[json.loads(other)["eventId"]].site_id is None


def test_a_utf16_body_is_verified_and_stored_as_json(any_db_app):
    any_db_app.config["KIBO_SHARED_SECRET"] = DEMO_SHARED_SECRET
    payload = json.loads(build_event_body("customeraccount.updated", "43"))
    payload["note"] = "caf\u00e9"
    body = json.dumps(payload).encode("utf-16")
    headers = signed_headers(
        DEMO_SHARED_SECRET,
        body,
        date=format_http_date(),
        tenant_id=int(TENANT),
        site_id=MAIN,
        tenant_domain="t12345.sandbox.mozu.com",
    )
    resp = any_db_app.test_client().post("/kibo/events", data=body, headers=headers)
    assert resp.status_code == 200 and resp.json["status"] == "accepted"
    (row,) = stored()
    assert row.payload == payload


@pytest.mark.postgres
def test_concurrent_events_are_each_acknowledged_after_being_stored_on_postgresql(
    pg_database_url,
):
    from concurrent.futures import ThreadPoolExecutor

    app = make_app(pg_database_url, KIBO_SHARED_SECRET=DEMO_SHARED_SECRET)
    with app.app_context():
        db.drop_all()
        db.create_all()
        conn_id = connect_tenant()
        server = serve_in_thread(app)
        bodies = [build_event_body("customeraccount.updated", str(i)) for i in range(40)]
        # PostgreSQL refuses NUL in text: that event fails alone, whatever it is stored with.
        bad = json.dumps({"eventId": "bad\u0000id", "topic": "cart.updated"}).encode()
        try:
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda b: post_signed(server.url, b), [*bodies, bad]))
            again = post_signed(server.url, bodies[0])
        finally:
            server.stop()
        assert [r.json()["status"] for r in answers[:-1]] == ["accepted"] * 40
        assert answers[-1].status_code == 500
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        rows = stored()
        assert sorted(r.event_id for r in rows) == sorted(json.loads(b)["eventId"] for b in bodies)
        assert {(r.tenant_id, r.site_id, r.connection_id, r.status) for r in rows} == {
            (TENANT, str(MAIN), conn_id, "queued")
        }
        as_sent = db.session.execute(text("SELECT event_id, payload::text FROM store_events"))
        assert {json.loads(body)["eventId"]: body.decode() for body in bodies} == dict(
            as_sent.all()
        )
        db.session.remove()
        dispose_engines()
        db.drop_all()
        dispose_engines()
