"""The plugin's one HTTP client for a Kibo eCommerce tenant: app auth ticket and tenant REST.

The app authenticates at the home pod (``POST /api/platform/applications/authtickets``),
refreshes the ticket before it expires (``PUT .../refresh-ticket``), finds the tenant's host
(``GET /api/platform/tenants/{id}``) and sends ``x-vol-app-claims`` + ``x-vol-tenant`` (+
``x-vol-site``) on tenant calls (specs/kibo_constantcontact.md A2). Every call has timeouts
and is retried with backoff on connection errors, timeouts, 429 and 5xx; a 401 on a tenant
call re-authenticates once; other 4xx are final.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from cc_storeplugin.httputil import retry_after_s

from .errors import KiboError, KiboUnauthorized, KiboUnavailable, api_error

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
MAX_DELAY_S = 60.0
REFRESH_MARGIN_S = 180.0
"""Refresh this long before the access token expires (as the .NET SDK does)."""
AUTH_PATH = "/api/platform/applications/authtickets"


@dataclass
class _Ticket:
    access_token: str
    access_exp: float
    refresh_token: str
    refresh_exp: float
    refresh_at: float  # when to refresh: the expiry minus a margin


def _epoch(value: Any, default: float) -> float:
    """Kibo ``2026-11-23T13:00:00.000Z`` → epoch seconds; ``default`` when absent or bad."""
    if not isinstance(value, str) or not value:
        return default
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _origin(host: str, scheme: str) -> str:
    """``t1.sandbox.mozu.com`` or ``https://t1.../api`` → ``https://t1...`` (no path)."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    return f"{parts.scheme}://{parts.netloc}"


