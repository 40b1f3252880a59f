"""Kibo event sender: builds, signs, fans out and retries event deliveries (spec A1).

Body, compact JSON exactly as captured from Kibo: ``{"eventId","topic","entityId",
"timestamp" (7 fractional digits, Z),"correlationId","isTest"}`` plus ``extendedProperties``
``[{key, value}]`` only when given. Headers: ``Content-Type: application/json``, ``Date``
(RFC 1123), ``x-vol-hmac-sha256`` (:func:`signing.kibo_hash` over Date + raw body),
``x-vol-tenant``, ``x-vol-site``, ``x-vol-master-catalog``, ``x-vol-catalog``,
``x-vol-tenant-domain``, ``x-vol-site-domain``, ``x-vol-correlation``, ``x-vol-locale``,
``x-vol-currency``.

Tenant-level topics (customer accounts and segments, application, tenant, product) go out
once per site, each copy with its own ``eventId`` and the same ``correlationId``; site-level
topics (order.*, cart.*, ...) go to one site (an order's own site when not given).
A delivery succeeds only on HTTP 200; anything else (status, timeout, connection error) is
retried after ``retry_delays_s`` (the last delay repeats) up to ``max_attempts``. Real Kibo
retries about every minute for 14 days; the sandbox defaults are fast for tests. Each retry
gets a fresh Date and signature (``resign_retries``; unconfirmed for real Kibo, spec A1).

Control endpoints (:mod:`.events_control`): ``POST /_sandbox/endpoint {"url"}`` (null
disables), ``GET /_sandbox/endpoint``; ``POST /_sandbox/events`` one event ``{topic,
entityId, siteId?, extendedProperties?, isTest?, correlationId?, staleDateSeconds?,
badSignature?, holdSeconds?}`` or ``{"events": [...]}`` delivered in the given order (for
out-of-order topics) -> 202 ``{"deliveries": [...]}``; ``GET
/_sandbox/deliveries[?topic=&status=]``; ``GET /_sandbox/deliveries/{id}``; ``POST
/_sandbox/deliveries/{id}/replay {keepDate?, staleDateSeconds?, badSignature?}`` (same body
and eventId: a duplicate); ``POST /_sandbox/events/wait {"timeout"}`` -> ``{"idle"}``;
``POST /_sandbox/retry-policy {delays, maxAttempts, timeoutSeconds}``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from .common import KiboState
from .signing import format_http_date, kibo_hash

TENANT_LEVEL = ("customeraccount.", "customersegment.", "application.", "tenant.", "product.")


def is_tenant_level(topic: str) -> bool:
    """Tenant-level topics fan out to every site of the tenant."""
    return topic.lower().startswith(TENANT_LEVEL)


def event_timestamp(epoch: float) -> str:
    """Kibo's event timestamp: ISO-8601 with 7 fractional digits and ``Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def build_event_body(
    topic: str,
    entity_id: str,
    *,
    event_id: str | None = None,
    timestamp: str | None = None,
    correlation_id: str | None = None,
    is_test: bool = False,
    extended_properties: list[dict[str, Any]] | None = None,
) -> bytes:
    """The exact bytes Kibo POSTs for one event."""
    body: dict[str, Any] = {
        "eventId": event_id or str(uuid.uuid4()),
        "topic": topic,
        "entityId": str(entity_id),
        "timestamp": timestamp or event_timestamp(time.time()),
        "correlationId": correlation_id or uuid.uuid4().hex,
        "isTest": bool(is_test),
    }
    if extended_properties:
        body["extendedProperties"] = [
            {"key": str(p["key"]), "value": p.get("value")} for p in extended_properties
        ]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signed_headers(
    shared_secret: str,
    body: bytes,
    *,
    date: str,
    tenant_id: int,
    site_id: int,
    tenant_domain: str,
    master_catalog_id: int = 1,
    catalog_id: int = 1,
    correlation_id: str = "",
    bad_signature: bool = False,
) -> dict[str, str]:
    """Headers of one delivery, signed like Kibo (``bad_signature`` signs with a wrong secret)."""
    secret = shared_secret + ("-wrong" if bad_signature else "")
    return {
        "Content-Type": "application/json",
        "Date": date,
        "x-vol-hmac-sha256": kibo_hash(secret, date, body),
        "x-vol-tenant": str(tenant_id),
        "x-vol-site": str(site_id),
        "x-vol-master-catalog": str(master_catalog_id),
        "x-vol-catalog": str(catalog_id),
        "x-vol-tenant-domain": tenant_domain,
        "x-vol-site-domain": tenant_domain,
        "x-vol-correlation": correlation_id,
        "x-vol-locale": "en-US",
        "x-vol-currency": "USD",
    }


