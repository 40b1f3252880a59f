"""send_mail over a real SMTP server on loopback, and into the outbox when SMTP_URL is unset."""

from __future__ import annotations

import logging
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from cc_storeplugin.notify import mailer
from cc_storeplugin.notify.mailer import MailError, send_mail
from tests.notify import SmtpSink, body_html, body_text, free_port


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def sleeps(monkeypatch):
    """Record the retry backoff instead of waiting it out."""
    waited: list[float] = []
    monkeypatch.setattr(mailer.time, "sleep", waited.append)
    return waited


def test_smtp_delivers_text_and_html_with_headers(app, smtp):
    app.config.update(SMTP_URL=smtp.url, MAIL_FROM="Store Sync <sync@plugin.example>")

    message_id = send_mail("owner@shop.example", "Import done", "12,345 contacts", "<b>12,345</b>")

    [envelope] = smtp.envelopes
    assert envelope.mail_from == "sync@plugin.example"
    assert envelope.rcpt_tos == ["owner@shop.example"]
    [msg] = smtp.messages()
    assert msg["To"] == "owner@shop.example"
    assert msg["From"] == "Store Sync <sync@plugin.example>"
    assert msg["Subject"] == "Import done"
    assert msg["Message-ID"] == message_id
    assert re.fullmatch(r"<.+@plugin\.example>", message_id)
    assert msg["Date"].datetime.utcoffset().total_seconds() == 0
    assert body_text(msg).strip() == "12,345 contacts"
    assert "<b>12,345</b>" in body_html(msg)


def test_default_sender(app, smtp):
    app.config.update(SMTP_URL=smtp.url)
    app.config.pop("MAIL_FROM", None)
    send_mail("owner@shop.example", "Hi", "text")
    [msg] = smtp.messages()
    assert msg["From"] == "Constant Contact Store Sync <no-reply@localhost>"
    assert msg.get_content_type() == "text/plain"  # no HTML part when none is given


def test_login_with_percent_encoded_password_never_logged(app, caplog, sleeps):
    sink = SmtpSink(login=("mailer", "s3cr@t!")).start()
    try:
        caplog.set_level(logging.DEBUG)
        app.config["SMTP_URL"] = f"smtp://mailer:s3cr%40t%21@127.0.0.1:{sink.port}"
        send_mail("owner@shop.example", "Hi", "text")
        assert sink.logins == [("mailer", "s3cr@t!")]
        assert len(sink.envelopes) == 1

        app.config["SMTP_URL"] = f"smtp://mailer:wrong-pw@127.0.0.1:{sink.port}"
        with pytest.raises(MailError, match="refused the login for user 'mailer'") as err:
            send_mail("owner@shop.example", "Hi", "text")
        assert "wrong-pw" not in str(err.value)
        assert sleeps == []  # a refused login is not retried
    finally:
        sink.stop()
    assert "s3cr" not in caplog.text and "wrong-pw" not in caplog.text


def test_connection_refused_is_retried_then_fails_clearly(app, sleeps, caplog):
    port = free_port()
    app.config["SMTP_URL"] = f"smtp://mailer:hunter2@127.0.0.1:{port}"

    with pytest.raises(MailError) as err:
        send_mail("owner@shop.example", "Hi", "text")

    message = str(err.value)
    assert f"127.0.0.1:{port}" in message
    assert "after 3 attempts" in message
    assert "refused" in message.lower()
    assert "hunter2" not in message and "hunter2" not in caplog.text
    assert sleeps == [1.0, 2.0]  # 3 attempts with exponential backoff


def test_retry_reaches_a_server_that_comes_up(app, monkeypatch):
    sink = SmtpSink()  # not started: the first attempt is refused
    app.config["SMTP_URL"] = sink.url
    waited: list[float] = []

    def start_server_then_wait(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 1:
            sink.start()

    monkeypatch.setattr(mailer.time, "sleep", start_server_then_wait)
    try:
        send_mail("owner@shop.example", "Hi", "text")
    finally:
        sink.stop()
    assert waited == [1.0]
    assert [m["Subject"] for m in sink.messages()] == ["Hi"]


def test_permanent_rejection_is_not_retried(app, sleeps):
    sink = SmtpSink(reject_rcpt="550 5.1.1 No such mailbox").start()
    app.config["SMTP_URL"] = sink.url
    try:
        with pytest.raises(MailError, match="550") as err:
            send_mail("owner@shop.example", "Hi", "text")
    finally:
        sink.stop()
    assert "owner@shop.example" in str(err.value)
    assert sleeps == []
    assert sink.envelopes == []


def test_outbox_mode_writes_parseable_eml(app, tmp_path):
    app.config.update(SMTP_URL=None, INSTANCE_DIR=str(tmp_path / "inst"))

    path = Path(send_mail("owner@shop.example", "Import done: 12 lists!", "plain", "<p>rich</p>"))

    assert path.parent == tmp_path / "inst" / "outbox"
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-import-done-12-lists\.eml", path.name)
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert msg["To"] == "owner@shop.example"
    assert msg["Subject"] == "Import done: 12 lists!"
    assert msg["Message-ID"] and msg["Date"]
    assert body_text(msg).strip() == "plain"
    assert "<p>rich</p>" in body_html(msg)


def test_outbox_names_do_not_collide(app, tmp_path):
    app.config.update(SMTP_URL=None, INSTANCE_DIR=str(tmp_path))
    paths = {send_mail("owner@shop.example", "Same", "text") for _ in range(3)}
    assert len(paths) == 3
    assert len(list((tmp_path / "outbox").glob("*-same*.eml"))) == 3


@pytest.mark.parametrize(
    "to", ["not-an-email", "", "owner@", "owner@shop.example\nBcc: spy@evil.example"]
)
def test_bad_recipient_raises_value_error_naming_the_field(app, tmp_path, to):
    app.config.update(SMTP_URL=None, INSTANCE_DIR=str(tmp_path))
    with pytest.raises(ValueError, match=r"^to: not a valid email address"):
        send_mail(to, "Hi", "text")
    assert not (tmp_path / "outbox").exists()


def test_subject_must_be_one_line(app, tmp_path):
    app.config.update(SMTP_URL=None, INSTANCE_DIR=str(tmp_path))
    with pytest.raises(ValueError, match=r"^subject:"):
        send_mail("owner@shop.example", "Hi\nBcc: spy@evil.example", "text")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example:2525", ("smtp", "mail.example", 2525, None, None)),
        (
            "smtp+starttls://u%40x:p%3Aw@mail.example",
            ("smtp+starttls", "mail.example", 587, "u@x", "p:w"),
        ),
        ("smtps://mail.example", ("smtps", "mail.example", 465, None, None)),
    ],
)
def test_parse_smtp_url(url, expected):
    t = mailer.parse_smtp_url(url)
    assert (t.scheme, t.host, t.port, t.username, t.password) == expected
    assert "p:w" not in repr(t) and "p%3Aw" not in str(t)


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "smtp://h:notaport"])
def test_bad_smtp_url_names_the_setting(url):
    with pytest.raises(ValueError, match=r"^SMTP_URL:"):
        mailer.parse_smtp_url(url)
