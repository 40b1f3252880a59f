"""Long-running work and its evidence: sync runs, quarantined records, inbound store events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cc_storeplugin.models.base import Base, BigId, UTCDateTime, utcnow

RUN_KINDS = ("import", "daily", "events", "unsubscribes", "smoke")
RUN_STATUSES = ("QUEUED", "RUNNING", "COMPLETE", "FAILED")
ERROR_REASONS = (
    "invalid_email",
    "missing_field",
    "unsubscribed",
    "cc_rejected",
    "platform_error",
    "internal",
)
EVENT_STATUSES = ("queued", "applied", "ignored", "failed")


class SyncRun(Base):
    """One job's run (import, daily sync, ...): status, totals, live progress and checkpoint."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        CheckConstraint(f"kind IN {RUN_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        Index("ix_sync_runs_conn_created", "connection_id", "created_at"),
        Index("ix_sync_runs_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("store_connections.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="QUEUED")
    job_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    phase: Mapped[str | None] = mapped_column(String(64))
    progress_done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    totals: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )

    connection: Mapped[StoreConnection | None] = relationship()  # noqa: F821


class SyncError(Base):
    """A record quarantined by a run: which record, why (category) and the message."""

    __tablename__ = "sync_errors"
    __table_args__ = (
        CheckConstraint(f"reason IN {ERROR_REASONS!r}", name="reason"),
        Index("ix_sync_errors_run", "run_id"),
        Index("ix_sync_errors_conn_reason", "connection_id", "reason"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("sync_runs.id", ondelete="CASCADE"), nullable=False
    )
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("store_connections.id", ondelete="CASCADE")
    )
    record_type: Mapped[str] = mapped_column(String(32), nullable=False)
    record_ref: Mapped[str] = mapped_column(String(320), nullable=False)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StoreEvent(Base):
    """An inbound platform event, stored before it is acknowledged; applied exactly once."""

    __tablename__ = "store_events"
    __table_args__ = (
        UniqueConstraint("platform", "event_id"),
        CheckConstraint(f"status IN {EVENT_STATUSES!r}", name="status"),
        Index("ix_store_events_status_received", "status", "received_at"),
        Index("ix_store_events_conn_entity", "connection_id", "entity_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16), nullable=False)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False)
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("store_connections.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    site_id: Mapped[str | None] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(128), nullable=False)
    entity_id: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
