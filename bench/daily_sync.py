"""One daily sync of an N-customer connection end to end over loopback HTTP (issue 7 "Speed").

Setup (not measured): the Magento sandbox serves a copy of a generated store and the CC
sandbox an on-disk account (each in its own gunicorn process); the plugin's web app in a
thread does the real handshake (Constant Contact sign-in, Connect Magento). The import that
Complete Integration queues is dropped; instead the state it would leave is built in bulk:
the store's customers and orders are COPYed into staging tables of a private PostgreSQL
database and turned into the mirror with set-based SQL, purchase stats recomputed, the five
built-in segments evaluated, their CC lists created through the API and filled by writing
the contacts and memberships straight into the CC sandbox's SQLite file; the connection's
watermarks are set to the store's newest change.

Measured: 1% of the customers change in the store (half place a new order, half update
their account), the clock moves one day, and ONE daily sync runs in this process (its phase
functions timed). Then, separately, one evaluation of all built-in segments over the mirror
another day later. Prints one JSON line (see bench/README.md).

    .venv/bin/python bench/daily_sync.py [--customers 1000000] [--cc-ids unknown|known]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from import_magento import HandshakeWorker, calls, free_port, gunicorn, stop  # noqa: E402

from cc_storeplugin.config import normalize_database_url  # noqa: E402
from cc_storeplugin.sandbox.storegen import ensure_store  # noqa: E402

PAGE = 300
STORE_TIME = "%Y-%m-%d %H:%M:%S"
PHASES = ("unsubscribes", "fetch", "stats", "segments", "cc_diff")
CC_ACCOUNT = "a07e1lsandbox0001"  # the CC sandbox's default account

STAGING = """
CREATE UNLOGGED TABLE st_customers (id bigint, email text, firstname text, lastname text,
    group_id int, is_subscribed int, updated_at timestamptz);
CREATE UNLOGGED TABLE st_orders (id bigint, increment_id text, customer_email text,
    state text, status text, grand_total numeric(14,2), total_refunded numeric(14,2),
    currency text, created_at timestamptz, updated_at timestamptz);
"""
# The mirror the import would leave: one contact per normalized email (registered first,
# then guest purchasers), orders linked by email, is_purchase by the DESIGN's rule.
BUILD_MIRROR = [
    """INSERT INTO customers (connection_id, email, platform_customer_id, is_guest, first_name,
        last_name, customer_group, consent_state, purchase_count, total_spent,
        platform_updated_at, created_at, updated_at)
    SELECT DISTINCT ON (lower(btrim(email))) :conn, lower(btrim(email)), id::text, false,
        firstname, lastname, group_id::text,
        CASE WHEN is_subscribed = 1 THEN 'subscribed' ELSE 'not_set' END, 0, 0, updated_at,
        now(), now()
    FROM st_customers WHERE btrim(email) <> '' ORDER BY lower(btrim(email)), id""",
    """INSERT INTO customers (connection_id, email, is_guest, consent_state, purchase_count,
        total_spent, created_at, updated_at)
    SELECT DISTINCT :conn, lower(btrim(o.customer_email)), true, 'not_set', 0, 0, now(), now()
    FROM st_orders o WHERE btrim(o.customer_email) <> '' AND NOT EXISTS (SELECT 1 FROM
        customers c WHERE c.connection_id = :conn AND c.email = lower(btrim(o.customer_email)))""",
    """INSERT INTO orders (connection_id, platform_order_id, order_number, customer_id, email,
        state, status, is_purchase, grand_total, total_refunded, currency, placed_at,
        platform_updated_at)
    SELECT :conn, o.id::text, o.increment_id, c.id, c.email, o.state, o.status,
        o.state NOT IN ('canceled', 'closed', 'pending_payment'), o.grand_total,
        o.total_refunded, o.currency, o.created_at, o.updated_at
    FROM st_orders o JOIN customers c
        ON c.connection_id = :conn AND c.email = lower(btrim(o.customer_email))""",
    "DROP TABLE st_customers",
    "DROP TABLE st_orders",
]


def private_database(server: str) -> tuple[Any, str]:
    name = f"cc_bench_daily_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return admin, make_url(server).set(database=name).render_as_string(hide_password=False)


def copy_store_to_staging(db: Any, store: Path) -> None:
    """COPY the store's customers and orders into UNLOGGED staging tables, streamed."""
    src = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    raw = db.session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(STAGING)
        for table, sql in (
            ("st_customers", "SELECT id, email, firstname, lastname, group_id, is_subscribed,"
             " updated_at || '+00' FROM customers"),
            ("st_orders", "SELECT id, increment_id, customer_email, state, status, grand_total,"
             " total_refunded, currency, created_at || '+00', updated_at || '+00' FROM orders"),
        ):  # fmt: skip
            with cur.copy(f"COPY {table} FROM STDIN") as copy:
                for row in src.execute(sql):
                    copy.write_row(row)
    src.close()
    db.session.commit()


