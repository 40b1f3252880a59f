"""Drive signed Kibo events at POST /kibo/events served by gunicorn in a separate process.

Creates a private PostgreSQL database on TEST_DATABASE_URL's server (default
postgresql://127.0.0.1:5432/test), migrates it with ``cc-storeplugin db upgrade``, serves
``cc_storeplugin.app:create_app()`` with gunicorn (``-k gthread -w 2 --threads 4``), and
sends signed events from ``--clients`` load-generator processes (spawned, so separate from
this one and from the server), each holding ``--connections`` keep-alive sockets with one
request in flight per socket (a closed loop: the throughput is what the server sustains).

The load generator is kept cheap so that the server gets the machine's cores: requests
are prepared in batches of ``BATCH`` (Kibo-shaped bodies with unique eventIds from
``build_event_body``, one fresh Date per batch, ``x-vol-hmac-sha256`` per body with the
sandbox's algorithm, checked against ``signing.kibo_hash``), written as raw HTTP/1.1 bytes
and read back with a ``selectors`` loop (status line + Content-Length only). A batch
is used up within seconds at these rates, so every Date is far inside the 180 s window.

Events sent in the first second (warm-up) are stored and checked but not timed. ``lost``
= events answered 200 whose eventId is not in store_events; ``errors`` = any other answer
or a dropped connection. The database is dropped at the end. Prints one JSON line:
``{events, seconds, events_per_s, p50_ms, p99_ms, lost, errors, server_cpu_ms_per_event,
client_cpu_ms_per_event, db_cpu_ms_per_event, ...}``: CPU per acknowledged event of the
gunicorn workers, of the load generators and of the PostgreSQL backends serving the
workers (from /proc), which say which side a machine this size runs out of first.

    .venv/bin/python bench/kibo_events.py [--seconds 20] [--clients 1] [--connections 16]
        [--workers 2] [--gunicorn-threads 4] [--worker-class gthread]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing as mp
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cc_storeplugin.config import normalize_database_url  # noqa: E402
from cc_storeplugin.sandbox.kibo import DEMO_SHARED_SECRET  # noqa: E402
from cc_storeplugin.sandbox.kibo.events import build_event_body  # noqa: E402
from cc_storeplugin.sandbox.kibo.signing import format_http_date, kibo_hash  # noqa: E402

BIN = Path(sys.executable).parent
TOPICS = ("customeraccount.updated", "customeraccount.created", "order.closed", "cart.updated")
SITES = (23456, 23457)
TENANT = 12345
WARMUP_S = 1.0
BATCH = 256


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, args: argparse.Namespace):
    cmd = [
        str(BIN / "gunicorn"),
        "-k",
        args.worker_class,
        "-w",
        str(args.workers),
        "--threads",
        str(args.gunicorn_threads),
        "-b",
        f"127.0.0.1:{port}",
        "--keep-alive",
        "30",
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


def _proc_cpu(pid: int | str) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {int(pid): _proc_cpu(pid) for pid in pids}


def worker_pids(master_pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in children.split()]


def backend_pids(engine, database: str) -> list[int]:
    """PostgreSQL backends connected to the bench database other than our own session."""
    with engine.connect() as c:
        return list(
            c.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :d"
                    " AND pid <> pg_backend_pid()"
                ),
                {"d": database},
            )
        )


class RequestMaker:
    """Raw signed POST /kibo/events requests, prepared BATCH at a time with one Date each."""

    def __init__(self, host: str, client: int) -> None:
        self.host, self.client, self.n = host, client, 0
        self.inner = base64.b64encode(hashlib.sha256((DEMO_SHARED_SECRET * 2).encode()).digest())
        self.batch: list[tuple[str, bytes]] = []

    def _make(self, date: str, i: int) -> tuple[str, bytes]:
        event_id = str(uuid.uuid4())
        body = build_event_body(
            TOPICS[i % len(TOPICS)], str(self.client * 10_000_000 + i), event_id=event_id
        )
        signature = base64.b64encode(
            hashlib.sha256(self.inner + date.encode() + body).digest()
        ).decode()
        head = (
            f"POST /kibo/events HTTP/1.1\r\nHost: {self.host}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nDate: {date}\r\n"
            f"x-vol-hmac-sha256: {signature}\r\nx-vol-tenant: {TENANT}\r\n"
            f"x-vol-site: {SITES[i % 2]}\r\nx-vol-tenant-domain: t{TENANT}.sandbox.mozu.com\r\n"
            "x-vol-locale: en-US\r\nx-vol-currency: USD\r\n\r\n"
        )
        return event_id, head.encode() + body

    def next(self) -> tuple[str, bytes]:
        if not self.batch:
            date = format_http_date()
            self.batch = [self._make(date, self.n + k) for k in range(BATCH)]
            self.batch.reverse()
            self.n += BATCH
        return self.batch.pop()


def _check_signing() -> None:
    """The batch signer must agree with the sandbox's kibo_hash (else every event is 401)."""
    maker = RequestMaker("x", 0)
    event_id, raw = maker.next()
    head, body = raw.split(b"\r\n\r\n", 1)
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    assert headers["x-vol-hmac-sha256"] == kibo_hash(DEMO_SHARED_SECRET, headers["Date"], body)


