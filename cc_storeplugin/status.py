"""Plain-text status of connections and their latest runs, for `cc-storeplugin status`."""

from __future__ import annotations

from sqlalchemy import select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection, SyncRun
from cc_storeplugin.progress import render


def connection_status_lines(connection_id: int | None = None) -> list[str]:
    """One line per connection (or the one asked for) with its latest run."""
    query = select(StoreConnection).order_by(StoreConnection.id)
    if connection_id is not None:
        query = query.where(StoreConnection.id == connection_id)
    lines = []
    for conn in db.session.scalars(query):
        run = db.session.scalars(
            select(SyncRun)
            .where(SyncRun.connection_id == conn.id)
            .order_by(SyncRun.created_at.desc(), SyncRun.id.desc())
            .limit(1)
        ).first()
        line = f"connection {conn.id} [{conn.platform}] {conn.status}"
        if conn.status_reason:
            line += f" ({conn.status_reason})"
        if run is not None:
            line += f" | last run {run.id} {run.kind} {run.status} {render(run)}"
            if run.error_message:
                line += f" | {run.error_message}"
        lines.append(line.rstrip())
    return lines
