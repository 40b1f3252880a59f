"""The Kibo configuration page: Kibo Admin's signed launch, CC sign-in, and the five tabs.

Launch checks run on the Flask test client; the rest runs over loopback HTTP against the
Kibo sandbox (its launch form and home pod), the CC sandbox (sign-in, lists, addresses) and
the plugin with its embedded worker.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from urllib.parse import quote_plus, urljoin

import pytest
import requests
from sqlalchemy import select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    ConsentEvent,
    Merchant,
    StoreConnection,
    StoreEvent,
    SyncError,
    SyncRun,
    utcnow,
)
from cc_storeplugin.sandbox.kibo import DEFAULT_APPLICATION_ID, DEMO_SHARED_SECRET
from cc_storeplugin.sandbox.kibo import create_app as kibo_app
from cc_storeplugin.sandbox.kibo.launcher import launch_request
from cc_storeplugin.sandbox.kibo.signing import parse_kibo_date
from cc_storeplugin.sandbox.server import serve_in_thread
from cc_storeplugin.sync import kibo_settings
from cc_storeplugin.web.kibo_config import verify_launch
from tests.conftest import dispose_engines, make_app
from tests.sync.conftest import build_stack, stop_stack, wait_for
from tests.web.conftest import make_merchant, sign_in

TENANT = 12345
KIBO_HOST = f"t{TENANT}.sandbox.mozu.com"
KIBO = {
    "KIBO_SHARED_SECRET": DEMO_SHARED_SECRET,
    "KIBO_APPLICATION_ID": DEFAULT_APPLICATION_ID,
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# --- the signed launch, on the Flask test client -------------------------------------------
@pytest.fixture
def plugin(sqlite_url):
    app = make_app(sqlite_url, **KIBO)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        dispose_engines()


def _launch(client, tenant_id=TENANT, domain=KIBO_HOST, secret=DEMO_SHARED_SECRET, **kw):
    req = launch_request(
        "http://localhost/kibo/config", secret, TENANT, domain, 23456, DEFAULT_APPLICATION_ID, **kw
    )
    url = req.url.replace(f"tenantId={TENANT}", f"tenantId={tenant_id}")
    return client.post(url, data=req.form, follow_redirects=True)


def test_spec_test_vector_1_verifies_and_goes_stale_after_180_seconds(plugin):
    plugin.config["KIBO_SHARED_SECRET"] = "b2dc973d5dec4bd6aa325fa906a64aee"
    dt = "Mon, 18 Aug 2014 21:07:21 GMT"
    body = (
        "x-vol-tenant-domain=t419.sandbox.mozu-qa.com&x-vol-return-url=https://t419.sandbox"
        ".mozu-qa.com/Admin/s-1223/capability/edit/7d7fadf25e9f454eb6cc87df888395ea/#configure"
    )
    sent = "&".join(f"{k}={quote_plus(v)}" for k, v in (p.split("=", 1) for p in body.split("&")))
    signature = "yJ+gMQm3FZzKfgySi+1jGYcUcSADVjr3x19BwKyFj9w="
    at = parse_kibo_date(dt).timestamp()
    assert verify_launch("419", signature, dt, sent.encode(), now=at + 179) is None
    assert "180 s" in verify_launch("419", signature, dt, sent.encode(), now=at + 181)
    assert "messageHash" in verify_launch("419", signature[:-2] + "A=", dt, sent.encode(), at)


def test_a_good_launch_shows_the_page_and_remembers_the_tenant(plugin):
    client = plugin.test_client()
    resp = _launch(client)
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Log in to Constant Contact" in page and KIBO_HOST in page
    with client.session_transaction() as sess:
        assert sess["kibo_tenant"]["id"] == str(TENANT)
        assert sess["kibo_tenant"]["domain"] == KIBO_HOST
    assert client.get("/kibo/config").status_code == 200  # the session's tenant, no re-launch


@pytest.mark.parametrize(
    ("case", "launch"),
    [
        ("bad hash", dict(secret="0" * 32)),
        ("stale dt", dict(dt="Mon, 18 Aug 2014 21:07:21 GMT")),
        ("other tenant", dict(tenant_id=999)),
        ("no tenant in body", dict(domain="")),
    ],
)
def test_a_bad_launch_is_refused_and_stores_nothing(plugin, case, launch):
    client = plugin.test_client()
    resp = _launch(client, **launch)
    assert resp.status_code == 401, case
    assert "Open this page from Kibo Admin" in resp.get_data(as_text=True)
    with client.session_transaction() as sess:
        assert "kibo_tenant" not in sess
    assert db.session.scalar(select(StoreConnection.id)) is None
    assert client.get("/kibo/config").status_code == 401


def test_the_page_without_a_launch_is_401(plugin):
    resp = plugin.test_client().get("/kibo/config")
    assert resp.status_code == 401
    assert "Open this page from Kibo Admin" in resp.get_data(as_text=True)


def test_a_tenant_linked_to_another_merchant_is_a_409(plugin):
    owner, other = make_merchant("acct-owner"), make_merchant("acct-other")
    db.session.add(StoreConnection(merchant_id=owner.id, platform="kibo", external_id=str(TENANT)))
    db.session.commit()
    client = plugin.test_client()
    sign_in(client, other)
    resp = _launch(client)
    assert resp.status_code == 409
    assert "already linked to another Constant Contact account" in resp.get_data(as_text=True)
    token = "test-csrf"
    for path in ("/kibo/config/settings", "/kibo/config/sync", "/kibo/config/enable"):
        assert client.post(path, data={"csrf_token": token}).status_code == 409, path
    assert client.post("/kibo/config/connect", data={"csrf_token": token}).status_code == 409
    conns = db.session.scalars(select(StoreConnection)).all()
    assert [(c.merchant_id, c.settings) for c in conns] == [(owner.id, {})]


def test_the_launch_needs_no_csrf_token_but_the_actions_do(plugin):
    client = plugin.test_client()
    assert _launch(client).status_code == 200
    resp = client.post("/kibo/config/enable", data={"enabled": "1"})
    assert resp.status_code == 400 and "csrf_token" in resp.get_data(as_text=True)


# --- the whole page over HTTP ------------------------------------------------------------
@pytest.fixture
def system(tmp_path, store_factory):
    store = store_factory(customers=40, seed=5)
    kibo = serve_in_thread(kibo_app(store=str(store), tenant_id=TENANT))
    stack = build_stack(tmp_path, store, KIBO_HOME_BASE_URL=kibo.url, **KIBO)
    stack.kibo = kibo
    yield stack
    kibo.app.extensions["kibo"].events.stop()
    kibo.stop()
    stop_stack(stack)


def kibo_launch(browser: requests.Session, stack) -> requests.Response:
    """What Kibo Admin does: its launch form POSTs the signed request to the ConfigUrl."""
    spec = requests.get(
        f"{stack.kibo.url}/_sandbox/launch",
        params={"url": f"{stack.plugin_url}/kibo/config", "format": "json"},
        timeout=30,
    ).json()
    return browser.post(spec["url"], data=spec["form"], timeout=30)


def cc_log_in(browser: requests.Session, stack) -> requests.Response:
    """Info tab → Log in to Constant Contact → Allow (the CC sandbox's consent page)."""
    resp = browser.get(f"{stack.plugin_url}/kibo/config/login", timeout=30)
    action = re.search(r'<form[^>]*action="([^"]*)"', resp.text)
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', resp.text))
    form = {k: unescape(v) for k, v in fields.items()} | {"decision": "allow"}
    return browser.post(urljoin(resp.url, unescape(action.group(1))), data=form, timeout=30)


def csrf(html: str) -> str:
    return CSRF.search(html).group(1)


@pytest.fixture
def linked(system):
    """A browser that opened the page from Kibo and logged in to CC: (session, page, conn id)."""
    browser = requests.Session()
    with system.app.app_context():  # an install that arrived before any account was linked
        db.session.add(
            StoreEvent(
                platform="kibo", event_id="install-1", tenant_id=str(TENANT),
                topic="application.installed", payload={"timestamp": "2026-11-30T10:00:00Z"},
            )
        )  # fmt: skip
        db.session.commit()
    page = kibo_launch(browser, system)
    assert page.status_code == 200 and 'id="cc-login"' in page.text
    page = cc_log_in(browser, system)
    assert page.status_code == 200 and page.url.startswith(f"{system.plugin_url}/kibo/config")
    with system.app.app_context():
        conn = db.session.scalars(select(StoreConnection)).one()
        return browser, page, conn.id


def test_cc_sign_in_from_the_info_tab_links_the_tenant_once(system, linked):
    browser, page, connection_id = linked
    assert 'id="connected"' in page.text
    with system.app.app_context():
        conn = db.session.get(StoreConnection, connection_id)
        assert (conn.platform, conn.external_id) == ("kibo", str(TENANT))
        assert conn.settings["tenant_host"] == f"127.0.0.1:{system.kibo.port}"
        assert conn.settings["installed"] is True  # the early install event was claimed
        event = db.session.scalars(select(StoreEvent)).one()
        assert (event.connection_id, event.status) == (conn.id, "applied")
        assert db.session.get(Merchant, conn.merchant_id).cc_account_id
    # Opened again from Kibo: the same connection, not a second one.
    assert kibo_launch(browser, system).status_code == 200
    with system.app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(StoreConnection)) == 1