@dataclass
class Delivery:
    """One (event, site) delivery and its attempts."""

    id: int
    topic: str
    entity_id: str
    site_id: int
    body: bytes
    correlation_id: str
    stale_date_s: float = 0.0
    bad_signature: bool = False
    replay_of: int | None = None
    fixed_headers: dict[str, str] | None = None
    status: str = "pending"
    next_at: float = 0.0
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body = json.loads(self.body)
        return {
            "id": self.id,
            "eventId": body["eventId"],
            "topic": self.topic,
            "entityId": self.entity_id,
            "siteId": self.site_id,
            "status": self.status,
            "replayOf": self.replay_of,
            "attempts": list(self.attempts),
            "body": self.body.decode("utf-8"),
        }


class EventSender:
    """Background-thread sender for one sandbox app (started on first use)."""

    def __init__(
        self,
        st: KiboState,
        endpoint: str | None = None,
        retry_delays_s: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0),
        max_attempts: int = 20,
        timeout_s: float = 45.0,
        resign_retries: bool = True,
    ) -> None:
        self.st = st
        self.endpoint = endpoint
        self.retry_delays_s = tuple(retry_delays_s) or (60.0,)
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.resign_retries = resign_retries
        self._cond = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._session = requests.Session()

    # --- public API ----------------------------------------------------------------
    def emit(
        self,
        topic: str,
        entity_id: str,
        *,
        site_id: int | None = None,
        extended_properties: list[dict[str, Any]] | None = None,
        is_test: bool = False,
        correlation_id: str | None = None,
        stale_date_s: float = 0.0,
        bad_signature: bool = False,
        hold_s: float = 0.0,
    ) -> list[dict[str, Any]]:
        """Queue an event (fanned out per site when tenant-level); returns the deliveries."""
        correlation = correlation_id or uuid.uuid4().hex
        stamp = event_timestamp(self.st.now())
        if site_id is not None:
            sites = [int(site_id)]
        elif is_tenant_level(topic):
            sites = self.st.site_ids()
        else:
            sites = [self._site_of(topic, str(entity_id))]
        made = []
        with self._cond:
            for site in sites:
                body = build_event_body(
                    topic,
                    str(entity_id),
                    timestamp=stamp,
                    correlation_id=correlation,
                    is_test=is_test,
                    extended_properties=extended_properties,
                )
                made.append(
                    self._add(
                        Delivery(
                            id=0,
                            topic=topic,
                            entity_id=str(entity_id),
                            site_id=site,
                            body=body,
                            correlation_id=correlation,
                            stale_date_s=stale_date_s,
                            bad_signature=bad_signature,
                            next_at=time.monotonic() + hold_s,
                        )
                    )
                )
        return made

    def notify(self, topic: str, entity_id: str, **kw: Any) -> list[dict[str, Any]]:
        """Emit only when an endpoint is configured (what data changes call)."""
        return self.emit(topic, entity_id, **kw) if self.endpoint else []

    def replay(
        self,
        delivery_id: int,
        keep_date: bool = False,
        stale_date_s: float | None = None,
        bad_signature: bool | None = None,
    ) -> dict[str, Any] | None:
        """Send a delivery's exact body (same eventId) again: a duplicate."""
        with self._cond:
            orig = self._get(delivery_id)
            if orig is None:
                return None
            fixed = None
            if keep_date and orig.attempts:
                fixed = dict(orig.attempts[0]["headers"])
            return self._add(
                Delivery(
                    id=0,
                    topic=orig.topic,
                    entity_id=orig.entity_id,
                    site_id=orig.site_id,
                    body=orig.body,
                    correlation_id=orig.correlation_id,
                    stale_date_s=orig.stale_date_s if stale_date_s is None else stale_date_s,
                    bad_signature=orig.bad_signature if bad_signature is None else bad_signature,
                    replay_of=orig.id,
                    fixed_headers=fixed,
                    next_at=time.monotonic(),
                )
            )

    def deliveries(self) -> list[dict[str, Any]]:
        with self._cond:
            return [d.as_json() for d in self._deliveries]

    def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        with self._cond:
            d = self._get(delivery_id)
            return d.as_json() if d else None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no delivery is pending; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(d.status == "pending" for d in self._deliveries):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._session.close()

    # --- internals -----------------------------------------------------------------
    def _get(self, delivery_id: int) -> Delivery | None:
        if 1 <= delivery_id <= len(self._deliveries):
            return self._deliveries[delivery_id - 1]
        return None

    def _add(self, delivery: Delivery) -> dict[str, Any]:
        delivery.id = len(self._deliveries) + 1
        self._deliveries.append(delivery)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kibo-events", daemon=True)
            self._thread.start()
        self._cond.notify_all()
        return delivery.as_json()

    def _site_of(self, topic: str, entity_id: str) -> int:
        if topic.lower().startswith("order."):
            from .orders import load_order_row

            row = load_order_row(self.st, entity_id)
            if row is not None:
                return self.st.site_for_store(row["store_id"])
        return self.st.site_ids()[0]

    def _next_due(self) -> Delivery | None:
        """Wait for the earliest due pending delivery (None when stopping)."""
        with self._cond:
            while not self._stopping:
                pending = [d for d in self._deliveries if d.status == "pending"]
                if pending:
                    first = min(pending, key=lambda d: (d.next_at, d.id))
                    wait = first.next_at - time.monotonic()
                    if wait <= 0:
                        return first
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _headers(self, d: Delivery) -> dict[str, str]:
        if d.fixed_headers is not None:
            return d.fixed_headers
        if d.attempts and not self.resign_retries:
            return d.attempts[0]["headers"]
        cfg = self.st.config
        return signed_headers(
            cfg.shared_secret,
            d.body,
            date=format_http_date(self.st.now() - d.stale_date_s),
            tenant_id=cfg.tenant_id,
            site_id=d.site_id,
            tenant_domain=self.st.tenant_domain(),
            master_catalog_id=cfg.master_catalog_id,
            catalog_id=cfg.catalog_id,
            correlation_id=d.correlation_id,
            bad_signature=d.bad_signature,
        )

    def _run(self) -> None:
        while True:
            d = self._next_due()
            if d is None:
                return
            headers = self._headers(d)
            url = self.endpoint
            t0 = time.perf_counter()
            status, error = 0, None
            if not url:
                error = "no event endpoint configured"
            else:
                try:
                    resp = self._session.post(
                        url, data=d.body, headers=headers, timeout=self.timeout_s
                    )
                    status = resp.status_code
                except requests.RequestException as exc:
                    error = f"{type(exc).__name__}: {exc}"
            with self._cond:
                d.attempts.append(
                    {
                        "n": len(d.attempts) + 1,
                        "at": event_timestamp(time.time()),
                        "url": url,
                        "headers": headers,
                        "status": status,
                        "error": error,
                        "ms": round((time.perf_counter() - t0) * 1000, 3),
                    }
                )
                if status == 200:
                    d.status = "delivered"
                elif len(d.attempts) >= self.max_attempts:
                    d.status = "failed"
                else:
                    delays = self.retry_delays_s
                    d.next_at = time.monotonic() + delays[min(len(d.attempts) - 1, len(delays) - 1)]
                self._cond.notify_all()
