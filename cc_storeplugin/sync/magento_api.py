"""Build the Magento client of a connection from its encrypted credentials."""

from __future__ import annotations

from cc_storeplugin.models import StoreConnection
from cc_storeplugin.platforms.magento.client import MagentoClient


def client_for(conn: StoreConnection) -> MagentoClient:
    """A signed client for the connection's store and chosen store view."""
    creds = conn.credentials or {}
    if not creds.get("access_token"):
        raise LookupError(f"connection {conn.id} has no Magento access token yet")
    store = (conn.settings or {}).get("store") or {}
    return MagentoClient(
        conn.store_base_url,
        creds["consumer_key"],
        creds["consumer_secret"],
        creds["access_token"],
        creds["access_token_secret"],
        store_code=store.get("code", "default"),
    )
