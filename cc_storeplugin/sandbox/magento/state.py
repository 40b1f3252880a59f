"""Per-app state of the Magento sandbox: options, stores/websites, integrations, OAuth store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from .oauth1 import OauthStore
from .store import Store

STATUS_INACTIVE, STATUS_ACTIVE, STATUS_RECREATED = 0, 1, 2
BASE_URL_STYLES = ("plain", "index.php", "store_code", "index.php+store_code")


@dataclass
class Integration:
    """System > Extensions > Integrations row."""

    id: int
    name: str
    email: str
    endpoint: str
    identity_link_url: str
    consumer_id: int
    resources: list[str] | None  # None = "All"
    status: int = STATUS_INACTIVE
    posts: list[dict] = field(default_factory=list)  # outcomes of callback POSTs

    def public(self, consumer_key: str | None = None) -> dict[str, Any]:
        """JSON view for the control endpoints."""
        names = {0: "inactive", 1: "active", 2: "recreated"}
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "endpoint": self.endpoint,
            "identity_link_url": self.identity_link_url,
            "resources": self.resources or "all",
            "status": names[self.status],
            "oauth_consumer_key": consumer_key,
            "callback_posts": self.posts,
        }


@dataclass
class SandboxState:
    """Everything one Magento sandbox app holds."""

    store: Store
    oauth: OauthStore
    clock: Callable[[], float]
    store_codes: list[str]
    max_page_size: int | None
    default_page_size: int
    legacy_paging: bool
    bearer_tokens: bool
    base_url: str | None
    base_url_style: str
    callback_timeout_s: float
    stores: list[dict] = field(default_factory=list)
    websites: list[dict] = field(default_factory=list)
    integrations: dict[int, Integration] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now_text(self) -> str:
        """Current time in Magento's UTC text format."""
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.clock()))

    def store_base_url(self, host_url: str) -> str:
        """StoreManager::getStore()->getBaseUrl() as the admin request would compute it."""
        base = (self.base_url or host_url).rstrip("/") + "/"
        if "index.php" in self.base_url_style:
            base += "index.php/"
        if "store_code" in self.base_url_style:
            base += self.store_codes[0] + "/"
        return base


def build_stores(codes: list[str], website_ids: list[int]) -> tuple[list[dict], list[dict]]:
    """Store views (ids from 1 in the order given) and websites; website N gets store N."""
    sites = sorted({1, *website_ids})
    codes = list(codes)
    while len(codes) < max(sites):
        codes.append(f"store_{len(codes) + 1}")
    stores = []
    for i, code in enumerate(codes, 1):
        name = (
            "Default Store View" if code == "default" else f"{code.replace('_', ' ').title()} View"
        )
        site = i if i in sites else 1
        stores.append(
            {
                "id": i,
                "code": code,
                "name": name,
                "website_id": site,
                "store_group_id": site,
                "is_active": 1,
            }
        )
    websites = [
        {
            "id": w,
            "code": "base" if w == 1 else f"website_{w}",
            "name": "Main Website" if w == 1 else f"Website {w}",
            "default_group_id": w,
        }
        for w in sites
    ]
    return stores, websites


def state() -> SandboxState:
    """The state of the app serving the current request."""
    return current_app.extensions["magento"]
