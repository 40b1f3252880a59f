"""Merchants: one per Constant Contact account, holding that account's OAuth2 tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cc_storeplugin.crypto import EncryptedText
from cc_storeplugin.models.base import Base, BigId, TimestampMixin, UTCDateTime

AUTH_STATES = ("connected", "reconnect_required")


class Merchant(TimestampMixin, Base):
    """A merchant, identified by their Constant Contact account (encoded_account_id)."""

    __tablename__ = "merchants"
    __table_args__ = (CheckConstraint(f"cc_auth_state IN {AUTH_STATES!r}", name="auth_state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cc_account_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    cc_access_token: Mapped[str | None] = mapped_column(EncryptedText())
    cc_refresh_token: Mapped[str | None] = mapped_column(EncryptedText())
    cc_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cc_scopes: Mapped[str | None] = mapped_column(String(255))
    cc_auth_state: Mapped[str] = mapped_column(String(32), default="connected", nullable=False)

    connections: Mapped[list[StoreConnection]] = relationship(back_populates="merchant")  # noqa: F821
