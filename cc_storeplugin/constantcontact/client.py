"""The plugin's one HTTP client for the Constant Contact v3 API (DESIGN invariants 4 and 6).

Every call takes a slot from the shared Redis rate limiter, carries a fresh bearer token,
has timeouts, and is retried with backoff on connection errors, timeouts, 5xx and 429
``throttled``; ``quota_exceeded`` stops at once; a 401 gets one token refresh.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app

from . import oauth2
from .errors import CCError, CCUnavailable, QuotaExceeded, ReauthorizationRequired, Throttled
from .ratelimit import RateLimiter, api_limiter

log = logging.getLogger(__name__)

TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
MAX_DELAY_S = 30.0
THROTTLE_DELAY_S = 1.0
"""CC sends no Retry-After; about a second frees the per-second window (spec B6)."""


class CCClient:
    """CC v3 for one merchant (``merchant_id``), or for a bare ``access_token`` at sign-in.

    ``calls`` counts HTTP requests sent, retries included.
    """

    def __init__(
        self,
        merchant_id: int | None,
        *,
        session: requests.Session | None = None,
        max_retries: int = 6,
        backoff_s: float = 0.5,
        access_token: str | None = None,
        limiter: RateLimiter | None = None,
        timeout: tuple[float, float] = (5, 60),
    ) -> None:
        if merchant_id is None and access_token is None:
            raise ValueError("CCClient needs a merchant_id or an access_token")
        self.merchant_id = merchant_id
        self.base_url = current_app.config["CC_API_BASE_URL"].rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout = timeout
        self.limiter = limiter or api_limiter()
        self.calls = 0
        self._access_token = access_token
        self._sleep = time.sleep

    def __repr__(self) -> str:
        return f"CCClient(merchant_id={self.merchant_id!r}, base_url={self.base_url!r})"

    def url_for(self, path: str) -> str:
        """Absolute URL of an API path ("/contacts") or a ``_links`` href ("/v3/contacts?…")."""
        if path.startswith(("http://", "https://")):
            return path
        parts = urlsplit(self.base_url)
        prefix = parts.path.rstrip("/")
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            return f"{parts.scheme}://{parts.netloc}{path}"
        return self.base_url + ("" if path.startswith("/") else "/") + path

    def _token(self) -> str:
        if self._access_token is not None and self.merchant_id is None:
            return self._access_token
        return oauth2.access_token_for(self.merchant_id)  # type: ignore[arg-type]

    def _delay(self, attempt: int) -> float:
        return min(MAX_DELAY_S, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one API call and return its decoded JSON (None for an empty body)."""
        url = self.url_for(path)
        token = self._token()
        refreshed = False
        attempt = 0
        last: str = "no attempt"
        last_status = 0
        while True:
            self.limiter.acquire()
            self.calls += 1
            try:
                resp = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self.timeout,
                )
            except TRANSIENT as exc:
                last, last_status, delay = type(exc).__name__, 0, self._delay(attempt)
            else:
                status = resp.status_code
                if status < 400:
                    return resp.json() if resp.content else None
                if status == 401:
                    token = self._unauthorized(token, refreshed)
                    refreshed = True
                    continue
                err = CCError.from_response(status, resp.content)
                if isinstance(err, QuotaExceeded):
                    self.limiter.exhaust()
                    raise err
                if not isinstance(err, Throttled) and status < 500:
                    raise err
                last, last_status = f"HTTP {status} {err.error_key}", status
                delay = self._delay(attempt)
                if isinstance(err, Throttled):
                    delay = max(delay, THROTTLE_DELAY_S)
            if attempt >= self.max_retries:
                raise CCUnavailable(
                    f"{method} {urlsplit(url).path} failed {attempt + 1} times (last: {last})",
                    last_status,
                )
            log.info("CC %s %s: %s; retry in %.1f s", method, urlsplit(url).path, last, delay)
            attempt += 1
            self._sleep(delay)

    def _unauthorized(self, token: str, refreshed: bool) -> str:
        """A 401: refresh the merchant's token once; a second 401 needs the merchant."""
        if self.merchant_id is None:
            raise ReauthorizationRequired(None, "CC refused the access token")
        if refreshed:
            oauth2.mark_reconnect_required(self.merchant_id)
            raise ReauthorizationRequired(self.merchant_id, "CC refused a freshly refreshed token")
        return oauth2.force_refresh(self.merchant_id, stale_token=token)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def paginate(
        self, path: str, params: Mapping[str, Any] | None, items_key: str
    ) -> Iterator[dict[str, Any]]:
        """Every item under ``items_key``, following ``_links.next.href`` until it is absent."""
        yield from self.paginate_from(self.request("GET", path, params=params), items_key)

    def paginate_from(
        self, page: dict[str, Any] | None, items_key: str
    ) -> Iterator[dict[str, Any]]:
        """The items of ``page`` (a first page already fetched) and of every next page."""
        seen: set[str] = set()
        while True:
            yield from (page or {}).get(items_key) or []
            href = ((page or {}).get("_links") or {}).get("next", {}).get("href")
            if not href:
                return
            if href in seen:
                raise CCError(0, "pagination.loop", f"CC returned the next link {href} twice")
            seen.add(href)
            page = self.request("GET", href)

    def account_summary(self, extra_fields: str | None = None) -> dict[str, Any]:
        """GET /account/summary: encoded_account_id, organization_name, contact_email, …"""
        params = {"extra_fields": extra_fields} if extra_fields else None
        return self.request("GET", "/account/summary", params=params)

    def account_emails(self, confirm_status: str | None = "CONFIRMED") -> list[dict[str, Any]]:
        """GET /account/emails: the account's (by default verified) from-addresses."""
        params = {"confirm_status": confirm_status} if confirm_status else None
        return self.request("GET", "/account/emails", params=params) or []
