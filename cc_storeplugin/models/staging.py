"""Pages of orders and customers staged by the import on PostgreSQL, merged in batches.

A page is COPYed here and committed with the import's checkpoint, so it is persisted as
soon as it is downloaded; ``sync.order_stage`` merges tens of thousands of staged orders in
a few set-based statements (a third of the per-row cost of page-sized upserts) and deletes
them in the same transaction; ``sync.customer_stage`` does the same for customers. No
foreign keys: rows live for minutes and go with their run.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cc_storeplugin.models.base import Base, BigId, UTCDateTime
from cc_storeplugin.models.customers import Money


class OrderStage(Base):
    """One downloaded order (with its lines as JSON) waiting to be merged."""

    __tablename__ = "order_stage"
    __table_args__ = (Index("ix_order_stage_run", "run_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigId, nullable=False)
    platform_order_id: Mapped[str] = mapped_column(String(64), nullable=False)
    order_number: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str | None] = mapped_column(String(64))
    is_purchase: Mapped[bool] = mapped_column(Boolean, nullable=False)
    grand_total: Mapped[Decimal] = mapped_column(Money, nullable=False)
    total_refunded: Mapped[Decimal] = mapped_column(Money, nullable=False)
    currency: Mapped[str | None] = mapped_column(String(3))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    platform_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)


class CustomerStage(Base):
    """One downloaded registered customer waiting to be merged into its contact.

    Names and group are stored stripped (None when blank) and the email normalized, as the
    page upsert compares them; ``subscribed`` is the store's claim (None: no claim).
    """

    __tablename__ = "customer_stage"
    __table_args__ = (Index("ix_customer_stage_run", "run_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigId, nullable=False)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    platform_customer_id: Mapped[str] = mapped_column(String(64), nullable=False)
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    customer_group: Mapped[str | None] = mapped_column(String(64))
    subscribed: Mapped[bool | None] = mapped_column(Boolean)
    platform_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
