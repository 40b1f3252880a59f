"""Magento 2 source adapter: customers, orders and carts as platform-neutral pages.

Each stream pages a search endpoint in ``entity_id ASC`` order with an explicit ``pageSize``
(≤ 300, the store's input limit), driven by ``total_count`` with the client's repeated-page
guard (specs/magento.md §2.6, §5 items 1-3). A cursor ``{"page": n}`` names the next page to
fetch, so a killed import resumes after the last page it wrote.

An item that cannot be mapped (no id, no email, a bad date or number) is left out of
``Page.records`` and reported in ``Page.rejected``; the stream goes on (DESIGN invariant 5).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from ..base import CartRecord, CustomerRecord, OrderLine, OrderRecord, Page
from .client import SORT_FIELD, MagentoClient
from .errors import MagentoError

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 300
"""Magento's ``webapi/validation/maximum_page_size`` default (§2.4)."""
# Pages requested while the import works on the current one: the store serves the next
# while this process parses and writes (Magento serves concurrent requests; 2 is polite).
PAGES_AHEAD = 2

NON_PURCHASE_STATES = frozenset({"canceled", "closed", "pending_payment"})
"""Order states that are not purchases: cancelled, fully refunded (closed), awaiting payment."""

R = TypeVar("R")


class Reject(ValueError):
    """An item that cannot become a record; the message is the short reason."""


class MagentoAdapter:
    """The :class:`~cc_storeplugin.platforms.base.SourceAdapter` for one Magento store."""

    platform = "magento"

    def __init__(
        self, client: MagentoClient, *, page_size: int = MAX_PAGE_SIZE, ahead: int = PAGES_AHEAD
    ) -> None:
        self.client = client
        self.page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        self.ahead = max(0, int(ahead))

    def __repr__(self) -> str:
        return f"MagentoAdapter({self.client!r}, page_size={self.page_size}, ahead={self.ahead})"

    @property
    def calls(self) -> int:
        """HTTP requests sent to the store so far (retries included)."""
        return self.client.calls

    def customers(self, cursor: dict[str, Any] | None = None) -> Iterator[Page[CustomerRecord]]:
        """Every customer, ``entity_id`` ascending."""
        return self._pages("customers/search", "customer", map_customer, cursor)

    def orders(self, cursor: dict[str, Any] | None = None) -> Iterator[Page[OrderRecord]]:
        """Every order (guest orders included), ``entity_id`` ascending."""
        return self._pages("orders", "order", map_order, cursor)

    def carts(self, cursor: dict[str, Any] | None = None) -> Iterator[Page[CartRecord]]:
        """Every cart (quote), active or converted, ``entity_id`` ascending."""
        return self._pages("carts/search", "cart", map_cart, cursor)

    def set_marketing_opt_out(self, platform_customer_id: str, opted_out: bool) -> None:
        """Write the newsletter flag back (``extension_attributes.is_subscribed``, §2.7)."""
        self.client.set_subscription(int(platform_customer_id), not opted_out)

    def _pages(
        self,
        resource: str,
        kind: str,
        mapper: Callable[[dict], R],
        cursor: dict[str, Any] | None,
    ) -> Iterator[Page[R]]:
        """Pages within the store's limit: a smaller ``maximum_page_size`` is learned from
        Magento's 400 and the paging restarts at the same row with that size."""
        size = int((cursor or {}).get("size") or self.page_size)
        start = _start_page(cursor)
        while True:
            try:
                for number, body in self.client.iter_pages(
                    resource,
                    sort_orders=((SORT_FIELD, "ASC"),),
                    page_size=size,
                    start_page=start,
                    ahead=self.ahead,
                ):
                    records, rejected = map_items(body.get("items") or [], kind, mapper)
                    total = body.get("total_count")
                    yield Page(
                        records=records,
                        cursor={"page": number + 1, "size": size},
                        total=total if isinstance(total, int) else None,
                        number=number,
                        rejected=rejected,
                    )
                return
            except MagentoError as exc:
                limit = _page_size_limit(exc)
                if limit is None or limit >= size:
                    raise
                log.warning(
                    "Magento allows pageSize %d, not %d: paging with %d", limit, size, limit
                )
                start = (start - 1) * size // limit + 1
                size = self.page_size = limit


def _page_size_limit(exc: MagentoError) -> int | None:
    """The N of Magento's "Maximum SearchCriteria pageSize is N" (input limits, §2.4)."""
    match = re.search(r"Maximum SearchCriteria pageSize is (\d+)", str(exc))
    return int(match.group(1)) if match and exc.status == 400 else None


def _start_page(cursor: dict[str, Any] | None) -> int:
    if not cursor:
        return 1
    page = cursor.get("page", 1)
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        raise ValueError(f"bad Magento cursor: {cursor!r}")
    return page


def map_items(
    items: list[Any], kind: str, mapper: Callable[[dict], R]
) -> tuple[list[R], list[tuple[str, str]]]:
    """Map one page's items; unmappable ones become ``(ref, reason)`` pairs."""
    records: list[R] = []
    rejected: list[tuple[str, str]] = []
    for n, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise Reject("not a JSON object")
            records.append(mapper(item))
        except (Reject, ValueError, TypeError, InvalidOperation) as exc:
            rejected.append((_ref(kind, item, n), _reason(exc)))
    return records, rejected


def _ref(kind: str, item: Any, n: int) -> str:
    if isinstance(item, dict):
        if kind == "order" and item.get("increment_id"):
            return f"order {item['increment_id']}"
        ident = item.get("entity_id", item.get("id"))
        if ident is not None and ident != "":
            return f"{kind} {ident}"
    return f"{kind} #{n + 1} of page"


