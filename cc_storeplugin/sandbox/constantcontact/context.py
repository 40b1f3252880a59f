"""The per-app sandbox context: options, clock, store, OAuth grants and rate-limit state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from .store import Store

DEFAULT_CLIENT = {"sandbox-client": {"secret": "sandbox-secret", "redirect_uris": None}}
DEFAULT_ACCOUNTS = [
    {
        "encoded_account_id": "a07e1lsandbox0001",
        "organization_name": "Sandbox Outfitters",
        "first_name": "Sam",
        "last_name": "Merchant",
        "contact_email": "owner@sandbox-outfitters.example",
        "contact_phone": "555-010-0100",
        "country_code": "US",
        "state_code": "MA",
        "time_zone_id": "US/Eastern",
        "website": "https://sandbox-outfitters.example",
        "emails": [
            {
                "email_address": "owner@sandbox-outfitters.example",
                "confirm_status": "CONFIRMED",
                "roles": ["CONTACT", "BILLING", "REPLY_TO"],
            },
            {
                "email_address": "news@sandbox-outfitters.example",
                "confirm_status": "CONFIRMED",
                "roles": ["OTHER"],
            },
            {
                "email_address": "pending@sandbox-outfitters.example",
                "confirm_status": "UNCONFIRMED",
                "roles": ["OTHER"],
            },
        ],
    }
]


@dataclass
class Settings:
    """Options given to create_app (see the package docstring)."""

    clients: dict[str, dict[str, Any]]
    accounts: list[dict[str, Any]]
    access_token_ttl_s: float = 86400
    refresh_idle_ttl_s: float = 180 * 86400
    code_ttl_s: float = 300
    rate_per_s: float | None = 4
    daily_quota: int | None = 10_000
    import_delay_s: float = 0.5
    auto_approve: bool = False
    max_lists: int = 1000
    oversize: str = "truncate"
    max_queued_activities: int = 1000


@dataclass
class Sandbox:
    """Everything one app instance owns; stored in ``app.extensions["cc_sandbox"]``."""

    settings: Settings
    store: Store
    clock: Callable[[], float]
    rate_clock: Callable[[], float] = time.monotonic
    clock_offset: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh: dict[str, dict[str, Any]] = field(default_factory=dict)
    revoked_families: set[str] = field(default_factory=set)
    secret: bytes = b"cc-sandbox-signing-key"
    limiter: Any = None
    token_limiter: Any = None

    def now(self) -> float:
        """Sandbox time: the injected clock plus any /_sandbox/clock advance."""
        return self.clock() + self.clock_offset

    def account(self, account_id: str) -> dict[str, Any]:
        """Account settings by encoded id (first account if unknown)."""
        for acc in self.settings.accounts:
            if acc["encoded_account_id"] == account_id:
                return acc
        return self.settings.accounts[0]


def sandbox(app: Flask | None = None) -> Sandbox:
    """The Sandbox of ``app`` (default: the current app)."""
    return (app or current_app).extensions["cc_sandbox"]