class KiboClient:
    """One Kibo tenant reached with the app's credentials; ``calls`` counts HTTP requests sent
    (auth and retries included)."""

    def __init__(
        self,
        home_base_url: str,
        application_id: str,
        shared_secret: str,
        tenant_id: int | str,
        *,
        site_id: int | str | None = None,
        tenant_host: str | None = None,
        timeout: float | tuple[float, float] = (5, 60),
        max_retries: int = 5,
        backoff_s: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        self.home_base_url = _origin(home_base_url, "https")
        self.application_id = application_id
        self._shared_secret = shared_secret
        self.tenant_id = int(tenant_id)
        self.site_id = int(site_id) if site_id not in (None, "") else None
        scheme = urlsplit(self.home_base_url).scheme
        self._tenant_url = _origin(tenant_host, scheme) if tenant_host else None
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.session = session or requests.Session()
        self.session.headers.setdefault("Accept", "application/json")
        self.calls = 0
        self._sleep = time.sleep
        self._clock = time.time
        self._lock = threading.RLock()
        self._ticket: _Ticket | None = None

    def __repr__(self) -> str:
        return (
            f"KiboClient({self.home_base_url!r}, application_id={self.application_id!r}, "
            f"tenant_id={self.tenant_id}, site_id={self.site_id})"
        )

    # -- tenant REST ----------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a tenant API path (``/api/commerce/...``) and return the decoded JSON."""
        return self._tenant_call("GET", path, params=params)

    def put(self, path: str, json: Any) -> Any:
        """PUT a JSON body to a tenant API path."""
        return self._tenant_call("PUT", path, json=json)

    @property
    def tenant_url(self) -> str:
        """``scheme://host`` of the tenant's API pod, looked up at the home pod once."""
        if self._tenant_url is None:
            domain = self.tenant().get("domain")
            if not isinstance(domain, str) or not domain.strip():
                raise KiboError(f"tenant {self.tenant_id}: Kibo returned no domain")
            self._tenant_url = _origin(domain, urlsplit(self.home_base_url).scheme)
        return self._tenant_url

    def tenant(self) -> dict:
        """``GET /api/platform/tenants/{id}`` at the home pod: ``{id, name, domain, sites}``."""
        url = f"{self.home_base_url}/api/platform/tenants/{self.tenant_id}"
        return self._authorized("GET", url, context=False)

    def _tenant_call(
        self, method: str, path: str, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> Any:
        path = "/" + path.lstrip("/")
        if not path.startswith("/api/"):
            path = "/api" + path
        return self._authorized(method, self.tenant_url + path, params=params, json=json)

    def _authorized(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        context: bool = True,
    ) -> Any:
        """One API call with app claims; a 401 gets one fresh ticket and one more try."""
        for attempt in (1, 2):
            token = self.access_token()
            headers = {"x-vol-app-claims": token}
            if context:
                headers["x-vol-tenant"] = str(self.tenant_id)
                if self.site_id is not None:
                    headers["x-vol-site"] = str(self.site_id)
            resp = self._send(method, url, params=params, json=json, headers=headers)
            if resp.status_code == 401 and attempt == 1:
                log.info("Kibo %s %s: 401, authenticating again", method, urlsplit(url).path)
                with self._lock:
                    if self._ticket is not None and self._ticket.access_token == token:
                        self._ticket = None
                continue
            break
        return _decode(method, url, resp)

    # -- app auth ticket ------------------------------------------------------------------

    def access_token(self) -> str:
        """A live access token: authenticate, or refresh shortly before expiry."""
        with self._lock:
            now = self._clock()
            ticket = self._ticket
            if ticket is not None and now < ticket.refresh_at:
                return ticket.access_token
            if ticket is not None and now < ticket.refresh_exp:
                try:
                    self._ticket = self._refresh(ticket)
                except KiboUnauthorized:
                    self._ticket = self._authenticate()
            else:
                self._ticket = self._authenticate()
            return self._ticket.access_token

    def authenticate(self) -> None:
        """Get a fresh app ticket now (raises KiboUnauthorized on bad credentials)."""
        with self._lock:
            self._ticket = self._authenticate()

    def _authenticate(self) -> _Ticket:
        body = {"applicationId": self.application_id, "sharedSecret": self._shared_secret}
        return self._ticket_call("POST", f"{self.home_base_url}{AUTH_PATH}", body)

    def _refresh(self, ticket: _Ticket) -> _Ticket:
        url = f"{self.home_base_url}{AUTH_PATH}/refresh-ticket"
        new = self._ticket_call("PUT", url, {"refreshToken": ticket.refresh_token})
        if not new.refresh_token:  # Kibo may keep the refresh token and not repeat it
            new.refresh_token, new.refresh_exp = ticket.refresh_token, ticket.refresh_exp
        return new

    def _ticket_call(self, method: str, url: str, body: dict) -> _Ticket:
        resp = self._send(method, url, json=body)
        data = _decode(method, url, resp)
        if not isinstance(data, dict) or not data.get("accessToken"):
            raise KiboError(f"{method} {urlsplit(url).path}: no accessToken", resp.status_code)
        now = self._clock()
        access_exp = _epoch(data.get("accessTokenExpiration"), now + 600)
        margin = min(REFRESH_MARGIN_S, max(0.0, access_exp - now) / 4)
        return _Ticket(
            access_token=str(data["accessToken"]),
            access_exp=access_exp,
            refresh_token=str(data.get("refreshToken") or ""),
            refresh_exp=_epoch(data.get("refreshTokenExpiration"), access_exp),
            refresh_at=access_exp - margin,
        )

    # -- transport ------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One logical call with retries on transient failures; headers are never logged."""
        short = urlsplit(url).path
        last: KiboError = KiboUnavailable(f"{method} {short}: not attempted")
        for attempt in range(self.max_retries + 1):
            self.calls += 1
            delay = self._backoff(attempt)
            try:
                resp = self.session.request(
                    method, url, params=params, json=json, headers=headers, timeout=self.timeout
                )
            except TRANSIENT as exc:
                last = KiboUnavailable(f"{method} {short}: {type(exc).__name__}")
            else:
                if resp.status_code not in RETRY_STATUSES:
                    return resp
                err = api_error(resp.status_code, resp.content)
                last = KiboUnavailable(err.message, resp.status_code, err.code)
                delay = max(delay, min(retry_after_s(resp), MAX_DELAY_S))
            if attempt < self.max_retries:
                log.warning("Kibo %s %s failed (%s); retry %d in %.1fs",
                            method, short, last, attempt + 1, delay)  # fmt: skip
                self._sleep(delay)
        raise last

    def _backoff(self, attempt: int) -> float:
        if self.backoff_s <= 0:
            return 0.0
        return min(MAX_DELAY_S, self.backoff_s * 2**attempt) * random.uniform(0.75, 1.0)  # noqa: S311


def _decode(method: str, url: str, resp: requests.Response) -> Any:
    if resp.status_code >= 400:
        raise api_error(resp.status_code, resp.content)
    if not resp.content.strip():
        return None
    try:
        return resp.json()
    except ValueError as exc:
        msg = f"{method} {urlsplit(url).path}: Kibo's answer is not JSON"
        raise KiboError(msg, resp.status_code) from exc
