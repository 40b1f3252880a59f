"""Kibo eCommerce source adapter: customer accounts and orders as platform-neutral pages.

Both streams page with ``startIndex``/``pageSize`` (≤ 200) in a fixed sort (accounts
``id asc``, orders ``orderNumber asc``), driven by ``totalCount`` with a guard against a
repeated page. A cursor ``{"start": n}`` is the zero-based offset of the next item to fetch.
Orders are those of every site unless the client sends ``x-vol-site``.

Carts: Kibo has no call that lists carts (apps learn cart ids from ``cart.*`` events), so
:meth:`KiboAdapter.carts` yields nothing; the events path reads single carts.

Purchases (DESIGN "Built-in segments"; the Magento rule in Kibo terms). Kibo has no
"refunded" or "awaiting payment" order status, so three things are checked:

=====================================================  ==============  =============
Kibo order                                             Magento state   is_purchase
=====================================================  ==============  =============
status Cancelled, Abandoned, Errored                   canceled        no
status Pending, Created, Validated (not yet placed)    pending_payment no
paymentStatus AwaitingPayment                          pending_payment no
amountRefunded > 0 and ≥ total (refunded in full)      closed          no
Submitted, Accepted, Processing, PendingReview,        new, processing yes
Completed (not fully refunded), anything else          complete, ...
=====================================================  ==============  =============
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from ..base import CartRecord, CustomerRecord, OrderLine, OrderRecord, Page
from .client import KiboClient

MAX_PAGE_SIZE = 200
ACCOUNTS_PATH = "/api/commerce/customer/accounts"
ORDERS_PATH = "/api/commerce/orders"
NON_PURCHASE_STATUSES = frozenset(
    {"cancelled", "abandoned", "errored", "pending", "created", "validated"}
)
AWAITING_PAYMENT = frozenset({"awaitingpayment"})

R = TypeVar("R")


class Reject(ValueError):
    """An item that cannot become a record; the message is the short reason."""


class KiboAdapter:
    """The :class:`~cc_storeplugin.platforms.base.SourceAdapter` for one Kibo tenant."""

    platform = "kibo"

    def __init__(self, client: KiboClient, *, page_size: int = MAX_PAGE_SIZE) -> None:
        self.client = client
        self.page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))

    def __repr__(self) -> str:
        return f"KiboAdapter({self.client!r}, page_size={self.page_size})"

    @property
    def calls(self) -> int:
        """HTTP requests sent to Kibo so far (auth and retries included)."""
        return self.client.calls

    def customers(self, cursor: dict[str, Any] | None = None) -> Iterator[Page[CustomerRecord]]:
        """Every customer account, ``id`` ascending."""
        return self._pages(ACCOUNTS_PATH, "id asc", "customer", map_customer, cursor)

    def orders(self, cursor: dict[str, Any] | None = None) -> Iterator[Page[OrderRecord]]:
        """Every order (guest orders included), ``orderNumber`` ascending."""
        return self._pages(ORDERS_PATH, "orderNumber asc", "order", map_order, cursor)

    def carts(self, cursor: dict[str, Any] | None = None) -> Iterator[Page[CartRecord]]:
        """Nothing: Kibo cannot list carts (see the module docstring)."""
        return iter(())

    def set_marketing_opt_out(self, platform_customer_id: str, opted_out: bool) -> None:
        """GET the account, then PUT it back whole with ``acceptsMarketing`` set (spec A3)."""
        path = f"{ACCOUNTS_PATH}/{int(platform_customer_id)}"
        account = dict(self.client.get(path))
        account["acceptsMarketing"] = not opted_out
        self.client.put(path, account)

    def accounts_by_ids(self, account_ids: list[int]) -> list[dict]:
        """The accounts among ``account_ids`` that exist: one filtered call (``id eq a or id
        eq b ...``, spec A3) per 200 ids instead of one GET per customer."""
        out: list[dict] = []
        ids = list(dict.fromkeys(int(i) for i in account_ids))
        for start in range(0, len(ids), MAX_PAGE_SIZE):
            chunk = ids[start : start + MAX_PAGE_SIZE]
            params = {
                "startIndex": 0,
                "pageSize": len(chunk),
                "sortBy": "id asc",
                "filter": " or ".join(f"id eq {i}" for i in chunk),
            }
            body = self.client.get(ACCOUNTS_PATH, params) or {}
            out.extend(item for item in body.get("items") or [] if isinstance(item, dict))
        return out

    def opt_out_if_subscribed(self, platform_customer_id: str) -> bool:
        """GET the account; only when it still accepts marketing, PUT it back whole with
        ``acceptsMarketing`` false. True when it was changed (no PUT, no event otherwise)."""
        path = f"{ACCOUNTS_PATH}/{int(platform_customer_id)}"
        account = dict(self.client.get(path))
        if account.get("acceptsMarketing") is not True:
            return False
        account["acceptsMarketing"] = False
        self.client.put(path, account)
        return True

    def _pages(
        self,
        path: str,
        sort: str,
        kind: str,
        mapper: Callable[[dict], R],
        cursor: dict[str, Any] | None,
    ) -> Iterator[Page[R]]:
        start = _start(cursor)
        seen_first: set[Any] = set()
        while True:
            params = {"startIndex": start, "pageSize": self.page_size, "sortBy": sort}
            body = self.client.get(path, params) or {}
            items = body.get("items") or []
            if not items:
                return
            first = items[0].get("id") if isinstance(items[0], dict) else None
            if first is not None and first in seen_first:
                return  # the same page again: never loop
            seen_first.add(first)
            records, rejected = map_items(items, kind, mapper)
            total = body.get("totalCount")
            total = total if isinstance(total, int) else None
            nxt = start + len(items)
            yield Page(
                records=records,
                cursor={"start": nxt},
                total=total,
                number=start // self.page_size + 1,
                rejected=rejected,
            )
            if total is not None and nxt >= total:
                return
            start = nxt


def _start(cursor: dict[str, Any] | None) -> int:
    if not cursor:
        return 0
    start = cursor.get("start", 0)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise ValueError(f"bad Kibo cursor: {cursor!r}")
    return start


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
            reason = str(exc) if isinstance(exc, Reject) else (str(exc) or type(exc).__name__)
            rejected.append((_ref(kind, item, n), reason[:120]))
    return records, rejected


def _ref(kind: str, item: Any, n: int) -> str:
    if isinstance(item, dict):
        if kind == "order" and item.get("orderNumber") is not None:
            return f"order {item['orderNumber']}"
        if item.get("id") not in (None, ""):
            return f"{kind} {item['id']}"
    return f"{kind} #{n + 1} of page"


# -- field parsers --------------------------------------------------------------------------


def parse_time(value: Any, name: str) -> datetime | None:
    """Kibo ISO-8601 (``...T12:00:00.000Z``) → aware UTC; None when absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Reject(f"bad {name}")
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Reject(f"bad {name}: {value[:40]!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def money(value: Any, name: str) -> Decimal:
    """A JSON number as Decimal; absent → 0."""
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Reject(f"bad {name}")
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise Reject(f"bad {name}") from None
    if not out.is_finite():
        raise Reject(f"bad {name}")
    return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _audit(item: dict) -> dict:
    audit = item.get("auditInfo")
    return audit if isinstance(audit, dict) else {}


def _id(value: Any) -> str:
    if value is None or value == "" or isinstance(value, bool):
        raise Reject("no id")
    return str(value)


# -- records --------------------------------------------------------------------------------


def map_customer(item: dict) -> CustomerRecord:
    """``CustomerAccount`` → CustomerRecord; ``acceptsMarketing`` false maps to None (unknown),
    never to an unsubscribe."""
    email = _text(item.get("emailAddress"))
    if email is None or not email.strip():
        contacts = [c for c in item.get("contacts") or [] if isinstance(c, dict)]
        email = next((c["email"] for c in contacts if _text(c.get("email"))), None)
    if not email or not email.strip():
        raise Reject("no email")
    audit = _audit(item)
    created = audit.get("createDate") or item.get("customerSinceDate")
    return CustomerRecord(
        platform_id=_id(item.get("id")),
        email=email,
        first_name=_text(item.get("firstName")),
        last_name=_text(item.get("lastName")),
        group=_text(item.get("customerSet")),
        subscribed=True if item.get("acceptsMarketing") is True else None,
        created_at=parse_time(created, "createDate"),
        updated_at=parse_time(audit.get("updateDate"), "updateDate"),
    )


def is_purchase(
    status: str | None,
    payment_status: str | None,
    total: Decimal,
    refunded: Decimal,
) -> bool:
    """The DESIGN purchase rule in Kibo terms (table in the module docstring)."""
    if (status or "").lower() in NON_PURCHASE_STATUSES:
        return False
    if (payment_status or "").lower() in AWAITING_PAYMENT:
        return False
    return not (refunded > 0 and refunded >= total)


def _category(product: dict) -> str | None:
    for prop in product.get("properties") or []:
        if isinstance(prop, dict) and str(prop.get("attributeFQN", "")).endswith("~category"):
            values = prop.get("values") or []
            if values and isinstance(values[0], dict):
                return _text(values[0].get("value")) or _text(values[0].get("stringValue"))
    return None


def _line(item: dict) -> OrderLine:
    product = item.get("product") if isinstance(item.get("product"), dict) else {}
    unit = item.get("unitPrice") if isinstance(item.get("unitPrice"), dict) else {}
    price = unit.get("extendedAmount")
    if price is None:
        price = unit.get("listAmount")
    return OrderLine(
        sku=str(
            product.get("variationProductCode")
            or product.get("productCode")
            or product.get("sku")
            or ""
        ),
        category=_category(product),
        qty=money(item.get("quantity", 1), "quantity"),
        price=money(price, "unitPrice"),
    )


def map_order(item: dict) -> OrderRecord:
    """``CommerceRuntimeOrder`` → OrderRecord (state = Kibo ``status``, status =
    ``paymentStatus``; guest orders have no ``customerAccountId``)."""
    billing = (item.get("billingInfo") or {}).get("billingContact") or {}
    email = _text(item.get("email")) or _text(billing.get("email"))
    if email is None or not email.strip():
        raise Reject("no email")
    status = _text(item.get("status"))
    if status is None:
        raise Reject("no status")
    audit = _audit(item)
    placed = parse_time(item.get("submittedDate") or audit.get("createDate"), "submittedDate")
    if placed is None:
        raise Reject("no submittedDate")
    total = money(item.get("total"), "total")
    refunded = money(item.get("amountRefunded"), "amountRefunded")
    payment = _text(item.get("paymentStatus"))
    account = item.get("customerAccountId")
    number = item.get("orderNumber")
    return OrderRecord(
        platform_id=_id(item.get("id")),
        email=email,
        state=status,
        is_purchase=is_purchase(status, payment, total, refunded),
        placed_at=placed,
        grand_total=total,
        total_refunded=refunded,
        number=None if number is None else str(number),
        status=payment,
        customer_platform_id=None if account in (None, "", 0) else str(account),
        first_name=_text(billing.get("firstName")),
        last_name=_text(billing.get("lastNameOrSurname")),
        currency=_text(item.get("currencyCode")),
        updated_at=parse_time(audit.get("updateDate"), "updateDate"),
        lines=tuple(_line(it) for it in item.get("items") or [] if isinstance(it, dict)),
    )
