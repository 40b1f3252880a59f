"""Segments (built-in or custom rule), current memberships, and the transition log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cc_storeplugin.models.base import Base, BigId, TimestampMixin, UTCDateTime, utcnow

BUILTIN_KEYS = ("all", "first_time", "repeat", "recent", "lapsed")
SEGMENT_KINDS = ("builtin", "custom")


class Segment(TimestampMixin, Base):
    """A rule over the mirror whose members are kept in one Constant Contact list."""

    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("connection_id", "key"),
        UniqueConstraint("connection_id", "name"),
        CheckConstraint(f"kind IN {SEGMENT_KINDS!r}", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("store_connections.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cc_list_id: Mapped[str | None] = mapped_column(String(64))
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SegmentMembership(Base):
    """A contact currently in a segment (the last evaluation's result)."""

    __tablename__ = "segment_memberships"
    __table_args__ = (Index("ix_segment_memberships_customer", "customer_id"),)

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    # No FK check per row (migration 0006): a membership goes with its segment; the mirror
    # never deletes a single customer.
    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    # When the membership was last confirmed in the CC list (None: not yet sent).
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SegmentTransition(Base):
    """One entry of a contact's segment history, with the reason it happened."""

    __tablename__ = "segment_transitions"
    __table_args__ = (
        CheckConstraint("action IN ('entered', 'left')", name="action"),
        Index("ix_segment_transitions_customer", "customer_id", "occurred_at"),
        Index("ix_segment_transitions_conn", "connection_id", "occurred_at"),
        # The CC step reads "transitions of run R for segment S with action X".
        Index("ix_segment_transitions_run", "segment_id", "sync_run_id", "action"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # connection_id, sync_run_id and customer_id carry no FK: the log goes with its segment
    # (cascade), and the checks were most of the first evaluation's time on 1M contacts.
    connection_id: Mapped[int] = mapped_column(BigId, nullable=False)
    customer_id: Mapped[int] = mapped_column(BigId, nullable=False)  # no FK: see memberships
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), nullable=False
    )
    action: Mapped[str] = mapped_column(String(8), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    sync_run_id: Mapped[int | None] = mapped_column(BigId)
