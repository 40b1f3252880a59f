"""Kibo event sender and configuration launcher against a little receiver over HTTP."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest
import requests
from flask import Flask, request

from cc_storeplugin.sandbox.kibo import DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET, create_app
from cc_storeplugin.sandbox.kibo.signing import kibo_hash, verify_kibo_hash
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread
from cc_storeplugin.sandbox.storegen import generate_store
from tests.sandbox.openapi import request_validator

WEBHOOKS = "kibo-webhooks.json"
TENANT, MAIN, OUTLET = 12345, 23456, 23457
BODY_KEYS = ["eventId", "topic", "entityId", "timestamp", "correlationId", "isTest"]


class Receiver:
    """The plugin side: records every POST, verifies it, answers per a scripted status list."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[dict] = []
        self.script: list[int] = []  # statuses for the next requests, then 200
        app = Flask("kibo-receiver")

        @app.post("/kibo/events")
        def intake() -> tuple[str, int]:
            raw = request.get_data()
            headers = dict(request.headers)
            entry = {
                "headers": headers,
                "raw": raw,
                "valid": verify_kibo_hash(
                    DEMO_SHARED_SECRET,
                    headers.get("Date", ""),
                    raw,
                    headers.get("X-Vol-Hmac-Sha256"),
                ),
            }
            with self.lock:
                self.received.append(entry)
                status = self.script.pop(0) if self.script else 200
            return "", status

        @app.post("/kibo/config")
        def config() -> tuple[str, int]:
            body = unquote_plus(request.get_data(as_text=True))
            ok = verify_kibo_hash(
                DEMO_SHARED_SECRET,
                request.args.get("dt", ""),
                body,
                request.args.get("messageHash"),
            )
            with self.lock:
                self.received.append({"config": True, "body": body, "valid": ok})
            return ("ok", 200) if ok else ("bad", 401)

        self.server = serve_in_thread(app)
        self.url = self.server.url

    def events(self) -> list[dict]:
        with self.lock:
            return [e for e in self.received if "raw" in e]


@pytest.fixture(scope="module")
def kibo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path: Path = tmp_path_factory.mktemp("kibo-ev") / "kibo-events.sqlite"
    generate_store(path, customers=60, seed=5, now="2026-11-01 00:00:00")
    server = serve_in_thread(create_app(store=str(path)))
    yield server
    server.app.extensions["kibo"].events.stop()
    server.stop()


@pytest.fixture
def receiver(kibo: RunningServer) -> Iterator[Receiver]:
    rec = Receiver()
    ctl = f"{kibo.url}/_sandbox"
    requests.post(f"{ctl}/endpoint", json={"url": f"{rec.url}/kibo/events"}, timeout=5)
    requests.post(f"{ctl}/retry-policy", json={"delays": [0.05], "maxAttempts": 6}, timeout=5)
    yield rec
    wait_idle(kibo)
    requests.post(f"{ctl}/endpoint", json={"url": None}, timeout=5)
    rec.server.stop()


def wait_idle(kibo: RunningServer) -> None:
    resp = requests.post(f"{kibo.url}/_sandbox/events/wait", json={"timeout": 10}, timeout=15)
    assert resp.json()["idle"] is True


def send(kibo: RunningServer, payload: dict) -> list[dict]:
    resp = requests.post(f"{kibo.url}/_sandbox/events", json=payload, timeout=5)
    assert resp.status_code == 202, resp.text
    wait_idle(kibo)
    return resp.json()["deliveries"]


def delivery(kibo: RunningServer, delivery_id: int) -> dict:
    return requests.get(f"{kibo.url}/_sandbox/deliveries/{delivery_id}", timeout=5).json()


def token_headers(kibo: RunningServer) -> dict[str, str]:
    ticket = requests.post(
        f"{kibo.url}/api/platform/applications/authtickets",
        json={"applicationId": DEFAULT_APPLICATION_ID, "sharedSecret": DEMO_SHARED_SECRET},
        timeout=5,
    ).json()
    return {"x-vol-app-claims": ticket["accessToken"], "x-vol-tenant": str(TENANT)}


