"""`cc-storeplugin demo`: the main job end to end on embedded defaults.

SQLite in instance/, the embedded queue, and the Magento and Constant Contact sandboxes on
loopback: a scripted merchant signs in with Constant Contact, connects a generated Magento
store through the real integration handshake, and the import is requested.
"""

from __future__ import annotations

import json
import time

import click
import requests

from cc_storeplugin.config import ensure_local_secrets, instance_dir


def run_demo(timeout: float = 120.0, customers: int = 2000, keep_running: bool = False) -> int:
    """Run the demo; returns the process exit code."""
    from flask_migrate import upgrade

    from cc_storeplugin.extensions import db
    from cc_storeplugin.models import StoreConnection, SyncRun
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
        deadline = time.monotonic() + timeout
        with stack.app.app_context():
            while True:
                db.session.expire_all()
                conn = db.session.get(StoreConnection, hs.connection_id)
                run = db.session.scalars(
                    db.select(SyncRun).where(SyncRun.connection_id == conn.id)
                ).first()
                if run is not None and run.phase == "requested" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            click.echo(
                f"connection {conn.id}: {conn.status}; store view "
                f"{conn.settings['store']['name']} ({conn.settings['store']['code']})"
            )
            ok = run is not None and run.phase == "requested"
            if ok:
                click.echo(f"import requested: {json.dumps(run.totals, sort_keys=True)}")
            health = stack.app.test_client().get("/healthz")
            click.echo(f"healthz {health.status_code}")
        if keep_running:
            click.echo("Servers keep running; press Ctrl-C to stop.")
            while True:
                time.sleep(3600)
        return 0 if ok and conn.status == "importing" and health.status_code == 200 else 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
