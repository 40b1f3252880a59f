"""Kibo eCommerce (Mozu) sandbox: home pod app auth, tenant APIs over a store file, a signed
event sender and the signed configuration-page launcher (spec kibo_constantcontact.md A).

``create_app(**options)`` options:

- ``store`` (path, required): SQLite store file (``storegen`` schema); PUTs write to it.
- ``application_id`` (``"sandbox.ccplugin.1.0.0.Release"``), ``shared_secret`` (a fixed
  32-hex demo secret, :data:`DEMO_SHARED_SECRET`): the app credentials and HMAC key.
- ``tenant_id`` (12345), ``sites`` (``[{"id": 23456, "name": "Main"}, {"id": 23457,
  "name": "Outlet"}]``), ``master_catalog_id`` (1), ``catalog_id`` (1),
  ``tenant_name`` ("Sandbox Tenant").
- ``tenant_domain`` (None: the ``host:port`` the sandbox is reached at, learned from the
  first request; pass ``"t12345.sandbox.mozu.com"`` for Kibo-looking text). Used in
  ``GET /api/platform/tenants/{id}``, event headers and the launcher.
- ``clock`` (``time.time``): epoch-seconds callable for tickets, dates and updateDate.
- ``ticket_ttl_s`` (3600), ``refresh_ttl_s`` (86400): access / refresh token lifetimes.
- ``oversize_page`` (``"error"``: pageSize > 200 gets 400 MISSING_OR_INVALID_PARAMETER;
  ``"clamp"``: served as 200). Kibo documents the maximum, not the behaviour past it.
- ``cart_expiry_days`` (14): when an untouched cart counts as expired (abandoned).
- Events: ``event_endpoint`` (None; set later via ``POST /_sandbox/endpoint``),
  ``retry_delays_s`` ((0.05, 0.1, 0.2, 0.5, 1.0)), ``max_attempts`` (20),
  ``delivery_timeout_s`` (45), ``resign_retries`` (True).
- Faults, forwarded to ``instrument`` with Kibo's error body: ``seed`` (0),
  ``latency_ms``, ``p429``, ``p5xx``, ``pdrop``.

Python API: ``app.extensions["kibo"]`` is the :class:`.common.KiboState`; its ``events``
is the :class:`.events.EventSender` (``emit``, ``notify``, ``replay``, ``deliveries``,
``wait_idle``, ``stop``, ``endpoint``). :func:`.launcher.launch_request` builds a signed
configuration-page request; :mod:`.signing` is the dependency-free HMAC.

Routes: see :mod:`.auth`, :mod:`.customers`, :mod:`.orders`, :mod:`.carts`,
:mod:`.events`, :mod:`.launcher`; control endpoints live under ``/_sandbox``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from cc_storeplugin.sandbox.instrument import instrument

from . import auth, carts, customers, events, events_control, launcher, orders
from .common import KiboConfig, KiboState, fault_response, kibo_error

DEFAULT_APPLICATION_ID = "sandbox.ccplugin.1.0.0.Release"
DEMO_SHARED_SECRET = "5a1dbb0c2e4f4c3f9d7b8a6e1f2c3d4e"  # noqa: S105 (public demo value)
DEFAULT_SITES = ({"id": 23456, "name": "Main"}, {"id": 23457, "name": "Outlet"})

__all__ = ["DEFAULT_APPLICATION_ID", "DEMO_SHARED_SECRET", "create_app"]


def _http_error(exc: HTTPException) -> Response | HTTPException:
    """Kibo-shaped bodies for unknown routes and methods under /api."""
    if not request.path.startswith("/api/"):
        return exc
    code = {404: "ITEM_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(
        exc.code or 500, "UNEXPECTED_ERROR"
    )
    return kibo_error(exc.code or 500, code, exc.description or exc.name, "Platform")


def create_app(
    store: str,
    application_id: str = DEFAULT_APPLICATION_ID,
    shared_secret: str = DEMO_SHARED_SECRET,
    tenant_id: int = 12345,
    sites: list[dict[str, Any]] | None = None,
    master_catalog_id: int = 1,
    catalog_id: int = 1,
    tenant_name: str = "Sandbox Tenant",
    tenant_domain: str | None = None,
    clock: Callable[[], float] = time.time,
    ticket_ttl_s: float = 3600,
    refresh_ttl_s: float = 86400,
    oversize_page: str = "error",
    cart_expiry_days: float = 14,
    event_endpoint: str | None = None,
    retry_delays_s: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0),
    max_attempts: int = 20,
    delivery_timeout_s: float = 45.0,
    resign_retries: bool = True,
    seed: int = 0,
    latency_ms: float = 0,
    p429: float = 0.0,
    p5xx: float = 0.0,
    pdrop: float = 0.0,
    **_ignored: Any,
) -> Flask:
    """A fresh Kibo sandbox app over ``store`` (options documented in the module docstring)."""
    if not store:
        raise ValueError("store (path to a storegen SQLite file) is required")
    if oversize_page not in ("error", "clamp"):
        raise ValueError("oversize_page must be 'error' or 'clamp'")
    config = KiboConfig(
        store=str(store),
        application_id=application_id,
        shared_secret=shared_secret,
        tenant_id=int(tenant_id),
        sites=[dict(s) for s in (sites or DEFAULT_SITES)],
        master_catalog_id=int(master_catalog_id),
        catalog_id=int(catalog_id),
        clock=clock,
        ticket_ttl_s=float(ticket_ttl_s),
        refresh_ttl_s=float(refresh_ttl_s),
        tenant_domain=tenant_domain,
        oversize_page=oversize_page,
        cart_expiry_days=float(cart_expiry_days),
        tenant_name=tenant_name,
    )
    st = KiboState(config=config)
    st.tickets = auth.TicketStore(st)
    st.events = events.EventSender(
        st,
        endpoint=event_endpoint,
        retry_delays_s=tuple(retry_delays_s),
        max_attempts=max_attempts,
        timeout_s=delivery_timeout_s,
        resign_retries=resign_retries,
    )
    app = Flask(__name__)
    app.json.sort_keys = False  # keep Kibo's field order
    app.extensions["kibo"] = st
    instrument(
        app,
        error_response=fault_response,
        seed=seed,
        latency_ms=latency_ms,
        p429=p429,
        p5xx=p5xx,
        pdrop=pdrop,
    )
    for module in (auth, customers, orders, carts, events_control, launcher):
        module.register(app)
    app.register_error_handler(HTTPException, _http_error)
    app.teardown_appcontext(st.release)
    return app
