"""Terminal progress for a run: a bar with phase, counts and ETA, read from the SyncRun row."""

from __future__ import annotations

import sys
import time

from cc_storeplugin.extensions import db
from cc_storeplugin.models import SyncRun, utcnow

WIDTH = 30


def render(run: SyncRun) -> str:
    """One line: ``[#####.....] 41% customers 123,000/300,000 ETA 1 min 20 s``."""
    done, total = run.progress_done or 0, run.progress_total or 0
    frac = min(done / total, 1.0) if total else 0.0
    bar = "#" * int(frac * WIDTH) + "." * (WIDTH - int(frac * WIDTH))
    line = (
        f"[{bar}] {frac:4.0%} {run.phase or run.status} {done:,}/{total:,}"
        if total
        else (f"[{bar}] {run.phase or run.status}")
    )
    eta = eta_s(run)
    if eta is not None:
        line += f" ETA {eta // 60} min {eta % 60} s" if eta >= 60 else f" ETA {eta} s"
    return line


def eta_s(run: SyncRun) -> int | None:
    """Remaining seconds of the current phase at the rate so far (None when unknown)."""
    if run.status != "RUNNING" or not run.progress_total or not run.progress_done:
        return None
    started = run.started_at or run.created_at
    elapsed = (utcnow() - started).total_seconds()
    return int(elapsed / run.progress_done * (run.progress_total - run.progress_done))


def follow_run(run_id: int, *, every_s: float = 0.5, out=None) -> str:
    """Redraw the run's bar until it completes or fails; returns the final status."""
    out = out or sys.stdout
    tty = out.isatty()
    last = ""
    while True:
        db.session.expire_all()
        run = db.session.get(SyncRun, run_id)
        line = render(run)
        if line != last:
            out.write(("\r" + line.ljust(100)) if tty else line + "\n")
            out.flush()
            last = line
        if run.status in ("COMPLETE", "FAILED"):
            out.write("\n" if tty else "")
            out.write(
                f"run {run_id}: {run.status}"
                + (f" ({run.error_message})" if run.error_message else "")
                + "\n"
            )
            return run.status
        time.sleep(every_s)
