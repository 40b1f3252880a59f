"""Per-API-key limits as CC applies them: N requests per sliding second and a daily quota.

The day rolls over at 00:00 UTC of the sandbox clock; the per-second window uses a real
monotonic clock so frozen test clocks do not throttle forever. Throttled requests do not
consume quota.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable


class RateLimiter:
    """Decides ``None`` (allowed), ``"throttled"`` or ``"quota_exceeded"`` per client id."""

    def __init__(
        self,
        rate_per_s: float | None,
        daily_quota: int | None,
        day_clock: Callable[[], float],
        window_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.daily_quota = daily_quota
        self.day_clock = day_clock
        self.window_clock = window_clock
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._days: dict[str, tuple[int, int]] = {}

    def check(self, client_id: str) -> str | None:
        """Count one request for ``client_id`` unless it is over a limit."""
        with self._lock:
            day = int(self.day_clock() // 86400)
            used_day, used = self._days.get(client_id, (day, 0))
            if used_day != day:
                used = 0
            if self.daily_quota is not None and used >= self.daily_quota:
                return "quota_exceeded"
            if self.rate_per_s:
                now = self.window_clock()
                window = self._windows[client_id]
                while window and now - window[0] >= 1.0:
                    window.popleft()
                if len(window) >= self.rate_per_s:
                    return "throttled"
                window.append(now)
            self._days[client_id] = (day, used + 1)
            return None

    def used_today(self, client_id: str) -> int:
        """Requests counted against today's quota for ``client_id``."""
        with self._lock:
            day, used = self._days.get(client_id, (None, 0))
            return used if day == int(self.day_clock() // 86400) else 0

    def configure(self, **kw: float | int | None) -> None:
        """Change ``rate_per_s`` / ``daily_quota`` at run time (control endpoint)."""
        with self._lock:
            for key in ("rate_per_s", "daily_quota"):
                if key in kw:
                    setattr(self, key, kw[key])
