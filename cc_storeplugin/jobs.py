"""Named queues, the one enqueue helper, the failure callback, the worker and the cron ticks.

Job functions take ids (never ORM objects), run inside an app context and are idempotent;
long jobs keep their progress in a SyncRun row whose id travels in ``job.meta``.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from flask import Flask, has_app_context
from rq import Callback, Retry, Worker
from rq.exceptions import DuplicateJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from cc_storeplugin.queueing import QUEUE_NAMES, queues

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_RETRY_INTERVALS = (10, 60, 300)
CRON_HEARTBEAT_KEY = "cc_storeplugin:cron:last_tick"


def app_job(func: Callable[P, R]) -> Callable[P, R]:
    """Run a job function inside an app context and release its DB session afterwards."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from cc_storeplugin.extensions import db

        if has_app_context():
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()
        from cc_storeplugin.app import create_app

        with create_app().app_context():
            try:
                return func(*args, **kwargs)
            finally:
                db.session.remove()

    return wrapper


def enqueue(
    func: Callable[..., Any] | str,
    *args: Any,
    queue: str = "default",
    job_id: str | None = None,
    timeout: int | str = "30m",
    retry: Retry | None = None,
    sync_run_id: int | None = None,
    meta: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Job:
    """Enqueue ``func(*args, **kwargs)`` with a timeout, retries and the failure callback.

    A ``job_id`` makes the job unique: enqueueing the same id while it exists returns the
    job already queued or running instead of adding a second one.
    """
    if queue not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r}; queues are {', '.join(QUEUE_NAMES)}")
    q = queues.get(queue)
    job_meta = dict(meta or {})
    if sync_run_id is not None:
        job_meta["sync_run_id"] = sync_run_id
    options: dict[str, Any] = {
        "args": args,
        "kwargs": kwargs,
        "job_timeout": timeout,
        "retry": retry or Retry(max=3, interval=list(DEFAULT_RETRY_INTERVALS)),
        "on_failure": Callback(on_job_failure),
        "failure_ttl": 7 * 24 * 3600,
        "result_ttl": 24 * 3600,
        "meta": job_meta,
    }
    if job_id is not None:
        options.update(job_id=job_id, unique=True)
    try:
        return q.enqueue(func, **options)
    except DuplicateJobError:
        log.info("job %s already queued or running; not enqueued twice", job_id)
        return Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)


def on_job_failure(job: Job, connection: Any, exc_type: type, exc: BaseException, tb: Any) -> None:
    """Record an attempt's failure; mark the run FAILED only when no retry is left."""
    run_id = (job.meta or {}).get("sync_run_id")
    final = not job.retries_left
    log.warning("job %s failed (%s: %s); final=%s", job.id, exc_type.__name__, exc, final)
    if run_id is None:
        return
    from cc_storeplugin.sync.runs import mark_failed, note_attempt_failed

    def record() -> None:
        if not final:
            note_attempt_failed(run_id, f"{exc_type.__name__}: {exc}")
            return
        mark_failed(run_id, f"{exc_type.__name__}: {exc}")
        hook = (job.meta or {}).get("final_failure")
        if hook:  # e.g. the import's: mark the connection failed and email the merchant
            module, _, name = hook.rpartition(".")
            getattr(importlib.import_module(module), name)(run_id, f"{exc_type.__name__}: {exc}")

    if has_app_context():
        record()
    else:
        from cc_storeplugin.app import create_app

        with create_app().app_context():
            record()


def run_worker(app: Flask, queue_names: list[str] | None = None, burst: bool = False) -> bool:
    """Run an RQ worker (forking, with the scheduler for retry intervals) in this app's context."""
    with app.app_context():
        qs = [queues.get(n) for n in (queue_names or list(QUEUE_NAMES))]
        worker = Worker(qs, connection=queues.connection, serializer=JSONSerializer)
        return worker.work(burst=burst, with_scheduler=True)


def cron_heartbeat() -> str:
    """Record that the cron process is alive; /healthz reports the last tick."""
    now = datetime.now(UTC).isoformat()
    queues.connection.set(CRON_HEARTBEAT_KEY, now)
    return now


def cron_registrations() -> list[dict[str, Any]]:
    """The periodic ticks `cc-storeplugin cron` registers; each tick only fans out jobs.

    The two Kibo ticks run every min(KIBO_EVENTS_INTERVAL_S, KIBO_UNSUBSCRIBES_INTERVAL_S)
    seconds; each enqueues only the connections that are due, once per period.
    """
    from cc_storeplugin.sync.daily_job import dispatch_daily_syncs
    from cc_storeplugin.sync.kibo_flush import dispatch_kibo_flushes
    from cc_storeplugin.sync.kibo_settings import DEFAULT_INTERVAL_S, interval_s
    from cc_storeplugin.sync.kibo_unsubscribes import dispatch_unsubscribe_polls

    kibo_tick = (
        min(interval_s("events"), interval_s("unsubscribes"))
        if has_app_context()
        else DEFAULT_INTERVAL_S
    )
    return [
        {
            "func": dispatch_kibo_flushes,
            "queue_name": "default",
            "interval": kibo_tick,
            "name": "kibo-events-dispatch",
        },
        {
            "func": dispatch_unsubscribe_polls,
            "queue_name": "default",
            "interval": kibo_tick,
            "name": "kibo-unsubscribes-dispatch",
        },
        {"func": cron_heartbeat, "queue_name": "default", "interval": 60, "name": "heartbeat"},
        # Hourly: enqueue the daily sync of every connection due (at DAILY_SYNC_HOUR_UTC, and
        # any whose last sync is older than 24 h: the cron skips runs it missed while down).
        {
            "func": dispatch_daily_syncs,
            "queue_name": "default",
            "cron": "5 * * * *",
            "name": "daily-sync-dispatch",
        },
    ]


def build_cron_scheduler() -> Any:
    """An RQ CronScheduler with our ticks, enqueueing with the JSON serializer our workers use.

    rq 2.12's ``CronJob.enqueue`` always pickles; the subclass below differs only in that.
    """
    from rq import Queue
    from rq.cron import CronJob, CronScheduler

    class JsonCronJob(CronJob):
        def enqueue(self, connection: Any) -> Job:
            queue = Queue(self.queue_name, connection=connection, serializer=JSONSerializer)
            job = queue.enqueue(self.func, *self.args, **self.kwargs, **self.job_options)
            connection.zadd(self.job_history_key, {job.id: job.enqueued_at.timestamp()})
            return job

    scheduler = CronScheduler(connection=queues.connection)
    for reg in cron_registrations():
        scheduler.register(**reg).__class__ = JsonCronJob
    return scheduler


def run_cron(app: Flask) -> None:
    """Run exactly one cron process; it only enqueues, workers execute."""
    with app.app_context():
        build_cron_scheduler().start()
