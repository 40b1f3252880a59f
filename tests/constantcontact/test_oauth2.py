"""OAuth2 with CC (spec B1): authorize URL, PKCE, code exchange, refresh rotation, revocation."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from sqlalchemy import text

from cc_storeplugin.constantcontact import oauth2
from cc_storeplugin.constantcontact.errors import AuthorizationFailed, ReauthorizationRequired
from cc_storeplugin.extensions import db
from tests.conftest import dispose_engines

from . import API, AUTH, PUBLIC, TOKEN_URL, add_merchant, make_cc_app, reload


@pytest.fixture
def cc_app(sqlite_url):
    app = make_cc_app(sqlite_url)
    with app.app_context():
        yield app
        db.session.remove()
        dispose_engines()


def _basic(request) -> tuple[str, str]:
    scheme, _, value = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password


def _form(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.body).items()}


def _token_json(access: str, refresh: str | None = None, expires_in: int = 86400) -> dict:
    body = {
        "token_type": "Bearer",
        "expires_in": expires_in,
        "access_token": access,
        "scope": oauth2.SCOPES,
    }
    if refresh:
        body["refresh_token"] = refresh
    return body


def test_authorization_url_has_every_parameter_and_plus_separated_scopes(cc_app) -> None:
    url = oauth2.authorization_url("the-state", "c" * 43)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == AUTH + "/authorize"
    assert "scope=contact_data+campaign_data+account_read+offline_access" in parts.query
    assert "%2B" not in parts.query and "%20" not in parts.query
    query = parse_qs(parts.query)
    assert query == {
        "client_id": [cc_app.config["CC_CLIENT_ID"]],
        "redirect_uri": [PUBLIC + "/auth/constantcontact/callback"],
        "response_type": ["code"],
        "scope": ["contact_data campaign_data account_read offline_access"],
        "state": ["the-state"],
        "code_challenge": ["c" * 43],
        "code_challenge_method": ["S256"],
    }


def test_pkce_pair_is_a_fresh_verifier_and_its_s256_challenge() -> None:
    verifier, challenge = oauth2.new_pkce_pair()
    assert 43 <= len(verifier) <= 128 and re.fullmatch(r"[A-Za-z0-9._~-]+", verifier)
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert challenge == digest.rstrip(b"=").decode()
    assert oauth2.new_pkce_pair()[0] != verifier


@responses.activate
def test_code_exchange_sends_basic_auth_and_the_verifier(cc_app) -> None:
    responses.post(TOKEN_URL, json=_token_json("at-new", "rt-new", 3600))
    before = datetime.now(UTC)
    tokens = oauth2.exchange_code("the-code", "the-verifier")
    request = responses.calls[0].request
    assert _basic(request) == (cc_app.config["CC_CLIENT_ID"], "s3cret-value")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert _form(request) == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": PUBLIC + "/auth/constantcontact/callback",
        "code_verifier": "the-verifier",
    }
    assert (tokens.access_token, tokens.refresh_token) == ("at-new", "rt-new")
    assert tokens.expires_at.tzinfo is not None
    assert timedelta(seconds=3599) <= tokens.expires_at - before <= timedelta(seconds=3700)
    assert "at-new" not in repr(tokens)


@responses.activate
def test_a_refused_code_raises_authorization_failed_with_ccs_reason(cc_app) -> None:
    responses.post(
        TOKEN_URL,
        status=400,
        json={
            "error": "invalid_grant",
            "error_description": "The authorization code is invalid or has expired.",
        },
    )
    with pytest.raises(AuthorizationFailed) as info:
        oauth2.exchange_code("old-code", "v" * 43)
    assert info.value.error == "invalid_grant"
    assert "invalid or has expired" in str(info.value)
    assert len(responses.calls) == 1  # a refusal is final


@responses.activate
def test_connect_merchant_creates_then_reloads_by_account_id(cc_app) -> None:
    summary = {
        "encoded_account_id": "a07e1lxyz",
        "organization_name": "Trail Co",
        "contact_email": "boss@trail.example",
    }
    responses.get(API + "/account/summary", json=summary)
    tokens = oauth2.TokenSet("at-1", "rt-1", datetime.now(UTC) + timedelta(days=1), "s")
    merchant = oauth2.connect_merchant(tokens)
    assert responses.calls[0].request.headers["Authorization"] == "Bearer at-1"
    stored = reload(merchant.id)
    assert (stored.cc_account_id, stored.name, stored.email) == (
        "a07e1lxyz",
        "Trail Co",
        "boss@trail.example",
    )
    assert (stored.cc_access_token, stored.cc_refresh_token) == ("at-1", "rt-1")
    raw = db.session.execute(text("SELECT cc_access_token, cc_refresh_token FROM merchants"))
    assert all("at-1" not in v and "rt-1" not in v for v in raw.one())

    stored.cc_auth_state = "reconnect_required"
    db.session.commit()
    again = oauth2.connect_merchant(
        oauth2.TokenSet("at-2", "rt-2", datetime.now(UTC) + timedelta(days=1), "s")
    )
    assert again.id == merchant.id
    stored = reload(merchant.id)
    assert (stored.cc_access_token, stored.cc_refresh_token) == ("at-2", "rt-2")
    assert stored.cc_auth_state == "connected"


@responses.activate
def test_a_token_valid_long_enough_is_used_without_refreshing(cc_app) -> None:
    merchant = add_merchant(access="at-ok", expires_in_s=3600)
    assert oauth2.access_token_for(merchant.id) == "at-ok"
    assert len(responses.calls) == 0


@responses.activate
def test_refresh_rotates_and_persists_the_new_pair(cc_app) -> None:
    merchant = add_merchant(access="at-old", refresh="rt-old", expires_in_s=120)
    responses.post(TOKEN_URL, json=_token_json("at-new", "rt-new"))
    assert oauth2.access_token_for(merchant.id) == "at-new"
    request = responses.calls[0].request
    assert _basic(request)[1] == "s3cret-value"
    assert _form(request) == {"grant_type": "refresh_token", "refresh_token": "rt-old"}
    stored = reload(merchant.id)
    assert (stored.cc_access_token, stored.cc_refresh_token) == ("at-new", "rt-new")
    assert stored.cc_token_expires_at > datetime.now(UTC) + timedelta(hours=23)
    assert oauth2.access_token_for(merchant.id) == "at-new"
    assert len(responses.calls) == 1


@responses.activate
def test_a_long_lived_refresh_token_is_kept_when_none_is_returned(cc_app) -> None:
    merchant = add_merchant(access="at-old", refresh="rt-keep", expires_in_s=0)
    responses.post(TOKEN_URL, json=_token_json("at-new"))
    assert oauth2.access_token_for(merchant.id) == "at-new"
    assert reload(merchant.id).cc_refresh_token == "rt-keep"


@responses.activate
def test_invalid_grant_marks_the_merchant_for_reconnection(cc_app) -> None:
    merchant = add_merchant(expires_in_s=10)
    responses.post(
        TOKEN_URL,
        status=400,
        json={"error": "invalid_grant", "error_description": "The refresh token is invalid."},
    )
    with pytest.raises(ReauthorizationRequired) as info:
        oauth2.access_token_for(merchant.id)
    assert info.value.merchant_id == merchant.id
    assert reload(merchant.id).cc_auth_state == "reconnect_required"
    with pytest.raises(ReauthorizationRequired):
        oauth2.access_token_for(merchant.id)
    assert len(responses.calls) == 1  # no more spending on a dead grant


@responses.activate
def test_token_endpoint_5xx_is_retried_without_losing_the_grant(cc_app, monkeypatch) -> None:
    monkeypatch.setattr(oauth2.time, "sleep", lambda s: None)
    merchant = add_merchant(expires_in_s=10)
    responses.post(TOKEN_URL, status=503, body="upstream down")
    responses.post(TOKEN_URL, json=_token_json("at-2", "rt-2"))
    assert oauth2.access_token_for(merchant.id) == "at-2"
    assert len(responses.calls) == 2
    assert reload(merchant.id).cc_auth_state == "connected"


@responses.activate
def test_force_refresh_reuses_a_token_another_worker_already_refreshed(cc_app) -> None:
    merchant = add_merchant(access="at-newer", expires_in_s=86000)
    assert oauth2.force_refresh(merchant.id, stale_token="at-refused") == "at-newer"
    assert len(responses.calls) == 0
    responses.post(TOKEN_URL, json=_token_json("at-3", "rt-3"))
    assert oauth2.force_refresh(merchant.id, stale_token="at-newer") == "at-3"
    assert _form(responses.calls[0].request)["refresh_token"] == "rt-1"
