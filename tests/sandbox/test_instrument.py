"""Counters, request log, control endpoints and seeded faults of sandbox.instrument."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from flask import Flask, abort, jsonify

from cc_storeplugin.sandbox.instrument import instrument
from cc_storeplugin.sandbox.server import serve_in_thread


def make_app(**kw) -> Flask:
    app = Flask("tiny")

    @app.get("/rest/V1/customers/search")
    def search():
        return jsonify({"items": [], "total_count": 0})

    @app.get("/rest/<store_code>/V1/orders/<int:order_id>")
    def order(store_code: str, order_id: int):
        return jsonify({"entity_id": order_id, "store": store_code})

    @app.post("/secret")
    def secret():
        abort(401)

    instrument(app, **kw)
    return app


@pytest.fixture
def served():
    servers = []

    def start(**kw):
        srv = serve_in_thread(make_app(**kw))
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def test_counts_by_method_and_url_rule(served):
    srv = served()
    for _ in range(3):
        assert requests.get(srv.url + "/rest/V1/customers/search", timeout=5).status_code == 200
    requests.get(srv.url + "/rest/default/V1/orders/7?x=1", timeout=5)
    requests.get(srv.url + "/rest/all/V1/orders/8", timeout=5)
    assert requests.post(srv.url + "/secret", timeout=5).status_code == 401
    stats = requests.get(srv.url + "/_sandbox/stats", timeout=5).json()
    assert stats["calls"] == {
        "GET /rest/V1/customers/search": 3,
        "GET /rest/<store_code>/V1/orders/<int:order_id>": 2,
        "POST /secret": 1,
    }
    assert stats["total"] == 6
    control = srv.app.extensions["sandbox"]
    assert control.calls == stats["calls"]


def test_request_log_entries_and_limit(served):
    srv = served()
    requests.get(srv.url + "/rest/default/V1/orders/7?x=1&y=2", timeout=5)
    requests.post(srv.url + "/secret", timeout=5)
    requests.get(srv.url + "/nowhere", timeout=5)
    log = requests.get(srv.url + "/_sandbox/log", timeout=5).json()["entries"]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", "/rest/default/V1/orders/7", 200),
        ("POST", "/secret", 401),
        ("GET", "/nowhere", 404),
    ]
    assert log[0]["query"] == "x=1&y=2"
    assert all(e["ms"] >= 0 and e["fault"] is None for e in log)
    last = requests.get(srv.url + "/_sandbox/log?limit=1", timeout=5).json()["entries"]
    assert [e["path"] for e in last] == ["/nowhere"]


def test_log_is_bounded():
    app = make_app(log_size=5)
    client = app.test_client()
    for i in range(8):
        client.get(f"/rest/default/V1/orders/{i}")
    control = app.extensions["sandbox"]
    assert [e["path"][-1] for e in control.log] == list("34567")
    assert control.total() == 8


def test_reset_clears_counters_and_log(served):
    srv = served()
    requests.get(srv.url + "/rest/V1/customers/search", timeout=5)
    assert requests.post(srv.url + "/_sandbox/reset", timeout=5).status_code == 200
    stats = requests.get(srv.url + "/_sandbox/stats", timeout=5).json()
    assert stats["calls"] == {} and stats["total"] == 0
    assert requests.get(srv.url + "/_sandbox/log", timeout=5).json()["entries"] == []


def test_fault_sequence_is_deterministic_from_seed():
    def statuses(seed: int) -> list[int]:
        app = make_app(seed=seed, p429=0.3, p5xx=0.3)
        client = app.test_client()
        return [client.get("/rest/V1/customers/search").status_code for _ in range(60)]

    a, b, c = statuses(5), statuses(5), statuses(6)
    assert a == b
    assert a != c
    assert {200, 429} <= set(a)
    assert set(a) - {200, 429} and set(a) <= {200, 429, 500, 502, 503}
    # Roughly the configured shares.
    assert 8 <= a.count(429) <= 30


def test_injected_error_uses_platform_body(served):
    def body(status: int):
        resp = jsonify({"error_key": "throttled", "error_message": f"status {status}"})
        resp.status_code = status
        return resp

    srv = served(error_response=body, p429=1.0)
    resp = requests.get(srv.url + "/rest/V1/customers/search", timeout=5)
    assert resp.status_code == 429
    assert resp.json() == {"error_key": "throttled", "error_message": "status 429"}
    # Control paths are never faulted, nor counted.
    assert requests.get(srv.url + "/_sandbox/stats", timeout=5).json()["total"] == 1
    log = srv.app.extensions["sandbox"].log
    assert log[0]["fault"] == "429" and log[0]["status"] == 429


def test_default_error_body_for_5xx():
    app = make_app(p5xx=1.0)
    resp = app.test_client().get("/rest/V1/customers/search")
    assert resp.status_code in (500, 502, 503)
    assert resp.get_json() == {"message": "Injected server error"}


def test_dropped_connection_is_a_connection_error(served):
    srv = served(pdrop=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(srv.url + "/rest/V1/customers/search", timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(srv.url + "/secret", data=b"x" * 100_000, timeout=5)
    # The server keeps serving, and logs the drops with status 0.
    stats = requests.get(srv.url + "/_sandbox/stats", timeout=5).json()
    assert stats["total"] == 2
    log = requests.get(srv.url + "/_sandbox/log", timeout=5).json()["entries"]
    assert [(e["status"], e["fault"]) for e in log] == [(0, "drop"), (0, "drop")]


def test_faults_endpoint_changes_and_validates(served):
    srv = served()
    url = srv.url + "/rest/V1/customers/search"
    assert requests.get(url, timeout=5).status_code == 200
    resp = requests.post(srv.url + "/_sandbox/faults", json={"p429": 1.0}, timeout=5)
    assert resp.status_code == 200 and resp.json()["faults"]["p429"] == 1.0
    assert requests.get(url, timeout=5).status_code == 429
    for bad in ({"p429": 2}, {"bogus": 1}, {"p429": 0.6, "p5xx": 0.6}):
        assert requests.post(srv.url + "/_sandbox/faults", json=bad, timeout=5).status_code == 400
    assert requests.post(srv.url + "/_sandbox/faults", data="x", timeout=5).status_code == 400
    reset = requests.post(srv.url + "/_sandbox/reset", json={"faults": True}, timeout=5)
    assert reset.json()["faults"]["p429"] == 0.0
    assert requests.get(url, timeout=5).status_code == 200


def test_latency_is_applied(served):
    srv = served(latency_ms=150)
    t0 = time.perf_counter()
    requests.get(srv.url + "/rest/V1/customers/search", timeout=5)
    assert time.perf_counter() - t0 >= 0.15
    t0 = time.perf_counter()
    requests.get(srv.url + "/_sandbox/stats", timeout=5)
    assert time.perf_counter() - t0 < 0.15


def test_counters_are_thread_safe(served):
    srv = served()
    url = srv.url + "/rest/V1/customers/search"

    def worker():
        with requests.Session() as s:
            for _ in range(25):
                s.get(url, timeout=5)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    control = srv.app.extensions["sandbox"]
    assert control.calls == {"GET /rest/V1/customers/search": 200}
    assert len(control.log) == 200
