"""Home-pod app authentication (auth tickets, OAuth variant, tenant lookup) and the
app-claims check every tenant API call goes through.

- ``POST /api/platform/applications/authtickets`` ``{applicationId, sharedSecret}`` ->
  ``AuthTicket {accessToken, accessTokenExpiration, refreshToken, refreshTokenExpiration}``
  (the OpenAPI schema forbids extra properties, so nothing else is returned).
- ``PUT /api/platform/applications/authtickets/refresh-ticket`` ``{refreshToken}`` (also the
  older ``.../refresh-ticket/{refreshToken}`` form): a new access token; the refresh token
  and its expiration stay (the .NET SDK does not reset its refresh timer on refresh).
- ``DELETE /api/platform/applications/authtickets/{refreshToken}``: revoke.
- ``POST /api/platform/applications/authtickets/oauth`` ``{client_id, client_secret,
  grant_type: client_credentials|refresh_token, refresh_token}`` -> ``{access_token,
  token_type: "Bearer", expires_in, refresh_token}``.
- ``GET /api/platform/tenants/{tenantId}`` -> ``{id, name, domain, sites[...], ...}``.

Tenant calls send ``x-vol-app-claims: <accessToken>`` or ``Authorization: Bearer <token>``;
missing, unknown, revoked or expired tokens get 401 ``UNAUTHORIZED``. A present
``x-vol-tenant`` must name this tenant (401) and ``x-vol-site`` one of its sites (404).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from .common import KiboState, kibo_error, state

bp = Blueprint("kibo_auth", __name__)


def iso_epoch(epoch: float) -> str:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SS.fffZ``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class _Ticket:
    access_token: str
    access_exp: float
    refresh_token: str
    refresh_exp: float


class TicketStore:
    """Issued app tickets, keyed by access and refresh token; thread-safe."""

    def __init__(self, st: KiboState) -> None:
        self._st = st
        self._lock = threading.Lock()
        self._by_access: dict[str, _Ticket] = {}
        self._by_refresh: dict[str, _Ticket] = {}

    def issue(self) -> _Ticket:
        now, cfg = self._st.now(), self._st.config
        ticket = _Ticket(
            access_token=secrets.token_urlsafe(48),
            access_exp=now + cfg.ticket_ttl_s,
            refresh_token=secrets.token_hex(16),
            refresh_exp=now + cfg.refresh_ttl_s,
        )
        with self._lock:
            self._by_access[ticket.access_token] = ticket
            self._by_refresh[ticket.refresh_token] = ticket
        return ticket

    def refresh(self, refresh_token: str) -> _Ticket | None:
        """New access token for a live refresh token (the old access token stops working)."""
        now = self._st.now()
        with self._lock:
            old = self._by_refresh.get(refresh_token or "")
            if old is None or now >= old.refresh_exp:
                return None
            self._by_access.pop(old.access_token, None)
            new = _Ticket(
                access_token=secrets.token_urlsafe(48),
                access_exp=now + self._st.config.ticket_ttl_s,
                refresh_token=old.refresh_token,
                refresh_exp=old.refresh_exp,
            )
            self._by_access[new.access_token] = new
            self._by_refresh[new.refresh_token] = new
            return new

    def revoke(self, refresh_token: str) -> bool:
        with self._lock:
            ticket = self._by_refresh.pop(refresh_token, None)
            if ticket is not None:
                self._by_access.pop(ticket.access_token, None)
            return ticket is not None

    def check(self, access_token: str) -> str | None:
        """None when valid, else the reason (``invalid`` / ``expired``)."""
        with self._lock:
            ticket = self._by_access.get(access_token)
        if ticket is None:
            return "invalid"
        return "expired" if self._st.now() >= ticket.access_exp else None


def ticket_json(ticket: _Ticket) -> dict[str, Any]:
    return {
        "accessToken": ticket.access_token,
        "accessTokenExpiration": iso_epoch(ticket.access_exp),
        "refreshToken": ticket.refresh_token,
        "refreshTokenExpiration": iso_epoch(ticket.refresh_exp),
    }


def _unauthorized(message: str) -> Response:
    return kibo_error(401, "UNAUTHORIZED", message, application_name="Security")


def _credentials_ok(app_id: Any, secret: Any) -> bool:
    cfg = state().config
    return (
        isinstance(app_id, str)
        and isinstance(secret, str)
        and secrets.compare_digest(app_id, cfg.application_id)
        and secrets.compare_digest(secret, cfg.shared_secret)
    )


@bp.post("/api/platform/applications/authtickets")
def authenticate_app() -> Response:
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict) or not _credentials_ok(
        body.get("applicationId"), body.get("sharedSecret")
    ):
        return _unauthorized("Invalid applicationId or sharedSecret")
    return jsonify(ticket_json(state().tickets.issue()))


@bp.put("/api/platform/applications/authtickets/refresh-ticket")
@bp.put("/api/platform/applications/authtickets/refresh-ticket/<refresh_token>")
def refresh_app_ticket(refresh_token: str | None = None) -> Response:
    body = request.get_json(silent=True) or {}
    token = refresh_token or (body.get("refreshToken") if isinstance(body, dict) else None)
    ticket = state().tickets.refresh(token or "")
    if ticket is None:
        return _unauthorized("Refresh token is invalid or expired")
    return jsonify(ticket_json(ticket))


@bp.delete("/api/platform/applications/authtickets/<refresh_token>")
def delete_app_ticket(refresh_token: str) -> Response:
    state().tickets.revoke(refresh_token)
    return Response(status=200)


@bp.post("/api/platform/applications/authtickets/oauth")
def oauth_app() -> Response:
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict) or not _credentials_ok(
        body.get("client_id"), body.get("client_secret")
    ):
        return _unauthorized("Invalid client_id or client_secret")
    store = state().tickets
    if body.get("grant_type") == "refresh_token" or body.get("refresh_token"):
        ticket = store.refresh(str(body.get("refresh_token") or ""))
        if ticket is None:
            return _unauthorized("Refresh token is invalid or expired")
    elif body.get("grant_type") in (None, "client_credentials"):
        ticket = store.issue()
    else:
        return kibo_error(400, "MISSING_OR_INVALID_PARAMETER", "Unsupported grant_type")
    return jsonify(
        {
            "access_token": ticket.access_token,
            "token_type": "Bearer",
            "expires_in": int(ticket.access_exp - state().now()),
            "refresh_token": ticket.refresh_token,
        }
    )


@bp.get("/api/platform/tenants/<int:tenant_id>")
def get_tenant(tenant_id: int) -> Response:
    st = state()
    cfg = st.config
    if tenant_id != cfg.tenant_id:
        return kibo_error(404, "ITEM_NOT_FOUND", f"Tenant {tenant_id} not found", "Platform")
    domain = st.tenant_domain()
    return jsonify(
        {
            "id": cfg.tenant_id,
            "name": cfg.tenant_name,
            "domain": domain,
            "isDevTenant": True,
            "masterCatalogs": [
                {
                    "id": cfg.master_catalog_id,
                    "name": "Master Catalog",
                    "catalogs": [
                        {
                            "id": cfg.catalog_id,
                            "name": "Catalog",
                            "masterCatalogId": cfg.master_catalog_id,
                        }
                    ],
                }
            ],
            "sites": [
                {
                    "id": int(site["id"]),
                    "tenantId": cfg.tenant_id,
                    "name": site.get("name", f"Site {site['id']}"),
                    "catalogId": cfg.catalog_id,
                    "localeCode": "en-US",
                    "countryCode": "US",
                    "currencyCode": "USD",
                    "domain": domain,
                    "primaryCustomDomain": None,
                }
                for site in cfg.sites
            ],
        }
    )


def access_token_from_request() -> str | None:
    """The token from ``x-vol-app-claims`` or ``Authorization: Bearer`` (Bearer wins)."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("x-vol-app-claims") or None


