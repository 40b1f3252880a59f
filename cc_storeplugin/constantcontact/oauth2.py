"""Sign in with Constant Contact (OAuth2 code + PKCE) and keep each merchant's token fresh.

Spec B1: the secret goes in HTTP Basic, PKCE S256 on top; refresh tokens rotate and are
single-use, so refreshes are serialised per CC account by a Redis lock and the new pair is
committed before anyone uses it (DESIGN invariant 4).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests
from flask import current_app
from sqlalchemy import select

from cc_storeplugin.extensions import db, queues
from cc_storeplugin.models.merchants import Merchant

from .errors import AuthorizationFailed, CCError, CCUnavailable, ReauthorizationRequired
from .ratelimit import token_limiter

log = logging.getLogger(__name__)

SCOPES = "contact_data campaign_data account_read offline_access"
CALLBACK_PATH = "/auth/constantcontact/callback"
TOKEN_TIMEOUT = (5, 30)
TOKEN_ATTEMPTS = 3
LOCK_TIMEOUT_S = 60


@dataclass
class TokenSet:
    """What the token endpoint gave: tokens, their expiry (aware UTC) and granted scopes."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scope: str

    def __repr__(self) -> str:  # never print the tokens themselves
        return f"TokenSet(expires_at={self.expires_at.isoformat()}, scope={self.scope!r})"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_pkce_pair() -> tuple[str, str]:
    """``(code_verifier, code_challenge)``: an 86-char verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    return verifier, _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def redirect_uri() -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + CALLBACK_PATH


def _auth_url(endpoint: str) -> str:
    return f"{current_app.config['CC_AUTH_BASE_URL'].rstrip('/')}/{endpoint}"


def authorization_url(state: str, code_challenge: str) -> str:
    """Where to send the merchant's browser; spaces in ``scope`` become ``+`` (never %2B)."""
    query = urlencode(
        {
            "client_id": current_app.config["CC_CLIENT_ID"],
            "redirect_uri": redirect_uri(),
            "response_type": "code",
            "scope": SCOPES,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
    )  # urlencode quotes with quote_plus: "contact_data+campaign_data+..."
    return f"{_auth_url('authorize')}?{query}"


def _token_post(form: dict[str, str]) -> TokenSet:
    """POST the token endpoint with HTTP Basic client credentials, retrying transient failures.

    Resending a refresh whose answer was lost cannot make things worse: the rotated token in
    that answer is gone either way.
    """
    cfg = current_app.config
    limiter = token_limiter()
    last = "no attempt"
    for attempt in range(TOKEN_ATTEMPTS):
        if attempt:
            time.sleep(min(8.0, 1.0 * 2 ** (attempt - 1)))
        limiter.acquire(timeout_s=30)
        try:
            resp = requests.post(
                _auth_url("token"),
                data=form,
                auth=(cfg["CC_CLIENT_ID"] or "", cfg["CC_CLIENT_SECRET"] or ""),
                headers={"Accept": "application/json"},
                timeout=TOKEN_TIMEOUT,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = type(exc).__name__
            continue
        if resp.status_code == 429 or resp.status_code >= 500:
            last = f"HTTP {resp.status_code}"
            continue
        return _token_response(resp)
    raise CCUnavailable(f"the CC token endpoint kept failing ({last})")


def _token_response(resp: requests.Response) -> TokenSet:
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    if resp.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        err = body if isinstance(body, dict) else {}
        raise AuthorizationFailed(
            str(err.get("error") or err.get("errorCode") or f"http_{resp.status_code}"),
            str(err.get("error_description") or err.get("errorSummary") or ""),
            resp.status_code,
        )
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token"),
        expires_at=_utcnow() + timedelta(seconds=int(body.get("expires_in") or 86400)),
        scope=str(body.get("scope") or SCOPES),
    )


def exchange_code(code: str, code_verifier: str) -> TokenSet:
    """Trade the authorization code (and the PKCE verifier) for tokens."""
    return _token_post(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri(),
            "code_verifier": code_verifier,
        }
    )


def _store_tokens(merchant: Merchant, tokens: TokenSet) -> None:
    merchant.cc_access_token = tokens.access_token
    if tokens.refresh_token:  # long-lived refresh tokens are not re-sent
        merchant.cc_refresh_token = tokens.refresh_token
    merchant.cc_token_expires_at = tokens.expires_at
    merchant.cc_scopes = tokens.scope
    merchant.cc_auth_state = "connected"