def _settings(browser, stack, page_html, **fields):
    form = {
        "csrf_token": csrf(page_html),
        "list_name": "Kibo Shoppers",
        "from_email": "owner@sandbox-outfitters.example",
        "reply_to_email": "news@sandbox-outfitters.example",
        **fields,
    }
    form = {k: v for k, v in form.items() if v is not None}
    return browser.post(f"{stack.plugin_url}/kibo/config/settings", data=form, timeout=30)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("list_name", None),
        ("list_name", "   "),
        ("from_email", "pending@sandbox-outfitters.example"),  # not confirmed
        ("reply_to_email", "not-an-email"),
    ],
)
def test_settings_with_bad_input_are_400_naming_the_field_and_change_nothing(
    system, linked, field, value
):
    browser, page, connection_id = linked
    resp = _settings(browser, system, page.text, **{field: value})
    assert resp.status_code == 400
    assert f'data-field="{field}"' in resp.text
    with system.app.app_context():
        conn = db.session.get(StoreConnection, connection_id)
        assert kibo_settings.load(conn) == kibo_settings.KiboSettings()


def test_settings_json_errors_name_the_field(system, linked):
    browser, page, _ = linked
    resp = browser.post(
        f"{system.plugin_url}/kibo/config/settings",
        json={"list_name": "X", "from_email": "nope", "reply_to_email": "nope"},
        headers={"X-CSRF-Token": csrf(page.text)},
        timeout=30,
    )
    assert resp.status_code == 400
    assert resp.json()["error"] and set(resp.json()["fields"]) == {"from_email", "reply_to_email"}