def _reason(exc: Exception) -> str:
    if isinstance(exc, Reject):
        return str(exc)
    if isinstance(exc, InvalidOperation):
        return "bad number"
    return (str(exc) or type(exc).__name__)[:120]


# -- field parsers --------------------------------------------------------------------------


def parse_time(value: Any, name: str) -> datetime | None:
    """Magento ``YYYY-MM-DD HH:MM:SS`` (no zone: UTC, §5 item 19) → aware UTC; None if absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Reject(f"bad {name}")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Reject(f"bad {name}: {value[:40]!r}") from None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _required_time(item: dict, name: str) -> datetime:
    when = parse_time(item.get(name), name)
    if when is None:
        raise Reject(f"no {name}")
    return when


_ZERO = Decimal("0")


def money(value: Any, name: str) -> Decimal:
    """A JSON number (or numeric text) as Decimal; absent → 0.

    Called a few times per order line on every page, so JSON's own types go first.
    """
    kind = type(value)
    if kind is int:
        return Decimal(value)
    if kind is float:
        out = Decimal(repr(value))  # the shortest text of the float, as str() gives
    elif value is None or value == "":
        return _ZERO
    elif isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Reject(f"bad {name}")
    else:
        try:
            out = Decimal(str(value))
        except InvalidOperation:
            raise Reject(f"bad {name}") from None
    if not out.is_finite():
        raise Reject(f"bad {name}")
    return out


def _id(value: Any, name: str = "id") -> str:
    if value is None or value == "" or isinstance(value, bool):
        raise Reject(f"no {name}")
    return str(value)


def _optional_id(value: Any) -> str | None:
    if value is None or value == "" or value == 0 or isinstance(value, bool):
        return None
    return str(value)


def _email(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Reject("no email")
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


# -- records --------------------------------------------------------------------------------


def map_customer(item: dict) -> CustomerRecord:
    """``customer-data-customer-interface`` → CustomerRecord.

    ``is_subscribed`` false is "not subscribed", never an unsubscribe, so it maps to None.
    """
    ext = item.get("extension_attributes") or {}
    group = item.get("group_id")
    return CustomerRecord(
        platform_id=_id(item.get("id", item.get("entity_id"))),
        email=_email(item.get("email")),
        first_name=_text(item.get("firstname")),
        last_name=_text(item.get("lastname")),
        group=None if group is None else str(group),
        subscribed=True if isinstance(ext, dict) and ext.get("is_subscribed") is True else None,
        created_at=parse_time(item.get("created_at"), "created_at"),
        updated_at=parse_time(item.get("updated_at"), "updated_at"),
    )


def is_purchase(state: str | None) -> bool:
    """DESIGN "Built-in segments": canceled, closed (refunded) and pending_payment don't count."""
    return (state or "") not in NON_PURCHASE_STATES


def _line(item: dict) -> OrderLine:
    return OrderLine(
        sku=str(item.get("sku") or ""),
        category=_text(item.get("category")),
        qty=money(item.get("qty_ordered", 1), "qty_ordered"),
        price=money(item.get("price"), "price"),
    )


def map_order(item: dict) -> OrderRecord:
    """``sales-data-order-interface`` → OrderRecord (guest orders have no customer id)."""
    state = item.get("state")
    if not isinstance(state, str) or not state:
        raise Reject("no state")
    guest = bool(item.get("customer_is_guest"))
    lines = tuple(
        _line(it)
        for it in item.get("items") or []
        if isinstance(it, dict) and not it.get("parent_item_id")  # children repeat the parent
    )
    return OrderRecord(
        platform_id=_id(item.get("entity_id"), "entity_id"),
        email=_email(item.get("customer_email")),
        state=state,
        is_purchase=is_purchase(state),
        placed_at=_required_time(item, "created_at"),
        grand_total=money(item.get("grand_total"), "grand_total"),
        total_refunded=money(item.get("total_refunded"), "total_refunded"),
        number=_text(item.get("increment_id")),
        status=_text(item.get("status")),
        customer_platform_id=None if guest else _optional_id(item.get("customer_id")),
        first_name=_text(item.get("customer_firstname")),
        last_name=_text(item.get("customer_lastname")),
        currency=_text(item.get("order_currency_code")),
        updated_at=parse_time(item.get("updated_at"), "updated_at"),
        lines=lines,
    )


def map_cart(item: dict) -> CartRecord:
    """``quote-data-cart-interface`` → CartRecord without a per-cart totals call.

    Carts carry no grand total (§2.5): a ``grand_total`` the store adds is used, else the sum
    of the items' ``qty × price``.
    """
    customer = item.get("customer") or {}
    if not isinstance(customer, dict):
        customer = {}
    guest = bool(item.get("customer_is_guest"))
    if "grand_total" in item:
        total = money(item.get("grand_total"), "grand_total")
    else:
        total = sum(
            (
                money(it.get("qty", 1), "qty") * money(it.get("price"), "price")
                for it in item.get("items") or []
                if isinstance(it, dict) and not it.get("parent_item_id")
            ),
            Decimal("0"),
        )
    email = customer.get("email")
    return CartRecord(
        platform_id=_id(item.get("id", item.get("entity_id"))),
        is_active=bool(item.get("is_active")),
        email=email if isinstance(email, str) and email.strip() else None,
        customer_platform_id=None if guest else _optional_id(customer.get("id")),
        items_count=int(item.get("items_count") or 0),
        grand_total=total,
        converted_order_id=_text(item.get("reserved_order_id")),
        created_at=parse_time(item.get("created_at"), "created_at"),
        updated_at=parse_time(item.get("updated_at"), "updated_at"),
    )
