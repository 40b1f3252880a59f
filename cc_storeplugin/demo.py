"""`cc-storeplugin demo`: the main job end to end on embedded defaults.

For now the skeleton's smoke path: migrate the SQLite database, start the embedded
queue, push a job through it and print what it recorded, plus /healthz.
"""

from __future__ import annotations

import json
import time

import click

from cc_storeplugin.config import ensure_local_secrets, instance_dir


def run_demo(timeout: float = 60.0) -> int:
    """Run the demo; returns the process exit code."""
    from flask_migrate import upgrade

    from cc_storeplugin.app import create_app
    from cc_storeplugin.extensions import db
    from cc_storeplugin.jobs import enqueue
    from cc_storeplugin.models import SyncRun
    from cc_storeplugin.queueing import EmbeddedWorker
    from cc_storeplugin.sync.runs import create_run
    from cc_storeplugin.sync.smoke import run_smoke

    inst = instance_dir()
    app = create_app({"DEMO": True, "REDIS_URL": None, **ensure_local_secrets(inst)})
    click.echo(f"instance: {inst}")
    click.echo(f"database: {app.config['SQLALCHEMY_DATABASE_URI']}")
    with app.app_context():
        upgrade()
        click.echo("schema: migrated to head")
        worker = EmbeddedWorker(app).start()
        try:
            run = create_run("smoke")
            job = enqueue(run_smoke, run.id, queue="default", sync_run_id=run.id)
            click.echo(f"queued job {job.id} (run {run.id}) on the embedded queue")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                db.session.expire_all()
                run = db.session.get(SyncRun, run.id)
                if run.status in ("COMPLETE", "FAILED"):
                    break
                time.sleep(0.1)
        finally:
            worker.stop()
        click.echo(f"run {run.id}: {run.status} totals={json.dumps(run.totals, sort_keys=True)}")
        health = app.test_client().get("/healthz")
        click.echo(f"healthz {health.status_code}: {health.get_data(as_text=True).strip()}")
        return 0 if run.status == "COMPLETE" and health.status_code == 200 else 1
