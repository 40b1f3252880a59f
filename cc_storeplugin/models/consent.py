"""The consent ledger: every subscribe / unsubscribe, append-only, with who, what, when, source."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from cc_storeplugin.models.base import Base, BigId, UTCDateTime, utcnow

CONSENT_ACTIONS = ("subscribed", "unsubscribed", "skipped")
CONSENT_SOURCES = ("store", "constantcontact", "plugin", "merchant")


class LedgerIsAppendOnly(RuntimeError):
    """Raised when code tries to change or delete a ledger entry."""


class ConsentEvent(Base):
    """One consent fact; ``skipped`` records a contact deliberately left out of a list and why."""

    __tablename__ = "consent_events"
    __table_args__ = (
        CheckConstraint(f"action IN {CONSENT_ACTIONS!r}", name="action"),
        CheckConstraint(f"source IN {CONSENT_SOURCES!r}", name="source"),
        Index("ix_consent_events_conn_email", "connection_id", "email", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("store_connections.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id"))


@event.listens_for(Session, "before_flush")
def _refuse_ledger_rewrites(session: Session, flush_context: object, instances: object) -> None:
    """Keep the ledger append-only at the ORM level (updates and deletes are refused)."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, ConsentEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise LedgerIsAppendOnly("consent_events is append-only; add a new entry instead")
