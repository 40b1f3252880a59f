"""The Magento token exchange job: verifier → request token → access token, within 300 s."""

from __future__ import annotations

from datetime import datetime

from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import app_job
from cc_storeplugin.models import StoreConnection, utcnow
from cc_storeplugin.platforms.magento.client import MagentoClient
from cc_storeplugin.platforms.magento.errors import (
    MagentoConsumerExpired,
    MagentoError,
    MagentoUnavailable,
)
from cc_storeplugin.sync.connections import magento_state, record_exchange

CONSUMER_WINDOW_S = 300


@app_job
def exchange_magento_tokens(connection_id: int, generation: int) -> str:
    """Exchange the verifier of callback ``generation``; a newer callback makes this a no-op."""
    conn = db.session.get(StoreConnection, connection_id)
    if conn is None:
        return "gone"
    state = magento_state(conn)
    creds = conn.credentials or {}
    if state.get("generation") != generation or creds.get("access_token"):
        return "stale"
    client = MagentoClient(conn.store_base_url, creds["consumer_key"], creds["consumer_secret"])
    try:
        tokens = client.exchange_tokens(creds["verifier"])
    except MagentoConsumerExpired as exc:
        record_exchange(conn, outcome="expired", error=str(exc))
        return "expired"
    except MagentoUnavailable as exc:
        if _age_s(state.get("callback_at")) < CONSUMER_WINDOW_S:
            raise  # RQ retries quickly while Magento's window is still open
        record_exchange(conn, outcome="failed", error=f"Magento did not answer: {exc}")
        return "failed"
    except MagentoError as exc:
        record_exchange(conn, outcome="failed", error=str(exc))
        return "failed"
    record_exchange(conn, outcome="done", tokens=tokens)
    return "done"


def _age_s(iso: str | None) -> float:
    if not iso:
        return float("inf")
    return (utcnow() - datetime.fromisoformat(iso)).total_seconds()