def test_save_creates_the_list_and_the_type_ahead_finds_it(system, linked):
    browser, page, connection_id = linked
    assert 'id="sync-contacts" disabled' in page.text  # nothing to sync into yet
    resp = _settings(browser, system, page.text, welcome_email="on")
    assert resp.status_code == 200 and 'id="saved"' in resp.text
    with system.app.app_context():
        saved = kibo_settings.load(db.session.get(StoreConnection, connection_id))
    assert saved.list_name == "Kibo Shoppers" and saved.list_id and saved.welcome_email
    assert (saved.from_email, saved.reply_to_email) == (
        "owner@sandbox-outfitters.example",
        "news@sandbox-outfitters.example",
    )
    members = requests.get(f"{system.cc.url}/_sandbox/lists/{saved.list_id}/emails", timeout=30)
    assert members.json()["name"] == "Kibo Shoppers"  # created in CC, empty
    found = browser.get(f"{system.plugin_url}/kibo/config/lists", params={"q": "shop"}).json()
    assert {"list_id": saved.list_id, "name": "Kibo Shoppers"} in found["lists"]
    assert browser.get(f"{system.plugin_url}/kibo/config/lists", params={"q": "zzz"}).json() == {
        "lists": []
    }
    # Choosing the existing list again reuses it (no duplicate list).
    again = _settings(browser, system, resp.text, welcome_email=None)
    assert again.status_code == 200
    with system.app.app_context():
        now = kibo_settings.load(db.session.get(StoreConnection, connection_id))
    assert now.list_id == saved.list_id and now.welcome_email is False
    page = browser.get(f"{system.plugin_url}/kibo/config?tab=settings", timeout=30).text
    assert 'value="Kibo Shoppers"' in page
    assert '<option value="news@sandbox-outfitters.example" selected>' in page
    assert "pending@sandbox-outfitters.example" not in page  # only confirmed addresses


def test_enable_needs_a_list_then_turns_processing_on_and_off(system, linked):
    browser, page, connection_id = linked
    url = f"{system.plugin_url}/kibo/config/enable"
    refused = browser.post(url, data={"csrf_token": csrf(page.text), "enabled": "1"})
    assert refused.status_code == 400
    assert "Save a Contact List Name before enabling" in refused.text
    page = _settings(browser, system, page.text)
    on = browser.post(url, data={"csrf_token": csrf(page.text), "enabled": "1"})
    assert on.status_code == 200 and 'id="app-state" class="on">Enabled' in on.text
    with system.app.app_context():
        assert kibo_settings.is_enabled(db.session.get(StoreConnection, connection_id))
    off = browser.post(url, data={"csrf_token": csrf(on.text), "enabled": "0"})
    assert 'id="app-state" class="off">Disabled' in off.text
    with system.app.app_context():
        assert not kibo_settings.is_enabled(db.session.get(StoreConnection, connection_id))


