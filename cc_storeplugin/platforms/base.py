"""Platform-neutral records and the source-adapter protocol every platform implements.

An adapter (``platforms/magento``, ``platforms/kibo``) yields pages of these records with
a resumable cursor, and can write back the one thing we write to a store: marketing
opt-out. Adding a platform means adding one folder next to this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """A registered customer as the store reports it (email not yet normalized)."""

    platform_id: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    group: str | None = None
    subscribed: bool | None = None  # store-side marketing consent, None if unknown
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    category: str | None = None
    qty: Decimal = Decimal("1")
    price: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order; ``is_purchase`` applies the DESIGN's rule in the adapter's platform terms."""

    platform_id: str
    email: str
    state: str
    is_purchase: bool
    placed_at: datetime
    grand_total: Decimal = Decimal("0")
    total_refunded: Decimal = Decimal("0")
    number: str | None = None
    status: str | None = None
    customer_platform_id: str | None = None  # None for guest orders
    first_name: str | None = None
    last_name: str | None = None
    currency: str | None = None
    updated_at: datetime | None = None
    lines: tuple[OrderLine, ...] = ()


@dataclass(frozen=True, slots=True)
class CartRecord:
    platform_id: str
    is_active: bool
    email: str | None = None
    customer_platform_id: str | None = None
    items_count: int = 0
    grand_total: Decimal = Decimal("0")
    converted_order_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


R = TypeVar("R")


@dataclass(slots=True)
class Page(Generic[R]):
    """One page of records, the cursor that resumes *after* it, and the total if known."""

    records: list[R]
    cursor: dict[str, Any]
    total: int | None = None
    number: int | None = None
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (record ref, reason)


class SourceAdapter(Protocol):
    """What the sync pipeline needs from a store platform."""

    platform: str

    def customers(self, cursor: dict[str, Any] | None = None) -> Iterator[Page[CustomerRecord]]: ...

    def orders(self, cursor: dict[str, Any] | None = None) -> Iterator[Page[OrderRecord]]: ...

    def carts(self, cursor: dict[str, Any] | None = None) -> Iterator[Page[CartRecord]]: ...

    def set_marketing_opt_out(self, platform_customer_id: str, opted_out: bool) -> None: ...
