"""One CC request budget per app key, shared by every worker through Redis (DESIGN inv. 4).

CC allows 4 requests per second and 10,000 per UTC day per API key (spec B6) and sends no
rate-limit headers, so we count ourselves: a sliding one-second log in a sorted set stamped
with Redis' own clock (one clock for all machines) and a per-day counter, checked and taken
together in one Lua script.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from flask import current_app

from .errors import QuotaExhausted

__all__ = ["QuotaExhausted", "RateLimiter", "api_limiter", "token_limiter"]

DEFAULT_RATE_PER_S = 4
DEFAULT_DAILY_QUOTA = 10_000
DEFAULT_WINDOW_S = 1.05
"""A little over a second: CC counts arrivals, and requests sent 1.0 s apart may arrive closer."""

# KEYS: window zset, today's counter. ARGV: rate, window (us), quota (0 = none), member.
# Returns 0 (slot taken), -1 (quota used up) or the microseconds until a slot frees.
_ACQUIRE = """
local quota = tonumber(ARGV[3])
if quota > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= quota then
  return -1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
if quota > 0 then
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], 172800)
end
return 0
"""


class RateLimiter:
    """``rate_per_s`` requests per sliding ``window_s`` and ``daily_quota`` a UTC day for ``key``.

    :meth:`acquire` blocks (sleeping) until a slot is free and raises :class:`QuotaExhausted`
    once the day's quota is spent, without spending more.
    """

    def __init__(
        self,
        connection: redis.Redis,
        key: str,
        *,
        rate_per_s: int = DEFAULT_RATE_PER_S,
        daily_quota: int | None = DEFAULT_DAILY_QUOTA,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.key = key
        self.rate_per_s = int(rate_per_s)
        self.daily_quota = daily_quota
        self.window_s = window_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep
        self._script = connection.register_script(_ACQUIRE)

    def __repr__(self) -> str:
        return f"RateLimiter({self.key!r}, {self.rate_per_s}/s, {self.daily_quota}/day)"

    @property
    def window_key(self) -> str:
        return f"cc:rate:{self.key}"

    def day_key(self) -> str:
        """Today's counter (UTC date), so the quota resets at 00:00 UTC like CC's."""
        return f"cc:quota:{self.key}:{self._clock().astimezone(UTC):%Y%m%d}"

    def acquire(self, timeout_s: float | None = None) -> None:
        """Take one request slot, sleeping while the window is full."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        member = uuid.uuid4().hex
        while True:
            wait_us = int(
                self._script(
                    keys=[self.window_key, self.day_key()],
                    args=[
                        self.rate_per_s,
                        int(self.window_s * 1_000_000),
                        int(self.daily_quota or 0),
                        member,
                    ],
                )
            )
            if wait_us == 0:
                return
            if wait_us < 0:
                raise QuotaExhausted(self.used_today(), int(self.daily_quota or 0))
            wait_s = wait_us / 1_000_000
            if deadline is not None and time.monotonic() + wait_s > deadline:
                raise TimeoutError(f"no request slot for {self.key} within {timeout_s} s")
            self._sleep(wait_s)

    def used_today(self) -> int:
        """Requests counted against today's quota (all workers)."""
        return int(self.connection.get(self.day_key()) or 0)

    def remaining_today(self) -> int | None:
        """Requests left today, or None without a quota."""
        if not self.daily_quota:
            return None
        return max(0, int(self.daily_quota) - self.used_today())

    def exhaust(self) -> None:
        """CC said ``quota_exceeded``: stop every worker until the day rolls over."""
        if self.daily_quota:
            self.connection.set(self.day_key(), int(self.daily_quota), ex=172800)


def api_limiter(connection: redis.Redis | None = None) -> RateLimiter:
    """The app's v3 API limiter (key CC_CLIENT_ID; CC_RATE_PER_S, CC_DAILY_QUOTA settings)."""
    from cc_storeplugin.queueing import queues

    cfg = current_app.config
    quota = cfg.get("CC_DAILY_QUOTA", DEFAULT_DAILY_QUOTA)
    return RateLimiter(
        connection or queues.connection,
        f"{cfg.get('CC_CLIENT_ID') or 'default'}:api",
        rate_per_s=int(cfg.get("CC_RATE_PER_S") or DEFAULT_RATE_PER_S),
        daily_quota=int(quota) if quota else None,
        window_s=float(cfg.get("CC_RATE_WINDOW_S") or DEFAULT_WINDOW_S),
    )


def token_limiter(connection: redis.Redis | None = None) -> RateLimiter:
    """The token endpoint's own limit: 1 request/second per app key (spec B1), no quota."""
    from cc_storeplugin.queueing import queues

    cfg = current_app.config
    return RateLimiter(
        connection or queues.connection,
        f"{cfg.get('CC_CLIENT_ID') or 'default'}:token",
        rate_per_s=int(cfg.get("CC_TOKEN_RATE_PER_S") or 1),
        daily_quota=None,
        window_s=float(cfg.get("CC_RATE_WINDOW_S") or DEFAULT_WINDOW_S),
    )
