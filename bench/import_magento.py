"""The initial Magento import end to end over loopback HTTP, with PostgreSQL and a Redis worker.

The Magento sandbox (pageSize limit 300) and the Constant Contact sandbox (on-disk SQLite,
4 requests/s, no daily quota) each run in their own gunicorn process; the plugin's web app
runs in a thread of this process for the handshake (Constant Contact sign-in, Connect
Magento, Complete Integration), which queues the import in Redis. ONE
``cc-storeplugin worker --burst`` subprocess then runs it; its wall time and peak RSS are
measured, the run row is sampled every second for per-phase times, and the same customer
and order pages are then downloaded again with ``MagentoClient.iter_pages`` (nothing
written) for the bare download time. Prints one JSON line (see bench/README.md).

    .venv/bin/python bench/import_magento.py [--customers 1000000] [--keep-db]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cc_storeplugin.config import normalize_database_url  # noqa: E402
from cc_storeplugin.sandbox.storegen import ensure_store  # noqa: E402

PAGE = 300
PHASES = ("customers", "orders", "stats", "segments", "cc_lists", "consent", "cc_export")
BIN = Path(sys.executable).parent


# The import in one process (no work horse) under cProfile: same app, queues and serializer
# as `cc-storeplugin worker --burst`, without the fork, so the profile sees the job.
PROFILED_WORKER = """
import cProfile, sys
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from cc_storeplugin.app import create_app
from cc_storeplugin.queueing import QUEUE_NAMES, queues
app = create_app()
with app.app_context():
    qs = [queues.get(n) for n in QUEUE_NAMES]
    worker = SimpleWorker(qs, connection=queues.connection, serializer=JSONSerializer)
    cProfile.run("worker.work(burst=True)", sys.argv[1])
"""


# Runs the measured worker and writes wait4()'s ru_maxrss (kB) of it to argv[1]. It is a
# fresh small process on purpose: Linux folds the hiwater RSS of the address space a child
# leaves at exec() (the parent's, after fork or vfork) into that child's ru_maxrss, so a
# worker spawned straight from this benchmark, which generated a 1M store in-process, would
# report this process's ~450 MB as its own peak.
LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn(factory: str, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    """Serve an app factory in one gunicorn worker process (threads); returns (proc, url)."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1"]
    cmd += ["-k", "gthread", "--threads", str(threads), "--timeout", "600"]
    cmd += ["--log-level", "warning", factory]
    out = log.open("ab")
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            requests.get(f"{url}/_sandbox/stats", timeout=2)
            return proc, url
        except requests.ConnectionError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"{factory} did not start (see {log})")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def calls(url: str) -> int:
    return int(requests.get(f"{url}/_sandbox/stats", timeout=30).json()["total"])


def children(pid: int) -> list[int]:
    """pid's direct children (every thread's), [] once it is gone."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            out += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    """pid's children, grandchildren, ... (rq's work horse and scheduler)."""
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


def hwm_kb(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, in kB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class HandshakeWorker(threading.Thread):
    """Burst workers on the ``default`` queue until stopped: the handshake's token exchange
    is a job there; the import (queue ``imports``) waits for the measured worker."""

    def __init__(self, log: Path) -> None:
        super().__init__(daemon=True)
        self.log, self.done = log, threading.Event()

    def run(self) -> None:
        cmd = [str(BIN / "cc-storeplugin"), "worker", "--burst", "default"]
        with self.log.open("ab") as out:
            while not self.done.is_set():
                subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
                self.done.wait(0.3)


class Sampler(threading.Thread):
    """The run row (phase, updated_at) every second, the worker tree's VmHWM every 0.2 s.

    ``launcher_pid`` is the LAUNCHER process: its child is the rq worker, whose descendants
    are the work horse (and rq's scheduler, if any)."""

    def __init__(self, db_url: str, run_id: int, launcher_pid: int) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(db_url)
        self.run_id, self.launcher = run_id, launcher_pid
        self.phase_start: dict[str, float] = {}
        self.worker_hwm = self.child_hwm = 0
        self.done = threading.Event()

    def run(self) -> None:
        tick = 0
        with self.engine.connect() as c:
            while not self.done.is_set():
                for main in children(self.launcher):
                    self.worker_hwm = max(self.worker_hwm, hwm_kb(main))
                    for child in descendants(main):
                        self.child_hwm = max(self.child_hwm, hwm_kb(child))
                tick += 1
                if tick % 5 != 1:  # the row every second, the memory every 0.2 s
                    self.done.wait(0.2)
                    continue
                row = c.execute(
                    text("SELECT phase, updated_at FROM sync_runs WHERE id = :id"),
                    {"id": self.run_id},
                ).one()
                c.commit()
                if row.phase in PHASES and row.updated_at is not None:
                    at = row.updated_at.timestamp()
                    self.phase_start[row.phase] = min(self.phase_start.get(row.phase, at), at)
                self.done.wait(0.2)
        self.engine.dispose()


def expected_contacts(store: Path) -> tuple[int, int]:
    """(distinct normalized emails of customers and orders, how many of them CC refuses)."""
    import sqlite3

    from cc_storeplugin.constantcontact.emails import check_email
    from cc_storeplugin.models import normalize_email

    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    emails = {normalize_email(e) for (e,) in conn.execute("SELECT email FROM customers")}
    emails |= {normalize_email(e) for (e,) in conn.execute("SELECT customer_email FROM orders")}
    conn.close()
    emails.discard("")
    invalid = sum(1 for e in emails if check_email(e)[0] is None)
    return len(emails), invalid


def sendable_members(db_url: str, run_id: int) -> dict[str, int]:
    """Per segment key, the members CC should hold: not unsubscribed, email not quarantined."""
    engine = create_engine(db_url)
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT s.key, count(c.id) FROM segments s"
                " LEFT JOIN segment_memberships m ON m.segment_id = s.id"
                " LEFT JOIN customers c ON c.id = m.customer_id"
                "  AND c.consent_state <> 'unsubscribed' AND NOT EXISTS (SELECT 1 FROM"
                "  sync_errors e WHERE e.run_id = :run AND e.reason = 'invalid_email'"
                "  AND e.record_ref = c.email)"
                " WHERE s.cc_list_id IS NOT NULL GROUP BY s.key"
            ),
            {"run": run_id},
        ).all()
    engine.dispose()
    return dict(rows)


