"""One CC budget on real Redis: 4 requests/s and the daily quota across workers, and
refreshes of single-use tokens serialised per account (DESIGN invariant 4)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
import requests
import responses

from cc_storeplugin.constantcontact import oauth2
from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.errors import QuotaExhausted, ReauthorizationRequired
from cc_storeplugin.constantcontact.ratelimit import RateLimiter
from cc_storeplugin.extensions import db
from cc_storeplugin.models.merchants import Merchant
from tests.conftest import dispose_engines, make_app

from . import API, add_merchant, cc_sandbox, cc_settings, sandbox_calls, sandbox_sign_in

pytestmark = pytest.mark.redis
TOKEN_KEY = "POST /oauth2/default/v1/token"


def test_three_workers_share_four_requests_per_second(redis_url) -> None:
    stamps: list[float] = []
    guard = threading.Lock()
    conns = [redis.Redis.from_url(redis_url) for _ in range(3)]

    def worker(conn: redis.Redis) -> None:
        limiter = RateLimiter(conn, "app-rate", rate_per_s=4, daily_quota=None)
        for _ in range(4):
            limiter.acquire()
            with guard:
                stamps.append(time.monotonic())

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for c in conns:
        c.close()
    assert len(stamps) == 12
    stamps.sort()
    assert stamps[-1] - start >= 2.0
    assert stamps[-1] - start < 4.0
    busiest = max(sum(1 for u in stamps if t <= u < t + 1.0) for t in stamps)
    assert busiest == 4


def test_the_daily_quota_stops_every_worker_until_midnight_utc(redis_url) -> None:
    conn = redis.Redis.from_url(redis_url)
    now = [datetime(2026, 11, 23, 23, 58, tzinfo=UTC)]

    def limiter() -> RateLimiter:
        return RateLimiter(conn, "app-quota", rate_per_s=100, daily_quota=5, clock=lambda: now[0])

    a, b = limiter(), limiter()
    for _ in range(3):
        a.acquire()
    for _ in range(2):
        b.acquire()
    for worker in (a, b):
        with pytest.raises(QuotaExhausted) as info:
            worker.acquire()
    assert (info.value.used, info.value.quota) == (5, 5)
    assert a.used_today() == 5 and a.remaining_today() == 0  # refusals spend nothing
    now[0] += timedelta(minutes=3)  # 00:01 UTC, a new day
    a.acquire()
    assert b.used_today() == 1
    conn.close()


@responses.activate
def test_the_client_stops_at_the_configured_quota(redis_url, sqlite_url) -> None:
    app = make_app(sqlite_url, REDIS_URL=redis_url, **cc_settings(CC_DAILY_QUOTA=2))
    responses.get(API + "/contacts", json={"contacts": []})
    with app.app_context():
        db.create_all()
        merchant = add_merchant()
        client = CCClient(merchant.id)
        client.request("GET", "/contacts")
        CCClient(merchant.id).request("GET", "/contacts")
        with pytest.raises(QuotaExhausted):
            client.request("GET", "/contacts")
        assert len(responses.calls) == 2
        db.session.remove()
        dispose_engines()
    app.extensions["cc_queues"].connection.close()


def test_two_workers_refreshing_at_once_spend_the_refresh_token_once(redis_url, sqlite_url) -> None:
    with cc_sandbox(latency_ms=300) as (server, settings):
        app = make_app(sqlite_url, REDIS_URL=redis_url, **settings)
        with app.app_context():
            db.create_all()
            merchant = sandbox_sign_in()
            merchant_id, old_access, old_refresh = (
                merchant.id,
                merchant.cc_access_token,
                merchant.cc_refresh_token,
            )
            merchant.cc_token_expires_at = datetime.now(UTC) - timedelta(minutes=1)
            db.session.commit()
            db.session.remove()
        assert sandbox_calls(server.url, TOKEN_KEY) == 1  # the code exchange

        barrier = threading.Barrier(2)
        tokens: dict[str, str] = {}
        failures: list[BaseException] = []

        def worker(name: str) -> None:
            with app.app_context():
                try:
                    barrier.wait(10)
                    tokens[name] = oauth2.access_token_for(merchant_id)
                except BaseException as exc:
                    failures.append(exc)
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert failures == []
        assert tokens["a"] == tokens["b"] != old_access
        assert sandbox_calls(server.url, TOKEN_KEY) == 2  # exactly one refresh

        with app.app_context():
            stored = db.session.get(Merchant, merchant_id)
            assert stored.cc_auth_state == "connected"
            assert stored.cc_access_token == tokens["a"]
            assert stored.cc_refresh_token not in (None, old_refresh)
            summary = CCClient(merchant_id).account_summary()
            assert summary["encoded_account_id"] == stored.cc_account_id
            # The rotated refresh token still works: the grant was not revoked ...
            newest = oauth2.force_refresh(merchant_id, stale_token=tokens["a"])
            assert newest != tokens["a"]
            # ... whereas a second spend of the old one (what an unlocked worker would do)
            # kills the whole grant, which is why refreshes wait for each other.
            reuse = requests.post(
                server.url + "/oauth2/default/v1/token",
                data={"grant_type": "refresh_token", "refresh_token": old_refresh},
                auth=(settings["CC_CLIENT_ID"], settings["CC_CLIENT_SECRET"]),
                timeout=10,
            )
            assert reuse.json()["error"] == "invalid_grant"
            with pytest.raises(ReauthorizationRequired):
                CCClient(merchant_id).account_summary()
            db.session.remove()
            dispose_engines()
        app.extensions["cc_queues"].connection.close()
