"""`cc-storeplugin demo`: the main job end to end on embedded defaults.

SQLite in instance/, the embedded queue, and the Magento and Constant Contact sandboxes on
loopback: a scripted merchant signs in with Constant Contact, connects a generated Magento
store through the real integration handshake, and the import runs with a progress bar; then
the segment counts and the completion email are printed.
"""

from __future__ import annotations

import email
import email.policy
import time

import click
import requests

from cc_storeplugin.config import ensure_local_secrets, instance_dir


def run_demo(customers: int = 20000, keep_running: bool = False) -> int:
    """Run the demo; returns the process exit code."""
    from flask_migrate import upgrade

    from cc_storeplugin.extensions import db
    from cc_storeplugin.models import StoreConnection, SyncRun
    from cc_storeplugin.progress import follow_run
    from cc_storeplugin.sandbox.launch import default_store_path
    from cc_storeplugin.sandbox.merchant import connect_magento, sign_in
    from cc_storeplugin.sandbox.stack import start_stack
    from cc_storeplugin.sandbox.storegen import ensure_store

    inst = instance_dir()
    click.echo(f"instance: {inst}")
    store = default_store_path(customers, 1)
    store.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ensure_store(store, customers=customers, seed=1)
    click.echo(
        f"store: {customers} generated customers in {store} ({time.monotonic() - started:.1f} s)"
    )
    config = {
        "DEMO": True,
        "REDIS_URL": None,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{inst / 'demo.sqlite'}",
        **ensure_local_secrets(inst),
    }
    stack = start_stack(store, config, start_worker=False)
    try:
        with stack.app.app_context():
            upgrade()
        from cc_storeplugin.queueing import EmbeddedWorker

        stack.worker = EmbeddedWorker(stack.app).start()
        click.echo(f"plugin:          {stack.plugin_url}")
        click.echo(f"Magento sandbox: {stack.magento.url}/")
        click.echo(f"CC sandbox:      {stack.cc.url}/v3")
        browser = requests.Session()
        sign_in(browser, stack.plugin_url)
        click.echo("signed in with Constant Contact (OAuth2 + PKCE)")
        hs = connect_magento(browser, stack.plugin_url, stack.magento.url)
        click.echo(
            f"Magento integration activated; consumer {hs.consumer_key[:6]}…, "
            f"popup returned to {hs.final_url}"
        )
        with stack.app.app_context():
            run_id = db.session.scalars(
                db.select(SyncRun.id).where(SyncRun.connection_id == hs.connection_id)
            ).first()
            click.echo(f"importing (run {run_id}):")
            status = follow_run(run_id)
            db.session.expire_all()
            conn = db.session.get(StoreConnection, hs.connection_id)
            run = db.session.get(SyncRun, run_id)
            click.echo(
                f"connection {conn.id}: {conn.status}; store view "
                f"{conn.settings['store']['name']} ({conn.settings['store']['code']})"
            )
            ok = status == "COMPLETE"
            if ok:
                _print_summary(run)
            health = stack.app.test_client().get("/healthz")
            click.echo(f"healthz {health.status_code}")
        if keep_running:
            click.echo("Servers keep running; press Ctrl-C to stop.")
            while True:
                time.sleep(3600)
        return 0 if ok and conn.status == "active" and health.status_code == 200 else 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


def _print_summary(run) -> None:
    """The segment counts and the completion email, as the merchant would read it."""
    totals = run.totals
    click.echo("segments (in the store / in Constant Contact):")
    for item in totals["lists"]:
        click.echo(
            f"  {item['name']:<36} {item['members_in_store']:>9,} / {item['members_in_cc']:,}"
        )
    skipped = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in totals["skipped"].items() if v)
    click.echo(f"skipped: {skipped or 'none'}")
    calls = totals["api_calls"]
    click.echo(
        f"API calls: store {calls['store']:,}, Constant Contact {calls['constantcontact']:,}; "
        f"{totals['duration_s']} s"
    )
    outbox = sorted((instance_dir() / "outbox").glob("*.eml"))
    if outbox:
        click.echo(f"completion email ({outbox[-1]}):")
        message = email.message_from_bytes(outbox[-1].read_bytes(), policy=email.policy.default)
        click.echo(f"  To: {message['To']}\n  Subject: {message['Subject']}")
        body = message.get_body(preferencelist=("plain",))
        click.echo("  " + body.get_content().strip().replace("\n", "\n  "))