def build_mirror(db: Any, connection_id: int, store: Path, step: Any) -> None:
    """The mirror from the store file in bulk; ``step(name)`` records each part's time."""
    from cc_storeplugin.sync.stats import recompute_stats

    copy_store_to_staging(db, store)
    step("copy")
    for name, sql in zip(("customers", "guests", "orders", None, None), BUILD_MIRROR, strict=True):
        db.session.execute(text(sql), {"conn": connection_id})
        if name:
            db.session.commit()
            step(name)
    recompute_stats(connection_id)
    db.session.commit()
    db.session.execute(text("ANALYZE customers"))
    db.session.execute(text("ANALYZE orders"))
    db.session.commit()
    step("stats")


def fill_cc(db: Any, connection_id: int, cc_db: Path, know_ids: bool) -> dict[str, int]:
    """Write the contacts and list memberships the import would have left into the CC
    sandbox's SQLite file (consenting, valid emails); optionally store the CC ids in the
    mirror. Returns members per segment key as written."""
    from cc_storeplugin.constantcontact.emails import check_email

    lists = dict(
        db.session.execute(
            text("SELECT id, cc_list_id FROM segments WHERE connection_id = :c"),
            {"c": connection_id},
        ).all()
    )
    keys = dict(
        db.session.execute(
            text("SELECT id, key FROM segments WHERE connection_id = :c"), {"c": connection_id}
        ).all()
    )
    cc = sqlite3.connect(cc_db, isolation_level=None)
    cc.execute("PRAGMA journal_mode=WAL")
    cc.execute("PRAGMA synchronous=OFF")
    row_of = dict(
        cc.execute("SELECT list_id, id FROM lists WHERE account = ?", (CC_ACCOUNT,)).fetchall()
    )
    list_rows = {seg: row_of[lid] for seg, lid in lists.items()}
    written: dict[str, int] = defaultdict(int)
    learned: list[tuple[int, str]] = []
    now = time.time()
    result = db.session.connection().execution_options(stream_results=True, yield_per=20_000)
    rows = result.execute(
        text(
            "SELECT c.id, c.email, c.first_name, c.last_name,"
            " array_agg(m.segment_id) FILTER (WHERE m.segment_id IS NOT NULL)"
            " FROM customers c LEFT JOIN segment_memberships m ON m.customer_id = c.id"
            " WHERE c.connection_id = :c AND c.consent_state <> 'unsubscribed'"
            " GROUP BY c.id ORDER BY c.id"
        ),
        {"c": connection_id},
    )
    cc.execute("BEGIN")
    next_id = (cc.execute("SELECT COALESCE(MAX(id), 0) FROM contacts").fetchone()[0]) + 1
    for part in rows.partitions(20_000):
        contacts, members = [], []
        for cid, email, first, last, segs in part:
            sendable, _ = check_email(email)
            if sendable is None or not segs:
                continue
            contact_id = str(uuid.uuid4())
            contacts.append(
                (next_id, CC_ACCOUNT, contact_id, sendable.lower(), sendable, first, last,
                 now, now, now, now)
            )  # fmt: skip
            members += [(list_rows[s], next_id) for s in segs]
            for s in segs:
                written[keys[s]] += 1
            if know_ids:
                learned.append((cid, contact_id))
            next_id += 1
        cc.executemany(
            "INSERT INTO contacts (id, account, contact_id, email_key, address, first_name,"
            " last_name, permission, opt_in_source, create_source, update_source, created_at,"
            " updated_at, email_created_at, email_updated_at) VALUES (?,?,?,?,?,?,?,'implicit',"
            "'Account','Account','Account',?,?,?,?)",
            contacts,
        )
        cc.executemany("INSERT INTO memberships VALUES (?, ?)", members)
    cc.execute("COMMIT")
    cc.close()
    if learned:
        raw = db.session.connection().connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("CREATE TEMP TABLE st_ids (id bigint, cc text)")
            with cur.copy("COPY st_ids FROM STDIN") as copy:
                for row in learned:
                    copy.write_row(row)
            cur.execute(
                "UPDATE customers c SET cc_contact_id = s.cc FROM st_ids s WHERE c.id = s.id"
            )
            cur.execute("DROP TABLE st_ids")
    db.session.commit()
    return dict(written)


