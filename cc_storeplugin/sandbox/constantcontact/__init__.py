"""Constant Contact v3 sandbox: the API under ``/v3`` and its OAuth2 server beside it.

``CC_API_BASE_URL=http://127.0.0.1:P/v3``, ``CC_AUTH_BASE_URL=http://127.0.0.1:P/oauth2/default/v1``.

``create_app(**options)`` options:

- ``clients``: ``{client_id: {"secret": str, "redirect_uris": [..] or None}}``; None means any
  loopback redirect URI. Default: ``sandbox-client`` / ``sandbox-secret``.
- ``accounts``: list of account dicts (``encoded_account_id``, ``organization_name``,
  ``contact_email``, ``emails: [{email_address, confirm_status, roles}]``, ...). Default: one.
- ``access_token_ttl_s`` (86400), ``refresh_idle_ttl_s`` (180 days), ``auto_approve`` (False:
  show the consent page with ``#allow``; True: redirect at once).
- ``clock``: callable returning epoch seconds (default ``time.time``); ``POST /_sandbox/clock
  {"advance_s": n}`` moves it forward.
- ``rate_per_s`` (4; None disables), ``daily_quota`` (10,000; None disables) per client_id;
  ``token_rate_per_s`` (None; CC documents 1/s for the token endpoint -> Okta 429 E0000047).
- ``import_delay_s`` (0.5): a queued activity is initialized, then processing, then completed.
- ``oversize``: ``"truncate"`` (default; as the swagger says, data past 4 MB is dropped) or
  ``"reject"`` (400). ``max_lists`` (1,000).
- ``db_path`` (None: private in-memory SQLite), ``seed`` (ids; 0), ``campaigns`` (3 seeded).
- Faults, forwarded to ``instrument``: ``latency_ms``, ``p429``, ``p5xx``, ``pdrop``,
  ``fault_seed``.

Control endpoints: ``POST /_sandbox/revoke {account?}``, ``POST /_sandbox/clock {advance_s}``,
``POST /_sandbox/unsubscribe {email, reason?}``, ``GET /_sandbox/lists/<list_id>/emails``,
``GET /_sandbox/state``, ``POST /_sandbox/send_campaign {name, list_ids?}``,
``POST /_sandbox/limits {rate_per_s, daily_quota}``, plus instrument's stats/log/faults/reset.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from . import (
    account,
    activities,
    api,
    contact_write,
    contacts,
    control,
    exports,
    lists,
    oauth2,
    reports,
    signup,
)
from .context import DEFAULT_ACCOUNTS, DEFAULT_CLIENT, Sandbox, Settings
from .errors import injected
from .ratelimit import RateLimiter
from .store import Store

__all__ = ["create_app"]


def create_app(
    clients: dict[str, dict[str, Any]] | None = None,
    accounts: list[dict[str, Any]] | None = None,
    access_token_ttl_s: float = 86400,
    refresh_idle_ttl_s: float = 180 * 86400,
    clock: Callable[[], float] | None = None,
    rate_per_s: float | None = 4,
    daily_quota: int | None = 10_000,
    token_rate_per_s: float | None = None,
    import_delay_s: float = 0.5,
    db_path: str | None = None,
    auto_approve: bool = False,
    oversize: str = "truncate",
    max_lists: int = 1000,
    seed: int = 0,
    campaigns: int = 3,
    latency_ms: float = 0,
    p429: float = 0.0,
    p5xx: float = 0.0,
    pdrop: float = 0.0,
    fault_seed: int = 0,
    **_ignored: Any,
) -> Flask:
    """Build a fresh, self-contained CC v3 sandbox app (see the module docstring)."""
    app = Flask(__name__)
    settings = Settings(
        clients=copy.deepcopy(clients or DEFAULT_CLIENT),
        accounts=copy.deepcopy(accounts or DEFAULT_ACCOUNTS),
        access_token_ttl_s=access_token_ttl_s,
        refresh_idle_ttl_s=refresh_idle_ttl_s,
        rate_per_s=rate_per_s,
        daily_quota=daily_quota,
        import_delay_s=import_delay_s,
        auto_approve=auto_approve,
        max_lists=max_lists,
        oversize=oversize,
    )
    base_clock = clock or time.time
    sb = Sandbox(settings=settings, store=None, clock=base_clock)  # type: ignore[arg-type]
    sb.store = Store(db_path, sb.now, seed=seed)
    sb.limiter = RateLimiter(rate_per_s, daily_quota, sb.now)
    if token_rate_per_s:
        sb.token_limiter = RateLimiter(token_rate_per_s, None, sb.now)
    app.extensions["cc_sandbox"] = sb
    from ..instrument import instrument

    instrument(
        app,
        error_response=injected,
        seed=fault_seed,
        latency_ms=latency_ms,
        p429=p429,
        p5xx=p5xx,
        pdrop=pdrop,
    )
    for module in (
        api,
        oauth2,
        contacts,
        contact_write,
        signup,
        lists,
        activities,
        exports,
        reports,
        account,
        control,
    ):
        module.register(app)
    _seed_campaigns(sb, campaigns)
    return app


def _seed_campaigns(sb: Sandbox, n: int) -> None:
    """A few past campaigns per account (no sends until contacts exist)."""
    existing = sb.store.one("SELECT COUNT(*) FROM campaigns")[0]
    for acc in sb.settings.accounts:
        for i in range(existing, n):
            reports.create_campaign(
                sb,
                acc["encoded_account_id"],
                f"Sandbox newsletter #{i + 1}",
                sb.now() - (n - i) * 7 * 86400,
            )