def test_sync_contacts_starts_one_import_shown_in_sync_logs(system, linked):
    browser, page, connection_id = linked
    refused = browser.post(
        f"{system.plugin_url}/kibo/config/sync", data={"csrf_token": csrf(page.text)}
    )
    assert refused.status_code == 400
    with system.app.app_context():
        assert db.session.scalar(select(SyncRun.id)) is None
    page = _settings(browser, system, page.text)
    resp = browser.post(
        f"{system.plugin_url}/kibo/config/sync", data={"csrf_token": csrf(page.text)}
    )
    assert resp.status_code == 200 and "tab=logs" in resp.url
    assert re.search(r'class="run-status status-\w+"[^>]*>(RUNNING|COMPLETE)<', resp.text)

    def done():
        return db.session.scalars(
            select(SyncRun).where(SyncRun.status.in_(("COMPLETE", "FAILED")))
        ).first()

    run = wait_for(system.app, done, timeout=120)
    assert run.status == "COMPLETE" and run.kind == "import"
    logs = browser.get(f"{system.plugin_url}/kibo/config?tab=logs", timeout=30).text
    row = re.search(rf'<tr data-run="{run.id}">(.*?)</tr>', logs, re.S).group(1)
    assert ">COMPLETE<" in row
    total = int(re.search(r'class="total">(\d+)<', row).group(1))
    assert total == run.totals["contacts_sent"] > 0
    with system.app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(SyncRun)) == 1


def test_each_tab_shows_the_tenants_rows_only(system, linked):
    browser, _, connection_id = linked
    with system.app.app_context():
        other_merchant = make_merchant("acct-elsewhere")
        other = StoreConnection(merchant_id=other_merchant.id, platform="kibo", external_id="777")
        db.session.add(other)
        db.session.flush()
        now = utcnow()
        events_run = SyncRun(
            connection_id=connection_id, kind="events", status="FAILED",
            totals={"exported": 3}, started_at=now, error_message="CC was down",
        )  # fmt: skip
        poll = SyncRun(
            connection_id=connection_id, kind="unsubscribes", status="COMPLETE", started_at=now,
            totals={"captured": 2, "updated_in_kibo": 1, "not_found": 1, "errors": 0},
        )  # fmt: skip
        foreign = SyncRun(connection_id=other.id, kind="events", status="COMPLETE")
        db.session.add_all([events_run, poll, foreign])
        db.session.flush()
        db.session.add_all(
            [
                SyncError(
                    run_id=events_run.id, connection_id=connection_id, record_type="contact",
                    record_ref="bad@@example", reason="invalid_email",
                    message="bad@@example is not a valid email address",
                ),
                *[
                    ConsentEvent(
                        connection_id=connection_id, email=email, action="unsubscribed",
                        source="constantcontact", occurred_at=now, sync_run_id=poll.id,
                    )
                    for email in ("gone@example.com", "left@example.com")
                ],
                StoreEvent(
                    platform="kibo", event_id="ev-mine", connection_id=connection_id,
                    tenant_id=str(TENANT), topic="customeraccount.updated", entity_id="1042",
                    payload={}, received_at=now - timedelta(minutes=3),
                ),
                StoreEvent(
                    platform="kibo", event_id="ev-other", connection_id=other.id,
                    tenant_id="777", topic="customeraccount.created", entity_id="9999", payload={},
                ),
            ]
        )  # fmt: skip
        db.session.commit()
        ids = {"events": events_run.id, "poll": poll.id, "foreign": foreign.id}
        next_run = kibo_settings.next_run_at(connection_id, "events", now)

    base = f"{system.plugin_url}/kibo/config"
    logs = browser.get(f"{base}?tab=logs").text
    row = re.search(rf'<tr data-run="{ids["events"]}">(.*?)</tr>', logs, re.S).group(1)
    assert ">FAILED<" in row and 'class="total">3<' in row
    assert f'data-run="{ids["foreign"]}"' not in logs
    errors_url = re.search(r'class="errors"><a href="([^"]+)">1</a>', row).group(1)
    errors = browser.get(urljoin(base, errors_url)).text
    assert "bad@@example is not a valid email address" in errors and "CC was down" in errors

    sync = browser.get(f"{base}?tab=sync").text
    poll_row = re.search(rf'<tr data-run="{ids["poll"]}">(.*?)</tr>', sync, re.S).group(1)
    assert 'class="captured">2<' in poll_row
    view = browser.get(urljoin(base, re.search(r'href="([^"]+)">View', poll_row).group(1))).text
    assert "gone@example.com" in view and "left@example.com" in view
    assert "updated in Kibo 1" in view and "not found in Kibo 1" in view

    events = browser.get(f"{base}?tab=events").text
    assert 'data-event="ev-mine"' in events and 'class="object-id">1042<' in events
    assert "ev-other" not in events and "9999" not in events
    assert next_run.strftime("%Y-%m-%d %H:%M") in events

    # Another tenant's runs cannot be opened from this tenant's page.
    assert browser.get(f"{base}/runs/{ids['foreign']}/errors").status_code == 404
    assert browser.get(f"{base}/unsubscribes/{ids['events']}").status_code == 404