def change_store(store: Path, customers: int, at: datetime) -> dict[str, int]:
    """1% of the registered customers change at ``at``: half place an order, half update
    their account (a new first name)."""
    n = max(2, customers // 100)
    stamp = at.strftime(STORE_TIME)
    con = sqlite3.connect(store)
    picked = con.execute(
        "SELECT id, email, firstname, lastname FROM customers"
        " ORDER BY (id * 2654435761) % 4294967291 LIMIT ?",
        (n,),
    ).fetchall()
    buyers, renamed = picked[: n // 2], picked[n // 2 :]
    next_order = con.execute("SELECT MAX(id) + 1 FROM orders").fetchone()[0]
    with con:
        con.executemany(
            "INSERT INTO orders (id, increment_id, customer_id, customer_email, customer_firstname,"
            " customer_lastname, customer_is_guest, state, status, grand_total, subtotal,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, 'processing', 'processing',"
            " 64.5, 64.5, ?, ?)",
            [
                (next_order + i, f"7{next_order + i:09d}", cid, email, first, last, stamp, stamp)
                for i, (cid, email, first, last) in enumerate(buyers)
            ],
        )
        con.executemany(
            "UPDATE customers SET firstname = firstname || ' Jr', updated_at = ? WHERE id = ?",
            [(stamp, cid) for cid, *_ in renamed],
        )
    con.close()
    return {"new_orders": len(buyers), "updated_accounts": len(renamed)}


def timed_phases(daily_job: Any, incremental: Any) -> dict[str, float]:
    """Wrap the daily job's phase functions (this process only) to time each phase."""
    spent: dict[str, float] = defaultdict(float)

    def wrap(owner: Any, name: str, phase: str) -> None:
        real = getattr(owner, name)

        @functools.wraps(real)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent[phase] += time.perf_counter() - t0

        setattr(owner, name, timed)

    wrap(daily_job, "pull_cc_unsubscribes", "unsubscribes")
    wrap(incremental, "fetch_changed", "fetch")
    wrap(daily_job, "recompute_stats", "stats")
    wrap(daily_job, "evaluate_segments", "segments")
    wrap(daily_job, "apply_diff", "cc_diff")
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="flushed")
    ap.add_argument(
        "--cc-ids",
        choices=("unknown", "known"),
        default="unknown",
        help="unknown: the mirror has no CC contact ids yet (the first daily after an import "
        "learns the leavers' ids with one export); known: all learned earlier",
    )
    ap.add_argument("--keep-db", action="store_true", help="keep the private database")
    args = ap.parse_args()

    work = ROOT / "instance" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    source = ensure_store(
        work / f"store-{args.customers}-s{args.seed}.sqlite",
        customers=args.customers,
        seed=args.seed,
    )
    tmp = Path(tempfile.mkdtemp(prefix="daily-bench-", dir=work))
    store, cc_db, log = tmp / "store.sqlite", tmp / "cc-sandbox.sqlite", tmp / "servers.log"
    shutil.copyfile(source, store)  # the benchmark changes its copy
    server = normalize_database_url(
        os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
    )
    admin, db_url = private_database(server)
    redis.Redis.from_url(args.redis_url).flushdb()
    procs, plugin, app, result = [], None, None, {}
    try:
        mag, magento_url = gunicorn(
            f"cc_storeplugin.sandbox.magento:create_app(store={str(store)!r}, "
            f"max_page_size={PAGE})",
            2,
            log,
        )
        procs.append(mag)
        ccp, cc_url = gunicorn(
            "cc_storeplugin.sandbox.constantcontact:create_app("
            f"db_path={str(cc_db)!r}, rate_per_s=4, daily_quota=None)",
            4,
            log,
        )
        procs.append(ccp)
        plugin_port = free_port()
        os.environ.update(
            {
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
        )
        import logging

        from cc_storeplugin.app import create_app
        from cc_storeplugin.extensions import db
        from cc_storeplugin.sandbox.merchant import connect_magento, sign_in
        from cc_storeplugin.sandbox.server import serve_in_thread

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = create_app()
        with app.app_context():
            db.create_all()
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
        plugin.stop()
        plugin = None
        redis.Redis.from_url(args.redis_url).flushdb()  # drop the queued import

        with app.app_context():
            result = run(args, app, db, hs.connection_id, store, cc_db, magento_url, cc_url)
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
        if not args.keep_db:
            with admin.connect() as c:
                name = make_url(db_url).database
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        redis.Redis.from_url(args.redis_url).flushdb()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


def run(args, app, db, connection_id, store, cc_db, magento_url, cc_url) -> dict[str, Any]:
    """Build the in-sync state, change the store, run and time one daily sync."""
    from cc_storeplugin.constantcontact import lists as cc_lists
    from cc_storeplugin.constantcontact.client import CCClient
    from cc_storeplugin.models import Segment, SegmentTransition, StoreConnection, SyncRun
    from cc_storeplugin.segments.builtin import ensure_builtin_segments
    from cc_storeplugin.segments.evaluate import evaluate_segments
    from cc_storeplugin.sync import daily_job, incremental

    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    newest = max(
        con.execute("SELECT MAX(updated_at) FROM customers").fetchone()[0],
        con.execute("SELECT MAX(updated_at) FROM orders").fetchone()[0],
    )
    con.close()
    t0 = datetime.strptime(newest, STORE_TIME).replace(tzinfo=UTC) + timedelta(minutes=1)
    setup: dict[str, float] = {}
    mark = time.perf_counter()

    def step(name: str) -> None:
        nonlocal mark
        setup[name] = round(time.perf_counter() - mark, 1)
        mark = time.perf_counter()

    conn = db.session.get(StoreConnection, connection_id)
    build_mirror(db, connection_id, store, step)
    evaluate_segments(connection_id, t0)  # the import's evaluation (history only)
    step("first_evaluation")
    client = CCClient(conn.merchant_id)
    for seg in ensure_builtin_segments(connection_id):
        seg.cc_list_id = cc_lists.find_or_create_list(client, seg.name)
    db.session.commit()
    fill_cc(db, connection_id, cc_db, args.cc_ids == "known")
    step("cc_fill")
    conn = db.session.get(StoreConnection, connection_id)
    import_run = db.session.scalar(
        db.select(SyncRun).where(SyncRun.connection_id == connection_id, SyncRun.kind == "import")
    )
    if import_run is not None:
        import_run.status, import_run.started_at, import_run.finished_at = "COMPLETE", t0, t0
    marks = {"customers": t0.isoformat(), "orders": t0.isoformat(),
             "unsubscribes": datetime.now(UTC).isoformat()}  # fmt: skip
    conn.settings = {**(conn.settings or {}), "watermarks": marks}
    conn.status, conn.last_synced_at = "active", t0
    db.session.commit()

    changes = change_store(store, args.customers, t0 + timedelta(hours=12))
    now = t0 + timedelta(days=1)
    spent = timed_phases(daily_job, incremental)
    mag0, cc0 = calls(magento_url), calls(cc_url)
    started = time.perf_counter()
    outcome = daily_job.run_daily_sync(connection_id, "bench", now.isoformat())
    wall = time.perf_counter() - started
    magento_calls, cc_calls = calls(magento_url) - mag0, calls(cc_url) - cc0
    run_row = db.session.scalar(db.select(SyncRun).where(SyncRun.job_id.like("%-bench")))
    totals = dict(run_row.totals or {})
    transitions = db.session.scalar(
        db.select(db.func.count()).where(SegmentTransition.sync_run_id == run_row.id)
    )

    # before the extra evaluation below, which moves memberships without a CC step
    lists = lists_match(db, connection_id, cc_url, Segment) if outcome == "complete" else {}
    lists_ok = bool(lists) and all(cc == want for cc, want in lists.values())

    started = time.perf_counter()
    evaluated = evaluate_segments(connection_id, now + timedelta(days=1))
    eval_s = time.perf_counter() - started
    members = {k: r["members"] for k, r in evaluated.items()}
    customers_in_mirror = db.session.scalar(text("SELECT COUNT(*) FROM customers"))
    return {
        "customers": args.customers,
        "contacts": customers_in_mirror,
        "cc_ids": args.cc_ids,
        "outcome": outcome,
        "wall_s": round(wall, 2),
        "phase_s": {p: round(spent.get(p, 0.0), 2) for p in PHASES},
        "cc_calls": cc_calls,
        "magento_calls": magento_calls,
        "changed_customers": totals.get("changed_customers"),
        "changed_orders": totals.get("changed_orders"),
        "store_changes": changes,
        "stats_changed": totals.get("stats_changed"),
        "transitions": transitions,
        "segments": totals.get("segments"),
        "cc": totals.get("cc"),
        "eval_s": round(eval_s, 2),
        "members": members,
        "lists_ok": lists_ok,
        **({} if lists_ok else {"lists_cc_vs_mirror": lists}),
        "setup_s": setup,
    }


def lists_match(db, connection_id: int, cc_url: str, segment_model) -> dict[str, list[int]]:
    """Each CC list holds as many contacts as its segment has sendable members (the counts
    the CC sandbox reports; invalid emails and unsubscribed contacts are never sent)."""
    from cc_storeplugin.constantcontact.emails import check_email

    counts = {}
    for seg in db.session.scalars(
        db.select(segment_model).where(segment_model.connection_id == connection_id)
    ):
        emails = db.session.scalars(
            db.text(
                "SELECT c.email FROM segment_memberships m JOIN customers c ON c.id ="
                " m.customer_id WHERE m.segment_id = :s AND c.consent_state <> 'unsubscribed'"
            ).bindparams(s=seg.id)
        )
        want = sum(1 for e in emails if check_email(e)[0] is not None)
        body = requests.get(f"{cc_url}/_sandbox/lists/{seg.cc_list_id}/emails", timeout=600)
        counts[seg.key] = [body.json()["count"], want]
    return counts


if __name__ == "__main__":
    main()
