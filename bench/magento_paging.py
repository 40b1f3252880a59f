"""Page every customer out of the Magento sandbox over a 1M-customer store, signed like the plugin.

The sandbox runs in a separate gunicorn process (input limits on: pageSize 300); this
process does the integration handshake, then at most two pagers fetch the pages with
OAuth 1.0a HMAC-SHA256 signatures. Prints one JSON line:
``{customers, pages, seconds, rows_per_s, server_peak_rss_mb}``.

    .venv/bin/python bench/magento_paging.py [--customers 1000000] [--pagers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from math import ceil
from pathlib import Path
from urllib.parse import parse_qsl, quote

import requests
from flask import Flask, request
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cc_storeplugin.sandbox.server import serve_in_thread  # noqa: E402
from cc_storeplugin.sandbox.storegen import ensure_store  # noqa: E402

PAGE = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, port: int, threads: int) -> subprocess.Popen:
    """gunicorn serving create_app(store=..., max_page_size=300) in one process.

    One worker: integrations and tokens live in the app's memory, like one Magento instance.
    """
    factory = (
        f"cc_storeplugin.sandbox.magento:create_app(store={str(store)!r}, max_page_size={PAGE})"
    )
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        "1",
        "-k",
        "gthread",
        "--threads",
        str(threads),
        "--log-level",
        "warning",
        factory,
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/_sandbox/stats", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("sandbox did not start")


def server_pids(pid: int) -> list[int]:
    """The gunicorn master and its workers."""
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            pids += [int(c) for c in children]
    except OSError:
        pass
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the server processes so far."""
    ticks = 0
    for p in server_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Sum of VmHWM over the gunicorn master and its workers."""
    total = 0
    for p in server_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def handshake(base: str) -> tuple[dict, dict]:
    """Create + activate an integration, then exchange tokens; returns (creds, access)."""
    received: dict = {}
    receiver = Flask("bench-receiver")

    @receiver.post("/callback")
    def callback():
        received.update(request.form.to_dict())
        return "ok"

    rec = serve_in_thread(receiver)
    try:
        body = {
            "name": "bench",
            "email": "bench@example.com",
            "endpoint": rec.url + "/callback",
            "identity_link_url": "https://plugin.example/identity",
        }
        integ = requests.post(f"{base}/_sandbox/integrations", json=body, timeout=10).json()
        requests.post(f"{base}/_sandbox/integrations/{integ['id']}/activate", timeout=10)
    finally:
        rec.stop()
    key, secret = received["oauth_consumer_key"], received["oauth_consumer_secret"]
    store_base = received["store_base_url"].rstrip("/")
    c = Client(key, client_secret=secret, signature_method=SIGNATURE_HMAC_SHA256)
    uri, headers, _ = c.sign(store_base + "/oauth/token/request", "POST")
    req = dict(parse_qsl(requests.post(uri, headers=headers, timeout=10).text))
    c = Client(
        key,
        client_secret=secret,
        resource_owner_key=req["oauth_token"],
        resource_owner_secret=req["oauth_token_secret"],
        verifier=received["oauth_verifier"],
        signature_method=SIGNATURE_HMAC_SHA256,
    )
    uri, headers, _ = c.sign(store_base + "/oauth/token/access", "POST")
    access = dict(parse_qsl(requests.post(uri, headers=headers, timeout=10).text))
    return received, access


def pager(base: str, creds: dict, access: dict, pages: list[int], out: dict) -> None:
    """Fetch the given pages in order (sorted by entity_id ASC)."""
    client = Client(
        creds["oauth_consumer_key"],
        client_secret=creds["oauth_consumer_secret"],
        resource_owner_key=access["oauth_token"],
        resource_owner_secret=access["oauth_token_secret"],
        signature_method=SIGNATURE_HMAC_SHA256,
    )
    session = requests.Session()
    rows = 0
    for page in pages:
        params = [
            ("searchCriteria[sortOrders][0][field]", "entity_id"),
            ("searchCriteria[sortOrders][0][direction]", "ASC"),
            ("searchCriteria[pageSize]", str(PAGE)),
            ("searchCriteria[currentPage]", str(page)),
        ]
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
        uri, headers, _ = client.sign(f"{base}/rest/V1/customers/search?{query}", "GET")
        resp = session.get(uri, headers=headers, timeout=60)
        resp.raise_for_status()
        body = resp.json()
        rows += len(body["items"])
        out.setdefault("total", body["total_count"])
    out["rows"] = out.get("rows", 0) + rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pagers", type=int, default=2, choices=(1, 2))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    store = ROOT / "instance" / "bench" / f"store-{args.customers}-s{args.seed}.sqlite"
    ensure_store(store, customers=args.customers, seed=args.seed)
    port = free_port()
    proc = start_server(store, port, args.threads)
    base = f"http://127.0.0.1:{port}"
    try:
        creds, access = handshake(base)
        first: dict = {}
        pager(base, creds, access, [1], first)
        total = first["total"]
        n_pages = ceil(total / PAGE)
        rest = list(range(2, n_pages + 1))
        halves = [rest[: len(rest) // 2], rest[len(rest) // 2 :]] if args.pagers == 2 else [rest]
        results = [dict() for _ in halves]
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=pager, args=(base, creds, access, h, r))
            for h, r in zip(halves, results, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        server_cpu = cpu_seconds(proc.pid) - cpu0
        rows = first["rows"] + sum(r.get("rows", 0) for r in results)
        if rows != total:
            raise SystemExit(f"paged {rows} rows but total_count is {total}")
        paged = sum(r.get("rows", 0) for r in results)
        print(
            json.dumps(
                {
                    "customers": rows,
                    "pages": n_pages,
                    "seconds": round(seconds, 2),
                    "rows_per_s": round(paged / seconds),
                    "server_peak_rss_mb": peak_rss_mb(proc.pid),
                    "server_cpu_s": round(server_cpu, 2),
                }
            )
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
