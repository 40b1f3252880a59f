"""The `cc-storeplugin` command: the interface contract's commands, one function each."""

from __future__ import annotations

import json
import sys
import time

import click


def _app(**overrides):
    from cc_storeplugin.app import create_app

    return create_app(overrides or None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Connect Magento 2 and Kibo stores to Constant Contact."""


@main.command()
@click.option("--customers", default=20000, show_default=True, help="Size of the generated store.")
@click.option("--keep-running", is_flag=True, help="Leave the servers up to browse them.")
def demo(customers: int, keep_running: bool) -> None:
    """Run the main job end to end on embedded defaults (SQLite, in-process queue)."""
    from cc_storeplugin.demo import run_demo

    sys.exit(run_demo(customers=customers, keep_running=keep_running))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Serve the web app (development server; use gunicorn in production)."""
    app = _app()
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.argument("queue_names", nargs=-1)
def worker(burst: bool, queue_names: tuple[str, ...]) -> None:
    """Run a worker on the imports, sync and default queues (or the ones named)."""
    from cc_storeplugin.jobs import run_worker

    app = _app(DB_ASYNC_COMMIT=True)  # jobs resume from checkpoints (see app.py)
    if not app.config.get("REDIS_URL"):
        raise click.UsageError("REDIS_URL is not set: a worker needs a shared Redis server")
    run_worker(app, list(queue_names) or None, burst=burst)


@main.command()
def cron() -> None:
    """Enqueue the periodic ticks (run exactly one of these)."""
    from cc_storeplugin.jobs import run_cron

    app = _app(DB_ASYNC_COMMIT=True)  # jobs resume from checkpoints (see app.py)
    if not app.config.get("REDIS_URL"):
        raise click.UsageError("REDIS_URL is not set: cron needs a shared Redis server")
    run_cron(app)


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the Alembic migrations to DATABASE_URL."""
    from flask_migrate import upgrade

    app = _app()
    with app.app_context():
        upgrade(revision=revision)
    click.echo(f"database at {revision}")


@main.command()
@click.argument("name", type=click.Choice(["magento", "kibo", "constantcontact"]))
@click.option("--port", default=0, type=int, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--store", "store_path", type=click.Path(dir_okay=False), help="Store SQLite file.")
@click.option("--customers", default=2000, show_default=True, help="Size of a generated store.")
@click.option("--seed", default=1, show_default=True)
@click.option("--latency-ms", default=0, show_default=True)
@click.option("--p429", default=0.0, show_default=True, help="Share of requests answered 429.")
@click.option("--p5xx", default=0.0, show_default=True, help="Share answered 5xx.")
@click.option("--pdrop", default=0.0, show_default=True, help="Share of dropped connections.")
def sandbox(
    name: str,
    port: int,
    host: str,
    store_path: str | None,
    customers: int,
    seed: int,
    latency_ms: int,
    p429: float,
    p5xx: float,
    pdrop: float,
) -> None:
    """Serve a simulated Magento 2, Kibo or Constant Contact server."""
    from cc_storeplugin.sandbox.launch import build_sandbox
    from cc_storeplugin.sandbox.server import serve_in_thread

    app = build_sandbox(
        name,
        store_path=store_path,
        customers=customers,
        seed=seed,
        latency_ms=latency_ms,
        p429=p429,
        p5xx=p5xx,
        pdrop=pdrop,
    )
    running = serve_in_thread(app, port=port, host=host)
    click.echo(json.dumps({"sandbox": name, "url": f"http://{host}:{running.port}"}), nl=True)
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        running.stop()


@main.command("import")
@click.argument("connection_id", type=int)
@click.option("--wait/--no-wait", default=None, help="Follow the run (default: when embedded).")
def import_(connection_id: int, wait: bool | None) -> None:
    """Start the initial import of a connection (again)."""
    from cc_storeplugin.extensions import db
    from cc_storeplugin.models import StoreConnection
    from cc_storeplugin.progress import follow_run
    from cc_storeplugin.sync.import_job import start_import

    app = _app()
    with app.app_context():
        if db.session.get(StoreConnection, connection_id) is None:
            click.echo(f"no connection {connection_id}", err=True)
            sys.exit(1)
        run_id = start_import(connection_id)
        click.echo(f"import queued as run {run_id}")
        embedded = not app.config.get("REDIS_URL")
        if wait or (wait is None and embedded):
            from cc_storeplugin.queueing import EmbeddedWorker

            worker = EmbeddedWorker(app).start() if embedded else None
            try:
                status = follow_run(run_id)
            finally:
                if worker:
                    worker.stop()
            sys.exit(0 if status == "COMPLETE" else 1)


@main.command()
@click.argument("connection_id", required=False, type=int)
def status(connection_id: int | None) -> None:
    """Show connections with their latest run and its progress."""
    from cc_storeplugin.status import connection_status_lines

    app = _app()
    with app.app_context():
        lines = connection_status_lines(connection_id)
    if connection_id is not None and not lines:
        click.echo(f"no connection {connection_id}", err=True)
        sys.exit(1)
    click.echo("\n".join(lines) if lines else "no store connections yet")


def run_local(argv: list[str] | None = None) -> None:
    """Entry point for `python -m cc_storeplugin` (same as the console script)."""
    main.main(args=argv, prog_name="cc-storeplugin")
