"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the notify tests."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink:
    """An SMTP server storing envelopes; optional login check and recipient rejection."""

    def __init__(
        self,
        port: int | None = None,
        login: tuple[str, str] | None = None,
        reject_rcpt: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.envelopes: list = []
        self.logins: list[tuple[str, str]] = []
        self.reject_rcpt = reject_rcpt
        self._login = login
        kwargs = {}
        if login:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[EmailMessage]:
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        pair = (auth_data.login.decode(), auth_data.password.decode())
        self.logins.append(pair)
        return AuthResult(success=pair == self._login, handled=False)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_rcpt:
            return self.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def body_text(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def body_html(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()
