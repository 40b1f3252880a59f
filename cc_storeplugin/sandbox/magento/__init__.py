"""Magento 2 sandbox: integration activation, OAuth 1.0a token exchange and signed REST.

``create_app(**options)`` options:

- ``store`` (required): path of a store SQLite file (schema in ``sandbox.storegen``).
- ``store_codes`` (``["default"]``): store views, ids from 1; ``/rest/<code>/V1`` accepts them
  and ``all``; ``/rest/V1`` is the first one. Website N of the store file's ``meta.websites``
  gets store view N (``store_<N>`` when fewer codes are given).
- ``max_page_size`` (None): None = input limiting off (no ``pageSize`` → all rows); a number
  (300 on 2.4.7+ with limits on) rejects larger pages with 400 "Maximum SearchCriteria
  pageSize is %max" and applies ``default_page_size`` (20) when ``pageSize`` is omitted.
- ``legacy_paging`` (False): ≤2.3 behaviour, a ``currentPage`` past the end returns the last
  page again (2.4 returns no items).
- ``bearer_tokens`` (False): accept ``Authorization: Bearer <access token>`` (2.4.4+ only when
  the merchant enables ``oauth/consumer/enable_integration_as_bearer``).
- ``consumer_window_s`` (300): request-token deadline after the callback POST.
- ``callback_timeout_s`` (5): timeout of the callback POST.
- ``base_url`` (None = the request's host URL) and ``base_url_style`` ("plain", "index.php",
  "store_code", "index.php+store_code"): the ``store_base_url`` sent to the Callback URL.
- ``clock`` (``time.time``): epoch-seconds callable, for tests.
- ``seed``, ``latency_ms``, ``p429``, ``p5xx``, ``pdrop``: fault injection (``instrument``).

Control endpoints (besides ``/_sandbox/stats|log|faults|reset`` from ``instrument``):
``POST /_sandbox/integrations`` ``{name, email, endpoint, identity_link_url, resources}``,
``GET /_sandbox/integrations[/<id>]``, ``DELETE /_sandbox/integrations/<id>``,
``POST /_sandbox/integrations/<id>/activate`` and ``/reauthorize`` → ``{oauth_consumer_key,
popup_url, success_call_back, callback_post: {status | error}}``.

Store endpoints: ``POST [index.php/][<code>/]oauth/token/request|access``; REST under
``/[index.php/]rest[/<code>]/V1/``: customers/search, customers/{id} (GET, PUT), orders,
orders/{id}, carts/search, carts/{id}/totals, store/storeViews, store/websites; ``?fields=``
partial responses. Call counters are keyed by URL rule, e.g.
``"GET /<mgrest:base>/V1/customers/search"``.

Integrations and tokens live in the app's memory: serve it from one process (threads are
fine), e.g. ``gunicorn -w 1 -k gthread --threads 4 'cc_storeplugin.sandbox.magento:create_app(
store="store.sqlite")'``. The store file is read per request, so a changed file is seen at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, Response

from ..instrument import instrument
from . import admin, oauth_routes, rest
from .oauth1 import OauthStore
from .state import BASE_URL_STYLES, SandboxState, build_stores
from .store import Store


def error_response(status: int) -> Response:
    """Magento-shaped body for injected faults."""
    message = "Too Many Requests" if status == 429 else "Internal Error. Please try again later."
    return rest.json_response({"message": message, "parameters": []}, status)


def create_app(
    store: str,
    store_codes: list[str] | None = None,
    max_page_size: int | None = None,
    default_page_size: int = 20,
    legacy_paging: bool = False,
    bearer_tokens: bool = False,
    consumer_window_s: float = 300,
    callback_timeout_s: float = 5.0,
    base_url: str | None = None,
    base_url_style: str = "plain",
    clock: Callable[[], float] | None = None,
    seed: int = 0,
    latency_ms: float = 0,
    p429: float = 0.0,
    p5xx: float = 0.0,
    pdrop: float = 0.0,
) -> Flask:
    """A fresh Magento sandbox app over the store file ``store``."""
    if not store:
        raise ValueError("the Magento sandbox needs store=<path of a store SQLite file>")
    if base_url_style not in BASE_URL_STYLES:
        raise ValueError(f"base_url_style must be one of {BASE_URL_STYLES}")
    codes = list(store_codes or ["default"])
    clock = clock or time.time
    db = Store(store)
    meta = dict(db.query("SELECT key, value FROM meta"))
    sites = [int(w) for w in meta.get("websites", "1").split(",") if w.strip().isdigit()]
    stores, websites = build_stores(codes, sites)
    app = Flask(__name__)
    app.extensions["magento"] = SandboxState(
        store=db,
        oauth=OauthStore(clock, consumer_window_s),
        clock=clock,
        store_codes=codes,
        max_page_size=int(max_page_size) if max_page_size else None,
        default_page_size=int(default_page_size),
        legacy_paging=bool(legacy_paging),
        bearer_tokens=bool(bearer_tokens),
        base_url=base_url,
        base_url_style=base_url_style,
        callback_timeout_s=float(callback_timeout_s),
        stores=stores,
        websites=websites,
    )
    instrument(
        app,
        error_response=error_response,
        seed=seed,
        latency_ms=latency_ms,
        p429=p429,
        p5xx=p5xx,
        pdrop=pdrop,
    )
    admin.register(app)
    oauth_routes.register(app)
    rest.register(app)
    return app
