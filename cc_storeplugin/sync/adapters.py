"""The source adapter of a connection, built from its encrypted credentials and settings."""

from __future__ import annotations

from flask import current_app

from cc_storeplugin.models import StoreConnection
from cc_storeplugin.platforms.base import SourceAdapter


def adapter_for(conn: StoreConnection) -> SourceAdapter:
    """Magento: the OAuth1-signed client of the chosen store view; Kibo: the tenant's app client."""
    if conn.platform == "magento":
        from cc_storeplugin.platforms.magento.adapter import MagentoAdapter
        from cc_storeplugin.sync.magento_api import client_for

        return MagentoAdapter(client_for(conn))
    if conn.platform == "kibo":
        from cc_storeplugin.platforms.kibo.adapter import KiboAdapter
        from cc_storeplugin.platforms.kibo.client import KiboClient

        cfg = current_app.config
        settings = conn.settings or {}
        client = KiboClient(
            cfg["KIBO_HOME_BASE_URL"], cfg["KIBO_APPLICATION_ID"], cfg["KIBO_SHARED_SECRET"],
            int(conn.external_id), site_id=settings.get("site_id"),
            tenant_host=settings.get("tenant_host"),
        )  # fmt: skip
        return KiboAdapter(client)
    raise ValueError(f"no adapter for platform {conn.platform!r}")
