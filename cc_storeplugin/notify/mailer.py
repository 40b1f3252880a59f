"""Send one system email: through SMTP when ``SMTP_URL`` is set, else as a .eml file in the outbox.

``SMTP_URL`` forms: ``smtp://host:port`` (plain, port 25), ``smtp://user:pass@host:port``,
``smtp+starttls://…`` (STARTTLS, port 587) and ``smtps://…`` (implicit TLS, port 465).
Without it, messages land in ``<INSTANCE_DIR>/outbox/<UTC timestamp>-<subject slug>.eml``.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

from email_validator import EmailNotValidError, validate_email
from flask import current_app

log = logging.getLogger(__name__)

DEFAULT_FROM = "Constant Contact Store Sync <no-reply@localhost>"
TIMEOUT_S = 10
ATTEMPTS = 3
BACKOFF_S = 1.0  # doubled after each failed attempt
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class MailError(RuntimeError):
    """The message could not be delivered to the SMTP server; the text says where and why."""


@dataclass(frozen=True)
class SmtpTarget:
    """A parsed ``SMTP_URL``; ``repr`` and ``str`` never show the password."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"

    __repr__ = __str__


def parse_smtp_url(url: str) -> SmtpTarget:
    """Split ``SMTP_URL`` into scheme, host, port and credentials (percent-decoded)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"SMTP_URL: unsupported scheme {parts.scheme!r}; use smtp://, smtp+starttls:// "
            "or smtps://"
        )
    if not parts.hostname:
        raise ValueError("SMTP_URL: no host (expected e.g. smtp://mail.example.com:587)")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"SMTP_URL: bad port ({exc})") from None
    return SmtpTarget(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def send_mail(to: str, subject: str, text: str, html: str | None = None) -> str:
    """Send a text (+ optional HTML) email; returns the Message-ID (SMTP) or the .eml path."""
    msg = build_message(to, subject, text, html)
    url = current_app.config.get("SMTP_URL")
    if url:
        _send_smtp(parse_smtp_url(url), msg)
        log.info("sent %r to %s (%s)", subject, msg["To"], msg["Message-ID"])
        return str(msg["Message-ID"])
    path = _write_outbox(msg)
    log.info("wrote %r for %s to %s", subject, msg["To"], path)
    return str(path)


def build_message(to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
    """The EmailMessage with From, To, Subject, Date and Message-ID; bad fields raise ValueError."""
    sender = current_app.config.get("MAIL_FROM") or DEFAULT_FROM
    _check_address("to", to)
    _check_address("MAIL_FROM", sender, check_syntax=False)
    if not subject or not subject.strip() or "\r" in subject or "\n" in subject:
        raise ValueError(f"subject: must be one non-empty line, got {subject!r}")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def _check_address(field: str, value: str, check_syntax: bool = True) -> None:
    if not isinstance(value, str) or not value.strip() or "\r" in value or "\n" in value:
        raise ValueError(f"{field}: not a valid email address: {value!r}")
    address = parseaddr(value)[1]
    if not address or "@" not in address:
        raise ValueError(f"{field}: not a valid email address: {value!r}")
    if check_syntax:
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ValueError(f"{field}: not a valid email address: {value!r} ({exc})") from None


def _send_smtp(target: SmtpTarget, msg: EmailMessage) -> None:
    """Deliver with retries and backoff on connection errors and 4xx replies; 5xx fail at once."""
    delay = BACKOFF_S
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _deliver_once(target, msg)
            return
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(
                f"SMTP server {target.host}:{target.port} refused the login for user "
                f"{target.username!r}: {exc.smtp_code} {_reply(exc)}"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise MailError(
                f"SMTP server {target.host}:{target.port} has an untrusted certificate: {exc}"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            detail = "; ".join(
                f"{rcpt}: {code} {_text(r)}" for rcpt, (code, r) in exc.recipients.items()
            )
            raise MailError(
                f"SMTP server {target.host}:{target.port} refused the recipient: {detail}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            if not 400 <= exc.smtp_code < 500 or attempt == ATTEMPTS:
                raise MailError(
                    f"SMTP server {target.host}:{target.port} rejected the message: "
                    f"{exc.smtp_code} {_reply(exc)}"
                ) from None
            problem = f"{exc.smtp_code} {_reply(exc)}"
        except (OSError, smtplib.SMTPException) as exc:
            if attempt == ATTEMPTS:
                raise MailError(
                    f"could not deliver to SMTP server {target.host}:{target.port} after "
                    f"{ATTEMPTS} attempts: {exc}"
                ) from None
            problem = str(exc) or type(exc).__name__
        log.warning(
            "SMTP %s:%s attempt %d/%d failed (%s); retrying in %.1f s",
            target.host,
            target.port,
            attempt,
            ATTEMPTS,
            problem,
            delay,
        )
        time.sleep(delay)
        delay *= 2


def _deliver_once(target: SmtpTarget, msg: EmailMessage) -> None:
    context = ssl.create_default_context()
    if target.scheme == "smtps":
        conn: smtplib.SMTP = smtplib.SMTP_SSL(
            target.host, target.port, timeout=TIMEOUT_S, context=context
        )
    else:
        conn = smtplib.SMTP(target.host, target.port, timeout=TIMEOUT_S)
    with conn:
        if target.scheme == "smtp+starttls":
            conn.starttls(context=context)
            conn.ehlo()
        if target.username:
            conn.login(target.username, target.password or "")
        conn.send_message(msg)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return _text(exc.smtp_error)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _write_outbox(msg: EmailMessage) -> Path:
    outbox = Path(current_app.config["INSTANCE_DIR"]) / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    slug = re.sub(r"[^a-z0-9]+", "-", str(msg["Subject"]).lower()).strip("-")[:60] or "message"
    data = bytes(msg)
    for n in range(100):
        path = outbox / f"{stamp}-{slug}{f'-{n}' if n else ''}.eml"
        try:
            with path.open("xb") as fh:
                fh.write(data)
            return path
        except FileExistsError:
            continue
    raise MailError(f"could not create a unique file in {outbox}")