def check_app_claims() -> Response | None:
    """Before-request guard for tenant APIs (``/api/commerce``, ``/api/platform/tenants``)."""
    path = request.path
    if not (path.startswith("/api/commerce/") or path.startswith("/api/platform/tenants/")):
        return None
    st = state()
    token = access_token_from_request()
    if token is None:
        return _unauthorized("Missing app claims: send x-vol-app-claims or a Bearer token")
    problem = st.tickets.check(token)
    if problem == "expired":
        return _unauthorized("Access token has expired; refresh the auth ticket")
    if problem:
        return _unauthorized("Invalid access token")
    tenant = request.headers.get("x-vol-tenant")
    if tenant and tenant.strip() != str(st.config.tenant_id):
        return _unauthorized(f"Application is not authorized for tenant {tenant}")
    site = request.headers.get("x-vol-site")
    if site and (not site.strip().isdigit() or int(site) not in st.site_ids()):
        return kibo_error(404, "ITEM_NOT_FOUND", f"Site {site} not found", "Platform")
    return None


def learn_host() -> None:
    """Remember the host the sandbox is reached at (default tenant domain)."""
    st = state()
    if st.learned_host is None and request.host:
        st.learned_host = request.host


def register(app: Flask) -> None:
    """Attach the auth routes and the app-claims guard."""
    app.register_blueprint(bp)
    app.before_request(learn_host)
    app.before_request(check_app_claims)
