"""The import emails as the merchant receives them from a real SMTP server on loopback."""

from __future__ import annotations

import logging
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Merchant, StoreConnection, SyncRun
from cc_storeplugin.notify.imports import human_duration, send_import_completed, send_import_failed
from tests.notify import SmtpSink, body_html, body_text

LISTS = [
    ("all", "Magento – All Customers", 19_874, 19_748),
    ("first_time", "Magento – First-time Customers", 8_210, 8_150),
    ("repeat", "Magento – Repeat Customers", 6_035, 6_035),
    ("recent", "Magento – Recent Customers", 2_412, 2_412),
    ("lapsed", "Magento – Lapsed Customers", 5_300, 5_301),
]
TOTALS = {
    "customers_in_store": 18_002,
    "orders_in_store": 61_457,
    "contacts": 19_874,
    "lists": [
        {"key": k, "name": n, "cc_list_id": f"cc-{k}", "members_in_store": s, "members_in_cc": c}
        for k, n, s, c in LISTS
    ],
    "skipped": {"invalid_email": 101, "unsubscribed": 25, "cc_rejected": 0},
    "api_calls": {"store": 1_412, "constantcontact": 37},
    "duration_s": 252.4,
}
BASE = "http://127.0.0.1:5000"


@pytest.fixture
def smtp(app):
    sink = SmtpSink().start()
    app.config["SMTP_URL"] = sink.url
    yield sink
    sink.stop()


def make_run(platform="magento", email="owner@shop.example", **run_fields) -> SyncRun:
    merchant = Merchant(cc_account_id=f"acc-{platform}-{email}", name="Shop Owner", email=email)
    connection = StoreConnection(
        merchant=merchant,
        platform=platform,
        status="active",
        store_base_url="https://shop.example/",
    )
    fields = {"kind": "import", "status": "COMPLETE", "totals": TOTALS} | run_fields
    run = SyncRun(connection=connection, **fields)
    db.session.add(run)
    db.session.commit()
    return run


def line_for(text: str, name: str) -> str:
    [line] = [ln for ln in text.splitlines() if ln.startswith(name)]
    return line


def test_completed_email_reports_the_store_figures(app, smtp):
    run = make_run()

    message_id = send_import_completed(run.id)

    [envelope] = smtp.envelopes
    assert envelope.rcpt_tos == ["owner@shop.example"]
    [msg] = smtp.messages()
    assert msg["Message-ID"] == message_id
    assert msg["To"] == "owner@shop.example"
    assert msg["Subject"] == "Your Magento import is complete: 19,874 contacts in 5 lists"
    text, html = body_text(msg), body_html(msg)

    for _, name, in_store, in_cc in LISTS:
        row = line_for(text, name)
        assert f"{in_store:,}" in row and f"{in_cc:,}" in row
        assert name in html and f"{in_store:,}" in html and f"{in_cc:,}" in html
    # 126 missing from the list = 101 invalid + 25 unsubscribed: flagged with that reason
    all_row = line_for(text, "Magento – All Customers")
    assert "126 not in Constant Contact" in all_row
    assert "invalid email address" in all_row and "unsubscribed" in all_row
    assert "60 not in Constant Contact" in line_for(text, "Magento – First-time Customers")
    assert "!" not in line_for(text, "Magento – Repeat Customers")
    assert "1 more in Constant Contact" in line_for(text, "Magento – Lapsed Customers")
    assert "126 not in Constant Contact" in html and "&#9888;" in html

    assert "126 contacts skipped:" in text
    assert "invalid email address: 101" in text
    assert "unsubscribed: 25 (we never re-add them)" in text
    assert "rejected by Constant Contact" not in text  # zero counts are left out
    assert "Customers in the store: 18,002" in text
    assert "Orders in the store: 61,457" in text
    assert "Duration: 4 min 12 s" in text
    assert "API calls used: 1,412 to Magento, 37 to Constant Contact" in text
    errors_url = f"{BASE}/connections/{run.connection_id}/errors"
    assert errors_url in text
    assert f'href="{errors_url}"' in html
    assert "4 min 12 s" in html and "1,412 to Magento" in html and "101" in html


