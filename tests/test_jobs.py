"""Jobs go through the one enqueue helper and run on a real Redis-backed worker."""

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from rq import Retry
from rq.job import JobStatus

from cc_storeplugin.extensions import db
from cc_storeplugin.jobs import build_cron_scheduler, enqueue
from cc_storeplugin.models import SyncRun
from cc_storeplugin.queueing import EmbeddedWorker, queues
from cc_storeplugin.sync.runs import create_run
from tests import job_fixtures
from tests.conftest import dispose_engines, make_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def redis_app(redis_url, sqlite_url):
    app = make_app(sqlite_url, REDIS_URL=redis_url)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        dispose_engines()


def run_worker_process(app) -> subprocess.CompletedProcess:
    """`cc-storeplugin worker --burst` in its own process, on the app's DB and Redis."""
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"],
        "ENCRYPTION_KEY": app.config["ENCRYPTION_KEY"],
        "SECRET_KEY": "worker-secret",
        "PYTHONPATH": str(ROOT),
    }
    exe = Path(sys.executable).with_name("cc-storeplugin")
    return subprocess.run(
        [str(exe), "worker", "--burst"], env=env, capture_output=True, text=True, timeout=120
    )


def _run(run_id: int) -> SyncRun:
    db.session.expire_all()
    return db.session.get(SyncRun, run_id)


@pytest.mark.redis
def test_a_failed_attempt_is_retried_by_a_real_worker_and_completes(redis_app):
    run = create_run("smoke")
    job = enqueue(
        job_fixtures.flaky,
        run.id,
        f"flaky:{run.id}",
        1,
        queue="sync",
        job_id=f"flaky-{run.id}",
        retry=Retry(max=2),
        sync_run_id=run.id,
    )
    proc = run_worker_process(redis_app)
    assert proc.returncode == 0, proc.stderr
    run = _run(run.id)
    assert run.status == "COMPLETE"
    assert run.attempts == 2
    assert run.totals == {"attempts": 2}
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED


@pytest.mark.redis
def test_when_retries_run_out_the_run_is_failed_with_the_reason(redis_app):
    run = create_run("smoke")
    enqueue(
        job_fixtures.flaky,
        run.id,
        f"flaky:{run.id}",
        5,
        queue="sync",
        retry=Retry(max=1),
        sync_run_id=run.id,
    )
    proc = run_worker_process(redis_app)
    assert proc.returncode == 0, proc.stderr
    run = _run(run.id)
    assert run.status == "FAILED"
    assert run.attempts == 2
    assert run.error_message == "RuntimeError: attempt 2 fails"


@pytest.mark.redis
def test_the_same_job_id_is_enqueued_once(redis_app):
    run = create_run("smoke")
    first = enqueue(job_fixtures.flaky, run.id, "k", 0, queue="imports", job_id=f"import-{run.id}")
    second = enqueue(job_fixtures.flaky, run.id, "k", 0, queue="imports", job_id=f"import-{run.id}")
    assert first.id == second.id
    assert queues.get("imports").job_ids == [f"import-{run.id}"]


@pytest.mark.redis
def test_jobs_are_stored_as_json_not_pickle(redis_app):
    run = create_run("smoke")
    job = enqueue(job_fixtures.flaky, run.id, "k", 0, queue="default")
    payload = json.loads(zlib.decompress(queues.connection.hget(job.key, "data")))
    assert payload[0] == "tests.job_fixtures.flaky"
    assert payload[2] == [run.id, "k", 0]


def test_an_unknown_queue_is_refused(app):
    with pytest.raises(ValueError, match="unknown queue 'fast'"):
        enqueue(job_fixtures.flaky, 1, "k", 0, queue="fast")


def test_embedded_mode_runs_the_same_jobs_with_retries(app):
    assert queues.embedded
    run = create_run("smoke")
    enqueue(
        job_fixtures.flaky, run.id, f"flaky-emb:{run.id}", 1, retry=Retry(max=2), sync_run_id=run.id
    )
    EmbeddedWorker(app).drain()
    run = _run(run.id)
    assert (run.status, run.attempts) == ("COMPLETE", 2)


@pytest.mark.redis
def test_cron_ticks_enqueue_json_jobs_a_worker_can_run(redis_app):
    scheduler = build_cron_scheduler()
    scheduler.enqueue_jobs()
    assert queues.get("default").count == 3  # heartbeat + the two Kibo dispatch ticks
    proc = run_worker_process(redis_app)
    assert proc.returncode == 0, proc.stderr
    assert queues.connection.get("cc_storeplugin:cron:last_tick") is not None