def download(app: Any, connection_id: int) -> tuple[float, int, int]:
    """Page every customer and order like the import, writing nothing: (seconds, n, m)."""
    from cc_storeplugin.extensions import db
    from cc_storeplugin.models import StoreConnection
    from cc_storeplugin.sync.magento_api import client_for

    with app.app_context():
        client = client_for(db.session.get(StoreConnection, connection_id))
        counts = []
        t0 = time.perf_counter()
        for resource_name in ("customers/search", "orders"):
            n = 0
            for _, body in client.iter_pages(resource_name, page_size=PAGE):
                n += len(body["items"])
            counts.append(n)
        return time.perf_counter() - t0, counts[0], counts[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--database-url", default=None, help="default: a private database, dropped")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="flushed")
    ap.add_argument("--keep-db", action="store_true", help="keep the private database")
    ap.add_argument("--skip-download", action="store_true")
    ap.add_argument(
        "--profile",
        type=Path,
        help="run the job in a non-forking rq SimpleWorker under cProfile; stats to this file",
    )
    ap.add_argument(
        "--worker-script",
        type=Path,
        help="experiments: run `python SCRIPT` (e.g. a patched worker) as the measured worker",
    )
    args = ap.parse_args()

    work = ROOT / "instance" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    store = work / f"store-{args.customers}-s{args.seed}.sqlite"
    ensure_store(store, customers=args.customers, seed=args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="import-bench-", dir=work))
    log = tmp / "servers.log"

    admin = None
    if args.database_url:
        db_url = normalize_database_url(args.database_url)
    else:
        server = normalize_database_url(
            os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
        )
        name = f"cc_bench_import_{uuid.uuid4().hex[:8]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        db_url = make_url(server).set(database=name).render_as_string(hide_password=False)
    redis.Redis.from_url(args.redis_url).flushdb()

    procs: list[subprocess.Popen] = []
    plugin = app = None
    result: dict[str, Any] = {}
    try:
        mag, magento_url = gunicorn(
            f"cc_storeplugin.sandbox.magento:create_app(store={str(store)!r}, "
            f"max_page_size={PAGE})",
            2,
            log,
        )
        procs.append(mag)
        cc_db = str(tmp / "cc-sandbox.sqlite")
        ccp, cc_url = gunicorn(
            "cc_storeplugin.sandbox.constantcontact:create_app("
            f"db_path={cc_db!r}, rate_per_s=4, daily_quota=None)",
            4,
            log,
        )
        procs.append(ccp)

        plugin_port = free_port()
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": args.redis_url,
            "SECRET_KEY": uuid.uuid4().hex,
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "CC_API_BASE_URL": f"{cc_url}/v3",
            "CC_AUTH_BASE_URL": f"{cc_url}/oauth2/default/v1",
            "CC_CLIENT_ID": "sandbox-client",
            "CC_CLIENT_SECRET": "sandbox-secret",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{plugin_port}",
            "CC_INSTANCE_DIR": str(tmp),
        }
        os.environ.update(env)

        import logging

        from flask_migrate import upgrade

        from cc_storeplugin.app import create_app
        from cc_storeplugin.extensions import db
        from cc_storeplugin.models import Segment, SyncRun
        from cc_storeplugin.sandbox.merchant import connect_magento, sign_in
        from cc_storeplugin.sandbox.server import serve_in_thread

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = create_app()
        with app.app_context():
            upgrade()
        plugin = serve_in_thread(app, port=plugin_port)
        browser = requests.Session()
        sign_in(browser, plugin.url)
        helper = HandshakeWorker(tmp / "handshake-worker.log")
        helper.start()
        try:
            hs = connect_magento(browser, plugin.url, magento_url)
        finally:
            helper.done.set()
            helper.join()
        with app.app_context():
            run_id = db.session.scalars(
                db.select(SyncRun.id).where(SyncRun.connection_id == hs.connection_id)
            ).one()

        mag0, cc0 = calls(magento_url), calls(cc_url)
        worker_log = (tmp / "worker.log").open("wb")
        t0 = time.perf_counter()
        cmd = [str(BIN / "cc-storeplugin"), "worker", "--burst"]
        if args.profile:
            cmd = [sys.executable, "-c", PROFILED_WORKER, str(args.profile.resolve())]
        elif args.worker_script:
            cmd = [sys.executable, str(args.worker_script.resolve())]
        rss_file = tmp / "worker-maxrss-kb"
        worker = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(rss_file), *cmd],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        sampler = Sampler(db_url, run_id, worker.pid)
        sampler.start()
        # the launcher's wait4 ru_maxrss: the peak of the worker and of every descendant it
        # reaped (the forked work horse that ran the import), nothing of this process
        worker.wait()
        wall = time.perf_counter() - t0
        rusage_kb = int(rss_file.read_text()) if rss_file.exists() else 0
        sampler.done.set()
        sampler.join()
        magento_calls, cc_calls = calls(magento_url) - mag0, calls(cc_url) - cc0

        with app.app_context():
            run = db.session.get(SyncRun, run_id)
            segments = db.session.scalars(
                db.select(Segment).where(Segment.connection_id == hs.connection_id)
            ).all()
            status, totals = run.status, run.totals or {}
            finished = run.finished_at.timestamp() if run.finished_at else time.time()
            error = run.error_message
            cc_lists = {s.key: s.cc_list_id for s in segments}
        in_cc = {}
        for key, list_id in cc_lists.items():
            if list_id:
                body = requests.get(f"{cc_url}/_sandbox/lists/{list_id}/emails", timeout=600)
                in_cc[key] = body.json()["count"]
        sendable = sendable_members(db_url, run_id)
        contacts, invalid = expected_contacts(store)
        lists_ok = in_cc.get("all") == contacts - invalid and in_cc == sendable
        if not lists_ok:
            result["lists"] = {k: [in_cc.get(k), n] for k, n in sendable.items()}

        starts = sorted((t, p) for p, t in sampler.phase_start.items())
        phase_s = {}
        for i, (t, p) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else finished
            phase_s[p] = round(end - t, 1)

        if args.skip_download:
            download_s, n_cust, n_orders = 0.0, 0, 0
        else:
            download_s, n_cust, n_orders = download(app, hs.connection_id)
        result |= {
            "customers": totals.get("customers_in_store", n_cust),
            "orders": totals.get("orders_in_store", n_orders),
            "wall_s": round(wall, 1),
            "download_s": round(download_s, 1),
            "ratio": round(wall / download_s, 2) if download_s else None,
            "worker_peak_rss_mb": round(rusage_kb / 1024, 1),
            "worker_main_hwm_mb": round(sampler.worker_hwm / 1024, 1),
            "horse_hwm_mb": round(sampler.child_hwm / 1024, 1),
            "customers_per_s": round(args.customers / wall),
            "magento_calls": magento_calls,
            "cc_calls": cc_calls,
            "phase_s": {p: phase_s.get(p) for p in PHASES},
            "contacts_expected": contacts,
            "invalid_emails": invalid,
            "cc_all_list": in_cc.get("all"),
            "lists_ok": lists_ok,
            "status": status
            if worker.returncode == 0
            else f"{status} (worker rc {worker.returncode})",
        }
        if error:
            result["error"] = error
        if args.keep_db:
            result["database_url"] = db_url
    finally:
        if plugin is not None:
            plugin.stop()
        for proc in procs:
            stop(proc)
        if app is not None:
            from cc_storeplugin.extensions import db as _db

            with app.app_context():
                _db.session.remove()
                for engine in _db.engines.values():
                    engine.dispose()
        if admin is not None:
            if not args.keep_db:
                with admin.connect() as c:
                    name = make_url(db_url).database
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        redis.Redis.from_url(args.redis_url).flushdb()
        if result.get("status") == "COMPLETE" and not args.keep_db:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            (tmp / "cc-sandbox.sqlite").unlink(missing_ok=True)
            result["logs"] = str(tmp)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