def test_difference_not_explained_by_skips_points_to_the_error_list(app, smtp):
    totals = TOTALS | {"skipped": {"invalid_email": 3}}
    run = make_run(totals=totals)
    send_import_completed(run.id)
    text = body_text(smtp.messages()[0])
    row = line_for(text, "Magento – All Customers")
    assert "126 not in Constant Contact; see the error list" in row
    assert "3 contacts skipped:" in text


def test_kibo_connection_is_named_kibo(app, smtp):
    totals = {
        "contacts": 1,
        "lists": [
            {
                "key": "all",
                "name": "Kibo – All Customers",
                "cc_list_id": "x",
                "members_in_store": 1,
                "members_in_cc": 1,
            }
        ],
        "skipped": {},
        "api_calls": {"store": 3, "constantcontact": 4},
        "duration_s": 0.4,
    }
    run = make_run(platform="kibo", totals=totals)
    send_import_completed(run.id)
    [msg] = smtp.messages()
    assert msg["Subject"] == "Your Kibo import is complete: 1 contact in 1 list"
    text = body_text(msg)
    assert "No contacts were skipped." in text
    assert "API calls used: 3 to Kibo, 4 to Constant Contact" in text
    assert "Duration: < 1 s" in text


def test_merchant_without_email_is_skipped_with_a_log_line(app, smtp, caplog):
    caplog.set_level(logging.INFO, logger="cc_storeplugin.notify")
    run = make_run(email=None)
    assert send_import_completed(run.id) == ""
    assert send_import_failed(run.id) == ""
    assert smtp.envelopes == []
    assert f"import email for run {run.id} not sent" in caplog.text


def test_unknown_run_is_an_error(app, smtp):
    with pytest.raises(LookupError, match="run_id"):
        send_import_completed(4242)


def test_failed_email_gives_reason_progress_and_retry_link(app, smtp):
    reason = "Magento answered 401 Unauthorized: the integration was deactivated"
    run = make_run(
        status="FAILED",
        error_message=reason,
        phase="customers",
        progress_done=12_000,
        progress_total=20_000,
        totals={},
    )

    send_import_failed(run.id)

    [msg] = smtp.messages()
    assert msg["To"] == "owner@shop.example"
    assert msg["Subject"] == "Your Magento import stopped"
    text, html = body_text(msg), body_html(msg)
    assert f"Reason: {reason}" in text
    assert "Done so far: 12,000 of 20,000 (60%), in the customers step" in text
    assert "click Retry on the connection page" in text
    assert "We will retry" not in text
    conn_url = f"{BASE}/connections/{run.connection_id}"
    assert conn_url in text.splitlines()
    assert f"{conn_url}/errors" in text
    assert f'href="{conn_url}"' in html and f'href="{conn_url}/errors"' in html
    assert reason in html


def test_failed_email_when_a_retry_is_scheduled(app, smtp):
    run = make_run(status="FAILED", error_message="Constant Contact is down (503)", totals={})
    send_import_failed(run.id, will_retry=True)
    text = body_text(smtp.messages()[0])
    assert "We will retry automatically" in text
    assert "Retry on the connection page" not in text
    assert "Reason: Constant Contact is down (503)" in text
    assert f"{BASE}/connections/{run.connection_id}/errors" in text


def test_completed_email_lands_in_the_outbox_without_smtp(app, tmp_path):
    app.config.update(SMTP_URL=None, INSTANCE_DIR=str(tmp_path))
    run = make_run()
    path = Path(send_import_completed(run.id))
    assert path.parent == tmp_path / "outbox"
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "Your Magento import is complete: 19,874 contacts in 5 lists"
    assert "19,748" in body_text(msg)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "< 1 s"), (42, "42 s"), (60, "1 min"), (252.4, "4 min 12 s"), (3725, "1 h 2 min 5 s")],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text
