"""Job functions used by the queue tests (they must live in an importable module)."""

from rq import get_current_job

from cc_storeplugin.jobs import app_job
from cc_storeplugin.queueing import queues
from cc_storeplugin.sync.runs import mark_complete, mark_running


@app_job
def flaky(run_id: int, counter_key: str, fail_times: int) -> int:
    """Fails on its first ``fail_times`` attempts, then completes its run."""
    attempt = queues.connection.incr(counter_key)
    job = get_current_job()
    mark_running(run_id, job.id if job else None)
    if attempt <= fail_times:
        raise RuntimeError(f"attempt {attempt} fails")
    mark_complete(run_id, {"attempts": attempt})
    return attempt
