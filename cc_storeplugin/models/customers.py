"""The mirror: customers (contacts by normalized email), orders with items, carts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cc_storeplugin.models.base import Base, BigId, TimestampMixin, UTCDateTime

CONSENT_STATES = ("subscribed", "unsubscribed", "not_set")
Money = Numeric(14, 2)


def normalize_email(email: str) -> str:
    """The contact key: trimmed and lower-cased (DESIGN: 'normalized email')."""
    return email.strip().lower()


class Customer(TimestampMixin, Base):
    """A contact of a connection: a registered customer or a guest purchaser, one per email."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("connection_id", "email"),
        CheckConstraint(f"consent_state IN {CONSENT_STATES!r}", name="consent_state"),
        CheckConstraint("purchase_count >= 0", name="purchase_count"),
        Index("ix_customers_conn_last_purchase", "connection_id", "last_purchase_at"),
        Index("ix_customers_conn_purchases", "connection_id", "purchase_count"),
        Index("ix_customers_conn_platform_id", "connection_id", "platform_customer_id"),
        Index("ix_customers_conn_cc_contact", "connection_id", "cc_contact_id"),
        Index("ix_customers_conn_updated", "connection_id", "platform_updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("store_connections.id", ondelete="CASCADE"), nullable=False
    )
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    platform_customer_id: Mapped[str | None] = mapped_column(String(64))
    is_guest: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    customer_group: Mapped[str | None] = mapped_column(String(64))
    consent_state: Mapped[str] = mapped_column(String(16), nullable=False, default="not_set")
    consent_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    purchase_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total_spent: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    first_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cc_contact_id: Mapped[str | None] = mapped_column(String(64))
    platform_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Order(Base):
    """An order as the store reports it; ``is_purchase`` applies the DESIGN's purchase rule."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("connection_id", "platform_order_id"),
        Index("ix_orders_conn_customer", "connection_id", "customer_id"),
        Index("ix_orders_conn_placed", "connection_id", "placed_at"),
        Index("ix_orders_conn_updated", "connection_id", "platform_updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("store_connections.id", ondelete="CASCADE"), nullable=False
    )
    platform_order_id: Mapped[str] = mapped_column(String(64), nullable=False)
    order_number: Mapped[str | None] = mapped_column(String(64))
    # No FK to the contact: the import's merge takes the id from a join on the contacts it
    # just wrote, and contacts are never deleted one by one; the per-row check was a tenth
    # of the merge on a million-contact store.
    customer_id: Mapped[int | None] = mapped_column(BigId)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str | None] = mapped_column(String(64))
    is_purchase: Mapped[bool] = mapped_column(Boolean, nullable=False)
    grand_total: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    total_refunded: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    currency: Mapped[str | None] = mapped_column(String(3))
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    platform_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OrderItem(Base):
    """A line of an order, kept for SKU / category rules in custom segments."""

    __tablename__ = "order_items"
    __table_args__ = (
        Index("ix_order_items_order", "order_id"),
        Index("ix_order_items_conn_sku", "connection_id", "sku"),
        Index("ix_order_items_conn_category", "connection_id", "category"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No FKs: the per-row checks were a quarter of the import's order merge. Lines are
    # written only by the mirror with the id of the order it just wrote; on PostgreSQL a
    # statement trigger on orders (migration 0007) still deletes the lines of deleted orders.
    connection_id: Mapped[int] = mapped_column(BigId, nullable=False)
    order_id: Mapped[int] = mapped_column(BigId, nullable=False)
    sku: Mapped[str] = mapped_column(String(128), nullable=False)
    category: Mapped[str | None] = mapped_column(String(255))
    qty: Mapped[Decimal] = mapped_column(Numeric(12, 4), nullable=False, default=Decimal("1"))
    price: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))


class Cart(Base):
    """A shopping cart, for abandoned-cart automations (never remind someone who bought)."""

    __tablename__ = "carts"
    __table_args__ = (
        UniqueConstraint("connection_id", "platform_cart_id"),
        Index("ix_carts_conn_active_updated", "connection_id", "is_active", "platform_updated_at"),
        Index("ix_carts_conn_email", "connection_id", "email"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("store_connections.id", ondelete="CASCADE"), nullable=False
    )
    platform_cart_id: Mapped[str] = mapped_column(String(64), nullable=False)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    email: Mapped[str | None] = mapped_column(String(320))
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    items_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    grand_total: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal("0"))
    converted_order_id: Mapped[str | None] = mapped_column(String(64))
    platform_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    platform_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
