"""Store connections: one Magento store or Kibo tenant linked to a merchant."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cc_storeplugin.crypto import EncryptedJSON
from cc_storeplugin.models.base import Base, BigId, TimestampMixin, UTCDateTime

PLATFORMS = ("magento", "kibo")
CONNECTION_STATUSES = (
    "waiting_for_store",
    "connecting",
    "importing",
    "active",
    "disconnected",
    "failed",
)


def new_connection_key() -> str:
    """An unguessable key for the connection's public URLs (Callback / Identity Link)."""
    return secrets.token_urlsafe(24)


class StoreConnection(TimestampMixin, Base):
    """A merchant's link to one store; credentials (tokens, consumer secrets) are encrypted."""

    __tablename__ = "store_connections"
    __table_args__ = (
        CheckConstraint(f"platform IN {PLATFORMS!r}", name="platform"),
        CheckConstraint(f"status IN {CONNECTION_STATUSES!r}", name="status"),
        Index("ix_store_connections_merchant", "merchant_id"),
        Index("ix_store_connections_platform_tenant", "platform", "external_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), nullable=False)
    platform: Mapped[str] = mapped_column(String(16), nullable=False)
    key: Mapped[str] = mapped_column(
        String(64), unique=True, nullable=False, default=new_connection_key
    )
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="waiting_for_store")
    status_reason: Mapped[str | None] = mapped_column(Text)
    # Magento store_base_url / Kibo tenant host, and the platform's id for it (Kibo tenant id).
    store_base_url: Mapped[str | None] = mapped_column(String(2048))
    external_id: Mapped[str | None] = mapped_column(String(128))
    credentials: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON())
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    merchant: Mapped[Merchant] = relationship(back_populates="connections")  # noqa: F821