def test_site_level_event_is_signed_and_shaped_like_kibo(
    kibo: RunningServer, receiver: Receiver
) -> None:
    orders = requests.get(
        f"{kibo.url}/api/commerce/orders",
        headers=token_headers(kibo),
        params={"pageSize": 1},
        timeout=5,
    ).json()["items"]
    made = send(kibo, {"topic": "order.closed", "entityId": orders[0]["id"]})
    assert len(made) == 1
    (got,) = receiver.events()
    assert got["valid"]
    h = {k.lower(): v for k, v in got["headers"].items()}
    assert h["x-vol-tenant"] == str(TENANT) and h["x-vol-site"] == str(orders[0]["siteId"])
    assert h["x-vol-tenant-domain"] == f"127.0.0.1:{kibo.port}"
    assert h["content-type"].startswith("application/json")
    assert abs(parsedate_to_datetime(h["date"]).timestamp() - time.time()) < 10
    assert h["x-vol-hmac-sha256"] == kibo_hash(DEMO_SHARED_SECRET, h["date"], got["raw"])
    body = json.loads(got["raw"])
    assert list(body) == BODY_KEYS
    assert b" " not in got["raw"]  # compact JSON as Kibo sends it
    assert body["topic"] == "order.closed" and body["entityId"] == orders[0]["id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", body["timestamp"])
    assert uuid.UUID(body["eventId"]) and body["isTest"] is False
    assert h["x-vol-correlation"] == body["correlationId"]
    request_validator(WEBHOOKS, "/OrderEvents/OrderClosed", "post")(body)
    assert delivery(kibo, made[0]["id"])["status"] == "delivered"


def test_tenant_level_event_fans_out_per_site(kibo: RunningServer, receiver: Receiver) -> None:
    made = send(kibo, {"topic": "customeraccount.created", "entityId": "7"})
    assert sorted(d["siteId"] for d in made) == [MAIN, OUTLET]
    got = receiver.events()
    assert len(got) == 2 and all(g["valid"] for g in got)
    assert sorted(g["headers"]["X-Vol-Site"] for g in got) == [str(MAIN), str(OUTLET)]
    bodies = [json.loads(g["raw"]) for g in got]
    assert bodies[0]["eventId"] != bodies[1]["eventId"]
    assert bodies[0]["correlationId"] == bodies[1]["correlationId"]
    assert {b["entityId"] for b in bodies} == {"7"}
    for body in bodies:
        request_validator(WEBHOOKS, "/CustomerEvents/CustomerAccountCreated", "post")(body)


def test_retries_until_200_with_fresh_signatures(kibo: RunningServer, receiver: Receiver) -> None:
    receiver.script = [500, 503]
    made = send(kibo, {"topic": "cart.updated", "entityId": "abc", "siteId": MAIN})
    record = delivery(kibo, made[0]["id"])
    assert [a["status"] for a in record["attempts"]] == [500, 503, 200]
    assert record["status"] == "delivered"
    got = receiver.events()
    assert len(got) == 3 and all(g["valid"] for g in got)
    assert len({g["raw"] for g in got}) == 1  # same body (same eventId) each time


def test_gives_up_after_max_attempts(kibo: RunningServer, receiver: Receiver) -> None:
    receiver.script = [401] * 10
    made = send(kibo, {"topic": "cart.created", "entityId": "x1", "siteId": OUTLET})
    record = delivery(kibo, made[0]["id"])
    assert record["status"] == "failed" and len(record["attempts"]) == 6
    receiver.script = []


def test_replay_sends_an_exact_duplicate(kibo: RunningServer, receiver: Receiver) -> None:
    made = send(kibo, {"topic": "order.opened", "entityId": "o1", "siteId": MAIN})
    resp = requests.post(
        f"{kibo.url}/_sandbox/deliveries/{made[0]['id']}/replay", json={"keepDate": True}, timeout=5
    )
    assert resp.status_code == 202 and resp.json()["replayOf"] == made[0]["id"]
    wait_idle(kibo)
    first, second = receiver.events()
    assert first["raw"] == second["raw"] and second["valid"]
    assert first["headers"]["Date"] == second["headers"]["Date"]
    missing = requests.post(f"{kibo.url}/_sandbox/deliveries/99999/replay", json={}, timeout=5)
    assert missing.status_code == 404


def test_stale_date_and_bad_signature(kibo: RunningServer, receiver: Receiver) -> None:
    send(
        kibo,
        {
            "events": [
                {
                    "topic": "order.updated",
                    "entityId": "s1",
                    "siteId": MAIN,
                    "staleDateSeconds": 600,
                },
                {"topic": "order.updated", "entityId": "b1", "siteId": MAIN, "badSignature": True},
            ]
        },
    )
    stale, bad = receiver.events()
    assert not stale["valid"] and not bad["valid"]
    # the stale one is correctly signed, only too old; the bad one is signed wrongly
    h = stale["headers"]
    assert h["X-Vol-Hmac-Sha256"] == kibo_hash(DEMO_SHARED_SECRET, h["Date"], stale["raw"])
    assert time.time() - parsedate_to_datetime(h["Date"]).timestamp() > 590
    b = bad["headers"]
    assert b["X-Vol-Hmac-Sha256"] != kibo_hash(DEMO_SHARED_SECRET, b["Date"], bad["raw"])