def connect_merchant(tokens: TokenSet) -> Merchant:
    """Create or load the Merchant of the account behind ``tokens`` and store them."""
    from .client import CCClient

    try:
        summary = CCClient(None, access_token=tokens.access_token).account_summary()
    except AuthorizationFailed:
        raise
    except CCError as exc:
        raise AuthorizationFailed("account_summary_failed", str(exc), exc.status) from exc
    account_id = summary.get("encoded_account_id")
    if not account_id:
        raise AuthorizationFailed("account_summary_failed", "no encoded_account_id in summary")
    merchant = db.session.scalar(select(Merchant).where(Merchant.cc_account_id == account_id))
    if merchant is None:
        merchant = Merchant(cc_account_id=account_id)
        db.session.add(merchant)
    merchant.name = summary.get("organization_name") or merchant.name
    merchant.email = summary.get("contact_email") or merchant.email
    _store_tokens(merchant, tokens)
    db.session.commit()
    log.info("CC account %s connected as merchant %s", account_id, merchant.id)
    return merchant


def _load(merchant_id: int, *, fresh: bool = False) -> Merchant:
    query = select(Merchant).where(Merchant.id == merchant_id)
    if fresh:
        query = query.execution_options(populate_existing=True)
    merchant = db.session.scalar(query)
    if merchant is None:
        raise LookupError(f"no merchant {merchant_id}")
    return merchant


def _valid_for(merchant: Merchant, min_valid_s: int) -> bool:
    return bool(
        merchant.cc_access_token
        and merchant.cc_token_expires_at
        and merchant.cc_token_expires_at - _utcnow() >= timedelta(seconds=min_valid_s)
    )


def access_token_for(merchant_id: int, *, min_valid_s: int = 300) -> str:
    """An access token valid for at least ``min_valid_s``, refreshing it if need be.

    Commits the session when it refreshes. Raises ReauthorizationRequired when the
    merchant must sign in again.
    """
    merchant = _load(merchant_id)
    if merchant.cc_auth_state == "reconnect_required":
        raise ReauthorizationRequired(merchant_id, "the merchant must reconnect")
    if _valid_for(merchant, min_valid_s):
        return merchant.cc_access_token  # type: ignore[return-value]
    return _refresh(merchant_id, min_valid_s=min_valid_s)


def force_refresh(merchant_id: int, stale_token: str | None = None) -> str:
    """Refresh after CC refused ``stale_token`` (a 401); reuse a newer token if one exists."""
    return _refresh(merchant_id, min_valid_s=0, stale_token=stale_token, force=True)


def mark_reconnect_required(merchant_id: int) -> None:
    """Flag the merchant so the UI asks them to reconnect and their jobs pause."""
    merchant = _load(merchant_id, fresh=True)
    merchant.cc_auth_state = "reconnect_required"
    db.session.commit()


def _refresh(
    merchant_id: int,
    *,
    min_valid_s: int,
    stale_token: str | None = None,
    force: bool = False,
) -> str:
    account_id = _load(merchant_id).cc_account_id
    lock = queues.connection.lock(
        f"cc:refresh:{account_id}", timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S
    )
    if not lock.acquire():
        raise CCUnavailable(f"the token refresh of CC account {account_id} is stuck (lock busy)")
    try:
        merchant = _load(merchant_id, fresh=True)  # another worker may have refreshed already
        if merchant.cc_auth_state == "reconnect_required":
            raise ReauthorizationRequired(merchant_id, "the merchant must reconnect")
        if force:
            newer = stale_token is not None and merchant.cc_access_token != stale_token
            if newer and _valid_for(merchant, 0):
                return merchant.cc_access_token  # type: ignore[return-value]
        elif _valid_for(merchant, min_valid_s):
            return merchant.cc_access_token  # type: ignore[return-value]
        if not merchant.cc_refresh_token:
            merchant.cc_auth_state = "reconnect_required"
            db.session.commit()
            raise ReauthorizationRequired(merchant_id, "no refresh token stored")
        try:
            tokens = _token_post(
                {"grant_type": "refresh_token", "refresh_token": merchant.cc_refresh_token}
            )
        except AuthorizationFailed as exc:
            if exc.error != "invalid_grant":
                raise
            merchant.cc_auth_state = "reconnect_required"
            db.session.commit()
            log.warning("CC refused the refresh token of merchant %s: %s", merchant_id, exc)
            raise ReauthorizationRequired(merchant_id, exc.description or exc.error) from exc
        _store_tokens(merchant, tokens)
        db.session.commit()
        return tokens.access_token
    finally:
        try:
            lock.release()
        except Exception:  # expired under us: nothing left to release
            log.warning("refresh lock of CC account %s expired before release", account_id)