def client_process(
    port: int, connections: int, seconds: float, client: int, ready, go, results
) -> None:
    """One load generator: ``connections`` keep-alive sockets, one request in flight each."""
    maker = RequestMaker(f"127.0.0.1:{port}", client)
    sel = selectors.DefaultSelector()
    latencies: list[float] = []
    acked: list[str] = []
    errors = 0

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send(sock: socket.socket, state: list) -> None:
        event_id, raw = maker.next()
        state[0], state[1], state[2] = event_id, time.perf_counter(), bytearray()
        sock.sendall(raw)

    socks = [connect() for _ in range(connections)]
    ready.put(client)
    go.wait()
    start = time.monotonic()
    measure_from, stop_at = start + WARMUP_S, start + WARMUP_S + seconds
    cpu0 = time.process_time()
    for sock in socks:
        state = [None, 0.0, bytearray()]
        sel.register(sock, selectors.EVENT_READ, state)
        send(sock, state)
    open_socks = len(socks)
    while open_socks:
        for key, _ in sel.select(timeout=30):
            sock, state = key.fileobj, key.data
            data = sock.recv(65536)
            buf = state[2]
            buf += data
            end = buf.find(b"\r\n\r\n")
            if data and end < 0:
                continue
            status, close, complete = 0, not data, bool(data)
            if data:
                head = bytes(buf[:end]).lower()
                at = head.find(b"\r\ncontent-length:")
                length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
                if len(buf) < end + 4 + length:
                    continue
                status = int(buf[9:12])
                close = b"\r\nconnection: close" in head
            took = time.perf_counter() - state[1]
            if complete and status == 200:
                acked.append(state[0])
                if time.monotonic() >= measure_from:
                    latencies.append(took)
            else:
                errors += 1
            if close:
                sel.unregister(sock)
                sock.close()
                if time.monotonic() >= stop_at:
                    open_socks -= 1
                    continue
                sock = connect()
                sel.register(sock, selectors.EVENT_READ, state)
            if time.monotonic() < stop_at:
                send(sock, state)
            else:
                sel.unregister(sock)
                sock.close()
                open_socks -= 1
    results.put((client, latencies, acked, errors, time.process_time() - cpu0))


def drive(port: int, args: argparse.Namespace, before_go, after) -> dict:
    """Run the load generators; ``before_go`` / ``after`` sample CPU around the run."""
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=client_process,
            args=(port, args.connections, args.seconds, n, ready, go, results),
        )
        for n in range(args.clients)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    before_go()
    go.set()
    outs = [results.get(timeout=args.seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    after()
    latencies = sorted(t for o in outs for t in o[1])
    return {
        "latencies": latencies,
        "acked": {e for o in outs for e in o[2]},
        "errors": sum(o[3] for o in outs),
        "client_cpu": sum(o[4] for o in outs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=1, help="load-generator processes")
    parser.add_argument("--connections", type=int, default=16, help="sockets per client")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gunicorn-threads", type=int, default=4)
    parser.add_argument("--worker-class", default="gthread")
    args = parser.parse_args()
    _check_signing()

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
        proc = start_gunicorn(env, port, args)
        cpu: dict[str, dict[int, float]] = {}

        def before_go() -> None:
            cpu["server0"] = cpu_by_pid(worker_pids(proc.pid))
            cpu["db0"] = cpu_by_pid(backend_pids(engine, name))

        def after() -> None:
            cpu["server1"] = cpu_by_pid(worker_pids(proc.pid))
            cpu["db1"] = cpu_by_pid(backend_pids(engine, name))

        run = drive(port, args, before_go, after)
        server_cpu = sum(v - cpu["server0"].get(pid, 0.0) for pid, v in cpu["server1"].items())
        db_cpu = sum(v - cpu["db0"].get(pid, 0.0) for pid, v in cpu["db1"].items())
        with engine.connect() as c:
            stored = set(c.scalars(text("SELECT event_id FROM store_events")))
        latencies, acked = run["latencies"], run["acked"]
        n, per_event = len(latencies), 1000 / max(len(acked), 1)
        print(
            json.dumps(
                {
                    "events": n,
                    "seconds": args.seconds,
                    "events_per_s": round(n / args.seconds, 1),
                    "p50_ms": round(statistics.median(latencies) * 1000, 2) if n else None,
                    "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
                    "lost": len(acked - stored),
                    "errors": run["errors"],
                    "server_cpu_ms_per_event": round(server_cpu * per_event, 3),
                    "client_cpu_ms_per_event": round(run["client_cpu"] * per_event, 3),
                    "db_cpu_ms_per_event": round(db_cpu * per_event, 3),
                    "clients": args.clients,
                    "connections": args.connections,
                    "gunicorn": f"-k {args.worker_class} -w {args.workers}"
                    f" --threads {args.gunicorn_threads}",
                    "load_avg_1m": round(os.getloadavg()[0], 2),
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
