"""Call counters, a request log and seeded fault injection for any sandbox app.

``instrument(app, ...)`` returns a :class:`SandboxControl` (also stored in
``app.extensions["sandbox"]``) and registers the control endpoints:

- ``GET /_sandbox/stats``  -> ``{"calls": {"METHOD /url-rule": n}, "total": n, "faults": {...}}``
- ``GET /_sandbox/log?limit=N`` -> ``{"entries": [{method, path, query, status, ms, fault}]}``
  (newest last; default limit 100)
- ``POST /_sandbox/faults`` with JSON ``{latency_ms, p429, p5xx, pdrop, seed}`` (any subset)
- ``POST /_sandbox/reset`` clears counters and log and re-seeds the fault RNG; with JSON
  ``{"faults": true}`` it also restores the faults given to ``instrument``.

Faults are drawn from ``random.Random(seed)`` under a lock, one draw per instrumented
request, so the same seed and the same request sequence give the same faults. Paths under
``exempt_prefixes`` (always including ``/_sandbox``) are neither counted nor faulted.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g, jsonify, request

FAULT_KEYS = ("latency_ms", "p429", "p5xx", "pdrop", "seed")
SERVER_ERRORS = (500, 502, 503)
LOG_SIZE = 10_000


def default_error_response(status: int) -> Response:
    """Generic JSON error body for an injected fault when the sandbox supplies none."""
    message = "Too many requests" if status == 429 else "Injected server error"
    resp = jsonify({"message": message})
    resp.status_code = status
    return resp


class SandboxControl:
    """Per-app counters, bounded request log and fault settings; all methods thread-safe."""

    def __init__(
        self,
        error_response: Callable[[int], Response] | None = None,
        seed: int = 0,
        latency_ms: float = 0,
        p429: float = 0.0,
        p5xx: float = 0.0,
        pdrop: float = 0.0,
        exempt_prefixes: Iterable[str] = ("/_sandbox",),
        log_size: int = LOG_SIZE,
    ) -> None:
        self.error_response = error_response or default_error_response
        self.exempt_prefixes = tuple(dict.fromkeys(("/_sandbox", *exempt_prefixes)))
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._initial = {}
        self._faults: dict[str, Any] = {}
        self.set_faults(seed=seed, latency_ms=latency_ms, p429=p429, p5xx=p5xx, pdrop=pdrop)
        self._initial = dict(self._faults)

    # --- reading -------------------------------------------------------------------
    @property
    def calls(self) -> dict[str, int]:
        """Snapshot of call counts keyed ``"METHOD /url-rule"``."""
        with self._lock:
            return dict(self._calls)

    @property
    def log(self) -> list[dict[str, Any]]:
        """Snapshot of the request log, oldest first (bounded to the last ``log_size``)."""
        with self._lock:
            return list(self._log)

    @property
    def faults(self) -> dict[str, Any]:
        """Current fault settings."""
        with self._lock:
            return dict(self._faults)

    def total(self) -> int:
        """Total instrumented calls since the last reset."""
        with self._lock:
            return sum(self._calls.values())

    # --- control -------------------------------------------------------------------
    def set_faults(self, **kw: Any) -> dict[str, Any]:
        """Change any of latency_ms, p429, p5xx, pdrop, seed; a new seed re-seeds the RNG."""
        unknown = set(kw) - set(FAULT_KEYS)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        for key in ("p429", "p5xx", "pdrop"):
            if key in kw:
                kw[key] = float(kw[key])
                if not 0.0 <= kw[key] <= 1.0:
                    raise ValueError(f"{key} must be within [0, 1]")
        if "latency_ms" in kw:
            kw["latency_ms"] = float(kw["latency_ms"])
            if kw["latency_ms"] < 0:
                raise ValueError("latency_ms must be >= 0")
        if "seed" in kw:
            kw["seed"] = int(kw["seed"])
        with self._lock:
            merged = {**self._faults, **kw}
            if merged["p429"] + merged["p5xx"] + merged["pdrop"] > 1.0:
                raise ValueError("p429 + p5xx + pdrop must not exceed 1")
            self._faults = merged
            if "seed" in kw:
                self._rng = random.Random(merged["seed"])
            return dict(merged)

    def reset(self, faults: bool = False) -> None:
        """Clear counters and log and re-seed the RNG; ``faults=True`` restores initial faults."""
        if faults:
            self.set_faults(**self._initial)
        with self._lock:
            self._calls.clear()
            self._log.clear()
            self._rng = random.Random(self._faults["seed"])

    # --- per-request hooks ---------------------------------------------------------
    def is_exempt(self, path: str) -> bool:
        """True for control paths that are neither counted nor faulted."""
        return path.startswith(self.exempt_prefixes)

    def _begin(self, key: str) -> tuple[str | None, float]:
        """Count the call and draw its fault (None, 'drop', '429' or '5xx:NNN')."""
        with self._lock:
            self._calls[key] += 1
            f = self._faults
            if not (f["p429"] or f["p5xx"] or f["pdrop"]):
                return None, f["latency_ms"]
            r = self._rng.random()
            fault = None
            if r < f["pdrop"]:
                fault = "drop"
            elif r < f["pdrop"] + f["p429"]:
                fault = "429"
            elif r < f["pdrop"] + f["p429"] + f["p5xx"]:
                fault = f"5xx:{self._rng.choice(SERVER_ERRORS)}"
            return fault, f["latency_ms"]

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)


def _drop_connection() -> Response:
    """Shut the client socket so the client sees a dropped connection, not a response."""
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    # Writing this response fails on the dead socket and the server treats it as dropped;
    # with no socket reachable (unknown server) the nearest thing is an empty 502 that closes.
    return Response(b"", status=502, headers={"Connection": "close"})


def instrument(
    app: Flask,
    error_response: Callable[[int], Response] | None = None,
    seed: int = 0,
    latency_ms: float = 0,
    p429: float = 0.0,
    p5xx: float = 0.0,
    pdrop: float = 0.0,
    exempt_prefixes: Iterable[str] = ("/_sandbox",),
    log_size: int = LOG_SIZE,
) -> SandboxControl:
    """Attach counters, request log, fault injection and ``/_sandbox`` endpoints to ``app``."""
    control = SandboxControl(
        error_response=error_response,
        seed=seed,
        latency_ms=latency_ms,
        p429=p429,
        p5xx=p5xx,
        pdrop=pdrop,
        exempt_prefixes=exempt_prefixes,
        log_size=log_size,
    )
    app.extensions["sandbox"] = control

    def before() -> Response | None:
        if control.is_exempt(request.path):
            return None
        g._sandbox_t0 = time.perf_counter()
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        fault, latency_ms = control._begin(f"{request.method} {rule}")
        g._sandbox_fault = fault
        if latency_ms:
            time.sleep(latency_ms / 1000.0)
        if fault is None:
            return None
        if fault == "drop":
            return _drop_connection()
        status = 429 if fault == "429" else int(fault.split(":")[1])
        return control.error_response(status)

    def after(response: Response) -> Response:
        t0 = g.get("_sandbox_t0")
        if t0 is None:
            return response
        fault = g.get("_sandbox_fault")
        control._record(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode("latin-1"),
                "status": 0 if fault == "drop" else response.status_code,
                "ms": round((time.perf_counter() - t0) * 1000.0, 3),
                "fault": fault,
            }
        )
        return response

    # First before-hook and last after-hook, so every request is seen whatever else the app
    # registers (auth checks returning 401 are still counted and logged).
    app.before_request_funcs.setdefault(None, []).insert(0, before)
    app.after_request_funcs.setdefault(None, []).insert(0, after)

    def stats() -> Response:
        calls = control.calls
        return jsonify({"calls": calls, "total": sum(calls.values()), "faults": control.faults})

    def log() -> Response:
        limit = request.args.get("limit", default=100, type=int)
        entries = control.log
        return jsonify({"entries": entries[-limit:] if limit > 0 else []})

    def faults() -> Response | tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify({"message": "JSON object expected"}), 400
        try:
            current = control.set_faults(**body)
        except (ValueError, TypeError) as exc:
            return jsonify({"message": str(exc)}), 400
        return jsonify({"faults": current})

    def reset() -> Response:
        body = request.get_json(silent=True) or {}
        control.reset(faults=bool(isinstance(body, dict) and body.get("faults")))
        return jsonify({"reset": True, "faults": control.faults})

    app.add_url_rule("/_sandbox/stats", "_sandbox_stats", stats, methods=["GET"])
    app.add_url_rule("/_sandbox/log", "_sandbox_log", log, methods=["GET"])
    app.add_url_rule("/_sandbox/faults", "_sandbox_faults", faults, methods=["POST"])
    app.add_url_rule("/_sandbox/reset", "_sandbox_reset", reset, methods=["POST"])
    return control
