"""Connection lifecycle: Magento callback received, tokens exchanged, completed, disconnected.

Jobs of a connection that is disconnected (the store revoked access) or whose merchant must
reconnect Constant Contact are *paused*: they return without doing work or failing, and
resume once the merchant fixes the cause.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import enqueue
from cc_storeplugin.models import StoreConnection, utcnow
from cc_storeplugin.platforms.magento.handshake import is_insecure

DISCONNECTED_REASON = "disconnected — reauthorize in Magento"
CONNECTED_STATUSES = ("importing", "active")


def magento_urls(conn: StoreConnection) -> dict[str, str]:
    """The two URLs the merchant pastes into Magento's integration form."""
    base = f"{current_app.config['PUBLIC_BASE_URL']}/magento/connections/{conn.key}"
    return {"callback_url": f"{base}/callback", "identity_link_url": f"{base}/identity"}


def magento_state(conn: StoreConnection) -> dict[str, Any]:
    """The handshake's non-secret state kept in ``settings['magento']``."""
    return dict((conn.settings or {}).get("magento") or {})


def _save_magento_state(conn: StoreConnection, state: dict[str, Any]) -> None:
    conn.settings = {**(conn.settings or {}), "magento": state}


def paused_reason(conn: StoreConnection) -> str | None:
    """Why this connection's jobs must not run now, or None."""
    if conn.status == "disconnected":
        return conn.status_reason or DISCONNECTED_REASON
    if conn.merchant.cc_auth_state != "connected":
        return "Constant Contact authorization lapsed — sign in again to resume"
    return None


def receive_magento_callback(conn: StoreConnection, data: dict[str, str]) -> int:
    """Store the consumer credentials from Magento's POST and enqueue the token exchange.

    A POST for the same consumer key on a connected store is a Reauthorize: Magento has
    already deleted the old access token, so it is dropped here too and the connection
    resumes its previous status once the new exchange succeeds.
    """
    previous = conn.credentials or {}
    state = magento_state(conn)
    reauthorize = previous.get("consumer_key") == data["oauth_consumer_key"]
    if reauthorize and conn.status in (*CONNECTED_STATUSES, "disconnected"):
        state["resume_status"] = state.get("resume_status") or (
            "active" if conn.status == "disconnected" else conn.status
        )
    generation = int(state.get("generation", 0)) + 1
    state.update(
        generation=generation,
        exchange="pending",
        exchange_error=None,
        callback_at=utcnow().isoformat(),
        insecure=is_insecure(data["store_base_url"]),
    )
    conn.credentials = {
        "consumer_key": data["oauth_consumer_key"],
        "consumer_secret": data["oauth_consumer_secret"],
        "verifier": data["oauth_verifier"],
    }
    conn.store_base_url = data["store_base_url"]
    conn.status = "connecting"
    conn.status_reason = None
    _save_magento_state(conn, state)
    db.session.commit()
    from cc_storeplugin.sync.magento_connect import exchange_magento_tokens

    enqueue(
        exchange_magento_tokens,
        conn.id,
        generation,
        queue="default",
        job_id=f"magento-exchange-{conn.id}-{generation}",
        timeout=120,
        retry=_fast_retry(),
    )
    return generation


def _fast_retry():
    """Magento expires the consumer 300 s after its POST: retry quickly inside that window."""
    from rq import Retry

    return Retry(max=5, interval=[2, 5, 10, 30, 60])


def record_exchange(
    conn: StoreConnection,
    *,
    outcome: str,
    error: str | None = None,
    tokens: tuple[str, str] | None = None,
) -> None:
    """Save the exchange's outcome; on success a reauthorized connection resumes."""
    state = magento_state(conn)
    state.update(exchange=outcome, exchange_error=error)
    if tokens is not None:
        creds = dict(conn.credentials or {})
        creds.update(access_token=tokens[0], access_token_secret=tokens[1])
        conn.credentials = creds
        resume = state.pop("resume_status", None)
        if resume:
            conn.status, conn.status_reason = resume, None
    _save_magento_state(conn, state)
    db.session.commit()
    if tokens is not None:
        resume_paused_runs(conn.id)


def resume_paused_runs(connection_id: int) -> list[int]:
    """Re-enqueue the unfinished imports a pause stopped; they continue from their checkpoint."""
    from sqlalchemy import select

    from cc_storeplugin.models import SyncRun
    from cc_storeplugin.sync.import_job import enqueue_run

    runs = db.session.scalars(
        select(SyncRun).where(
            SyncRun.connection_id == connection_id,
            SyncRun.kind == "import",
            SyncRun.status.in_(("QUEUED", "RUNNING")),
            SyncRun.phase.like("paused%"),
        )
    ).all()
    for run in runs:
        enqueue_run(run.id, resume=True)
    return [r.id for r in runs]


def complete_magento_integration(conn: StoreConnection, store: dict[str, Any]) -> int:
    """Save the merchant's store choice, mark the connection importing, enqueue the import."""
    conn.settings = {**(conn.settings or {}), "store": store}
    conn.status = "importing"
    conn.status_reason = None
    db.session.commit()
    from cc_storeplugin.sync.import_job import start_import

    return start_import(conn.id)


def mark_disconnected(connection_id: int, reason: str = DISCONNECTED_REASON) -> None:
    """The store revoked access (a 401 on a token that used to work): pause and tell."""
    conn = db.session.get(StoreConnection, connection_id)
    if conn is None or conn.status in ("disconnected", "connecting"):
        return  # already paused, or a Reauthorize is replacing the token right now
    state = magento_state(conn)
    state["resume_status"] = conn.status if conn.status in CONNECTED_STATUSES else "active"
    _save_magento_state(conn, state)
    conn.status, conn.status_reason = "disconnected", reason
    db.session.commit()
