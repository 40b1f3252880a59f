"""Drive signed Kibo events at POST /kibo/events served by gunicorn in a separate process.

Creates a private PostgreSQL database on TEST_DATABASE_URL's server (default
postgresql://127.0.0.1:5432/test), migrates it with ``cc-storeplugin db upgrade``, serves
``cc_storeplugin.app:create_app()`` with gunicorn (``-w 2 --threads 4``), and sends signed
events (unique eventIds, Kibo-shaped bodies, a fresh Date + x-vol-hmac-sha256 each) from a
thread pool here, one requests.Session per thread, for ``--seconds`` after a 1 s warm-up.
``lost`` = events answered 200 whose eventId is not in store_events. The database is
dropped at the end. Prints one JSON line: ``{events, seconds, events_per_s, p50_ms,
p99_ms, lost, errors, server_cpu_ms_per_event, client_cpu_ms_per_event}`` (the CPU
figures say which side a machine this size runs out of first).

    .venv/bin/python bench/kibo_events.py [--seconds 20] [--threads 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cc_storeplugin.config import normalize_database_url  # noqa: E402
from cc_storeplugin.sandbox.kibo import DEMO_SHARED_SECRET  # noqa: E402
from cc_storeplugin.sandbox.kibo.events import build_event_body, signed_headers  # noqa: E402
from cc_storeplugin.sandbox.kibo.signing import format_http_date  # noqa: E402

BIN = Path(sys.executable).parent
TOPICS = ("customeraccount.updated", "customeraccount.created", "order.closed", "cart.updated")
SITES = (23456, 23457)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, workers: int, threads: int):
    cmd = [
        str(BIN / "gunicorn"),
        "-w",
        str(workers),
        "--threads",
        str(threads),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "cc_storeplugin.app:create_app()",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 500:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("gunicorn did not come up")


def cpu_seconds(master_pid: int) -> float:
    """User + system CPU of gunicorn's workers so far (from /proc; 0 where unavailable)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
        for pid in children:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        pass
    return total


def drive(url: str, seconds: float, threads: int, tenant: int) -> tuple[list, set, int]:
    """Send for ``seconds`` (+1 s warm-up): per-request latencies, acked eventIds, errors."""
    lock = threading.Lock()
    latencies: list[float] = []
    acked: set[str] = set()
    errors = [0]
    start = time.monotonic()
    measure_from, stop_at = start + 1.0, start + 1.0 + seconds

    def worker(n: int) -> None:
        session = requests.Session()
        session.trust_env = False  # loopback: skip per-request proxy / netrc lookups
        mine: list[float] = []
        ok: list[str] = []
        bad = 0
        i = 0
        while (now := time.monotonic()) < stop_at:
            i += 1
            event_id = str(uuid.uuid4())
            body = build_event_body(
                TOPICS[i % len(TOPICS)], str(n * 1_000_000 + i), event_id=event_id
            )
            headers = signed_headers(
                DEMO_SHARED_SECRET,
                body,
                date=format_http_date(),
                tenant_id=tenant,
                site_id=SITES[i % 2],
                tenant_domain=f"t{tenant}.sandbox.mozu.com",
            )
            t0 = time.perf_counter()
            try:
                resp = session.post(url, data=body, headers=headers, timeout=30)
                status = resp.status_code
            except requests.RequestException:
                status = 0
            took = time.perf_counter() - t0
            if status == 200:
                ok.append(event_id)
                if now >= measure_from:
                    mine.append(took)
            else:
                bad += 1
        session.close()
        with lock:
            latencies.extend(mine)
            acked.update(ok)
            errors[0] += bad

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return latencies, acked, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gunicorn-threads", type=int, default=4)
    args = parser.parse_args()

    server_url = normalize_database_url(
        os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
    )
    name = f"cc_bench_kibo_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SECRET_KEY": uuid.uuid4().hex,
        "KIBO_SHARED_SECRET": DEMO_SHARED_SECRET,
    }
    env.pop("REDIS_URL", None)
    proc = None
    engine = create_engine(db_url)
    try:
        subprocess.run(
            [str(BIN / "cc-storeplugin"), "db", "upgrade"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        port = free_port()
        proc = start_gunicorn(env, port, args.workers, args.gunicorn_threads)
        server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
        latencies, acked, errors = drive(
            f"http://127.0.0.1:{port}/kibo/events", args.seconds, args.threads, 12345
        )
        server_cpu = cpu_seconds(proc.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
        with engine.connect() as c:
            stored = set(c.scalars(text("SELECT event_id FROM store_events")))
        latencies.sort()
        n = len(latencies)
        print(
            json.dumps(
                {
                    "events": n,
                    "seconds": args.seconds,
                    "events_per_s": round(n / args.seconds, 1),
                    "p50_ms": round(statistics.median(latencies) * 1000, 2) if n else None,
                    "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
                    "lost": len(acked - stored),
                    "errors": errors,
                    "server_cpu_ms_per_event": round(server_cpu * 1000 / max(len(acked), 1), 3),
                    "client_cpu_ms_per_event": round(client_cpu * 1000 / max(len(acked), 1), 3),
                }
            )
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
