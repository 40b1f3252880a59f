"""Helpers for the Constant Contact client tests: app settings, merchants, sandbox sign-in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from cc_storeplugin.extensions import db
from cc_storeplugin.models.merchants import Merchant
from cc_storeplugin.sandbox.constantcontact import create_app as create_sandbox
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread
from tests.conftest import make_app

API = "https://api.cc.test/v3"
AUTH = "https://authz.cc.test/oauth2/default/v1"
TOKEN_URL = AUTH + "/token"
PUBLIC = "http://127.0.0.1:5000"


def cc_settings(**over: Any) -> dict[str, Any]:
    """Settings for a CC test app; a fresh client id keeps each test's Redis budget apart."""
    settings = {
        "CC_CLIENT_ID": f"test-{uuid.uuid4().hex[:12]}",
        "CC_CLIENT_SECRET": "s3cret-value",
        "CC_API_BASE_URL": API,
        "CC_AUTH_BASE_URL": AUTH,
        "PUBLIC_BASE_URL": PUBLIC,
        "CC_RATE_PER_S": 100,
        "CC_TOKEN_RATE_PER_S": 100,
    }
    settings.update(over)
    return settings


def make_cc_app(database_url: str, **over: Any):
    """An app with CC settings and every table created."""
    app = make_app(database_url, **cc_settings(**over))
    with app.app_context():
        db.create_all()
    return app


def add_merchant(
    *,
    access: str = "at-1",
    refresh: str | None = "rt-1",
    expires_in_s: float = 86400,
    account: str = "acct-1",
    state: str = "connected",
) -> Merchant:
    """A connected merchant whose tokens expire ``expires_in_s`` from now."""
    merchant = Merchant(
        cc_account_id=account,
        name="Shop",
        email="owner@shop.example",
        cc_access_token=access,
        cc_refresh_token=refresh,
        cc_token_expires_at=datetime.now(UTC) + timedelta(seconds=expires_in_s),
        cc_scopes="contact_data campaign_data account_read offline_access",
        cc_auth_state=state,
    )
    db.session.add(merchant)
    db.session.commit()
    return merchant


def reload(merchant_id: int) -> Merchant:
    """The merchant as committed in the database (nothing from the session's cache)."""
    db.session.expire_all()
    return db.session.get(Merchant, merchant_id)


def sandbox_sign_in() -> Merchant:
    """The whole browser-side flow against a CC sandbox with ``auto_approve``: returns the
    Merchant created from the account summary. Needs an app context whose CC settings point
    at the sandbox."""
    from cc_storeplugin.constantcontact import oauth2

    verifier, challenge = oauth2.new_pkce_pair()
    state = uuid.uuid4().hex
    resp = requests.get(
        oauth2.authorization_url(state, challenge), allow_redirects=False, timeout=10
    )
    assert resp.status_code == 302, resp.text[:300]
    location = resp.headers["Location"]
    assert location.startswith(PUBLIC + "/auth/constantcontact/callback?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    tokens = oauth2.exchange_code(query["code"][0], verifier)
    return oauth2.connect_merchant(tokens)


@contextmanager
def cc_sandbox(**options: Any) -> Iterator[tuple[RunningServer, dict[str, Any]]]:
    """Serve a CC sandbox with a client of its own; yield it and app settings pointing at it
    (real limits: 4 requests/s, as CC)."""
    client_id = f"client-{uuid.uuid4().hex[:10]}"
    options.setdefault("import_delay_s", 0)
    options.setdefault("auto_approve", True)
    options["clients"] = {client_id: {"secret": "sandbox-secret", "redirect_uris": None}}
    server = serve_in_thread(create_sandbox(**options))
    settings = cc_settings(
        CC_CLIENT_ID=client_id,
        CC_CLIENT_SECRET="sandbox-secret",
        CC_API_BASE_URL=server.url + "/v3",
        CC_AUTH_BASE_URL=server.url + "/oauth2/default/v1",
        CC_RATE_PER_S=4,
    )
    try:
        yield server, settings
    finally:
        server.stop()


def sandbox_calls(url: str, key: str) -> int:
    """How often the sandbox served ``key`` ("METHOD /rule")."""
    stats = requests.get(url + "/_sandbox/stats", timeout=10).json()
    return int(stats["calls"].get(key, 0))