def test_events_arrive_in_the_order_given(kibo: RunningServer, receiver: Receiver) -> None:
    send(
        kibo,
        {
            "events": [
                {"topic": "customeraccount.updated", "entityId": "9", "siteId": MAIN},
                {"topic": "customeraccount.created", "entityId": "9", "siteId": MAIN},
                {"topic": "application.installed", "entityId": "app", "siteId": MAIN},
            ]
        },
    )
    topics = [json.loads(g["raw"])["topic"] for g in receiver.events()]
    assert topics == ["customeraccount.updated", "customeraccount.created", "application.installed"]


def test_extended_properties_and_validation(kibo: RunningServer, receiver: Receiver) -> None:
    send(
        kibo,
        {
            "topic": "customersegment.customeradded",
            "entityId": "12",
            "siteId": MAIN,
            "extendedProperties": [{"key": "customerAccountId", "value": "9"}],
        },
    )
    body = json.loads(receiver.events()[0]["raw"])
    assert body["extendedProperties"] == [{"key": "customerAccountId", "value": "9"}]
    bad = requests.post(f"{kibo.url}/_sandbox/events", json={"topic": "x"}, timeout=5)
    assert bad.status_code == 400


def test_put_and_shopper_opt_in_emit_customeraccount_updated(
    kibo: RunningServer, receiver: Receiver
) -> None:
    headers = token_headers(kibo)
    url = f"{kibo.url}/api/commerce/customer/accounts/11"
    account = requests.get(url, headers=headers, timeout=5).json()
    assert requests.put(url, json=account, headers=headers, timeout=5).status_code == 200
    resp = requests.post(
        f"{kibo.url}/_sandbox/customers/11", json={"acceptsMarketing": True}, timeout=5
    )
    assert resp.status_code == 200 and len(resp.json()["deliveries"]) == 2
    wait_idle(kibo)
    got = [json.loads(g["raw"]) for g in receiver.events()]
    assert [(b["topic"], b["entityId"]) for b in got] == [("customeraccount.updated", "11")] * 4
    assert requests.get(url, headers=headers, timeout=5).json()["acceptsMarketing"] is True
    signup = requests.post(
        f"{kibo.url}/_sandbox/customers",
        json={"emailAddress": "new.shopper@example.com", "acceptsMarketing": True},
        timeout=5,
    )
    assert signup.status_code == 201
    new_id = signup.json()["account"]["id"]
    wait_idle(kibo)
    created = [json.loads(g["raw"]) for g in receiver.events()][4:]
    assert {(b["topic"], b["entityId"]) for b in created} == {
        ("customeraccount.created", str(new_id))
    }


def test_no_endpoint_means_no_events(kibo: RunningServer) -> None:
    before = len(requests.get(f"{kibo.url}/_sandbox/deliveries", timeout=5).json()["deliveries"])
    resp = requests.post(
        f"{kibo.url}/_sandbox/customers/12", json={"acceptsMarketing": False}, timeout=5
    )
    assert resp.json()["deliveries"] == []
    refused = requests.post(
        f"{kibo.url}/_sandbox/events", json={"topic": "order.opened", "entityId": "1"}, timeout=5
    )
    assert refused.status_code == 409
    after = requests.get(f"{kibo.url}/_sandbox/deliveries", timeout=5).json()["deliveries"]
    assert len(after) == before


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a["action"]
        if tag == "input":
            self.fields[a["name"]] = a["value"]


def test_launch_page_posts_a_form_the_config_url_accepts(
    kibo: RunningServer, receiver: Receiver
) -> None:
    config_url = f"{receiver.url}/kibo/config"
    page = requests.get(f"{kibo.url}/_sandbox/launch", params={"url": config_url}, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    form = _FormParser()
    form.feed(page.text)
    assert form.action.startswith(config_url + "?")
    query = parse_qs(urlsplit(form.action).query)
    assert query["tenantId"] == [str(TENANT)] and query["messageHash"] and query["dt"]
    assert form.fields["x-vol-tenant-domain"] == f"127.0.0.1:{kibo.port}"
    posted = requests.post(form.action, data=form.fields, timeout=5)  # what the browser does
    assert posted.status_code == 200
    tampered = requests.post(
        form.action, data={**form.fields, "x-vol-tenant-domain": "t1.x"}, timeout=5
    )
    assert tampered.status_code == 401
    kibo_like = requests.get(
        f"{kibo.url}/_sandbox/launch",
        params={"url": config_url, "tenantDomain": "t12345.sandbox.mozu.com", "format": "json"},
        timeout=5,
    ).json()
    assert "t12345." in kibo_like["form"]["x-vol-return-url"]
    assert requests.post(kibo_like["url"], data=kibo_like["form"], timeout=5).status_code == 200
    assert requests.get(f"{kibo.url}/_sandbox/launch", timeout=5).status_code == 400
