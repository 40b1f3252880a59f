"""Orders over the store's ``orders`` / ``order_items`` tables (``openapi_commerce.json``
``CommerceRuntimeOrder``).

- ``GET /api/commerce/orders`` ``startIndex, pageSize (<=200), sortBy, filter, q,
  responseFields`` -> ``OrderCollection``. Filterable/sortable: ``orderNumber,
  customerAccountId, email, status, paymentStatus, fulfillmentStatus, siteId, total,
  subtotal, acceptsMarketing, submittedDate, closedDate, cancelledDate,
  createDate|auditInfo.createDate, updateDate|auditInfo.updateDate``.
  With an ``x-vol-site`` header only that site's orders are listed (orders are site-scoped;
  whether Kibo requires the header is unconfirmed, spec A4).
- ``GET /api/commerce/orders/{orderId}`` -> ``CommerceRuntimeOrder`` (404 ITEM_NOT_FOUND).

Order ids are 32-hex strings; ``orderNumber`` is the store row id; ``siteId`` comes from
the row's ``store_id`` (1 -> first configured site, 2 -> second, ...).

Magento ``state`` -> Kibo (``status``, ``paymentStatus``, ``fulfillmentStatus``):

=================  ===============  ===============  ==================
Magento state      status           paymentStatus    fulfillmentStatus
=================  ===============  ===============  ==================
new                Submitted        Authorized       NotFulfilled
pending_payment    Pending          AwaitingPayment  NotFulfilled
processing         Processing       Paid             NotFulfilled
complete           Completed        Paid             Fulfilled
closed (refunded)  Completed        Paid             Fulfilled
canceled           Cancelled        Void             NotFulfilled
holded             PendingReview    Authorized       NotFulfilled
=================  ===============  ===============  ==================

Kibo has no "refunded" order status: a refunded order stays ``Completed`` and carries
``amountRefunded`` (= the store's ``total_refunded``), so "fully refunded" is
``amountRefunded >= total``. ``closedDate`` is set for Completed orders, ``cancelledDate``
for Cancelled ones (both from the row's ``updated_at``). So the plugin's "purchase" rule is:
status not in (Cancelled, Pending), and not fully refunded.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from flask import Blueprint, Flask, Response, request

from .common import (
    KIND_ORDER,
    KIND_ORDER_ITEM,
    KiboState,
    collection,
    hex_id,
    invalid_parameter,
    iso,
    kibo_error,
    paging,
    parse_hex_id,
    respond,
    state,
)
from .query import Field, QueryError, compile_filter, compile_sort

bp = Blueprint("kibo_orders", __name__)

STATE_MAP: dict[str, tuple[str, str, str]] = {
    "new": ("Submitted", "Authorized", "NotFulfilled"),
    "pending_payment": ("Pending", "AwaitingPayment", "NotFulfilled"),
    "processing": ("Processing", "Paid", "NotFulfilled"),
    "complete": ("Completed", "Paid", "Fulfilled"),
    "closed": ("Completed", "Paid", "Fulfilled"),
    "canceled": ("Cancelled", "Void", "NotFulfilled"),
    "holded": ("PendingReview", "Authorized", "NotFulfilled"),
}
DEFAULT_MAPPING = ("Processing", "Paid", "NotFulfilled")


def kibo_statuses(magento_state: str) -> tuple[str, str, str]:
    """(status, paymentStatus, fulfillmentStatus) for a store row's Magento state."""
    return STATE_MAP.get(magento_state, DEFAULT_MAPPING)


def _case(index: int) -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v[index]}'" for k, v in STATE_MAP.items())
    return f"(CASE o.state {whens} ELSE '{DEFAULT_MAPPING[index]}' END)"


def order_fields(st: KiboState) -> dict[str, Field]:
    closed = "(CASE WHEN o.state IN ('complete', 'closed') THEN o.updated_at END)"
    cancelled = "(CASE WHEN o.state = 'canceled' THEN o.updated_at END)"
    return {
        "ordernumber": Field("o.id", "int"),
        "customeraccountid": Field("o.customer_id", "int"),
        "email": Field("o.customer_email", "str"),
        "status": Field(_case(0), "str"),
        "paymentstatus": Field(_case(1), "str"),
        "fulfillmentstatus": Field(_case(2), "str"),
        "siteid": Field(st.site_sql("o.store_id"), "int"),
        "total": Field("o.grand_total", "float"),
        "subtotal": Field("o.subtotal", "float"),
        "acceptsmarketing": Field("COALESCE(c.accepts_marketing, 0)", "bool"),
        "submitteddate": Field("o.created_at", "date"),
        "createdate": Field("o.created_at", "date"),
        "auditinfo.createdate": Field("o.created_at", "date"),
        "updatedate": Field("o.updated_at", "date"),
        "auditinfo.updatedate": Field("o.updated_at", "date"),
        "closeddate": Field(closed, "date"),
        "cancelleddate": Field(cancelled, "date"),
    }


def _item_json(st: KiboState, item: sqlite3.Row, line: int, audit: dict) -> dict[str, Any]:
    qty, price = float(item["qty"]), float(item["price"])
    line_total = round(qty * price, 2)
    return {
        "id": hex_id(KIND_ORDER_ITEM, item["id"], st.config.tenant_id),
        "lineId": line,
        "localeCode": "en-US",
        "product": {
            "productCode": item["sku"],
            "name": item["name"],
            "description": None,
            "goodsType": "Physical",
            "isPackagedStandAlone": False,
            "sku": item["sku"],
            "variationProductCode": None,
            "productType": "Standard",
            "isTaxable": True,
            "isRecurring": False,
            "fulfillmentTypesSupported": ["DirectShip"],
            "price": {"price": price, "salePrice": None},
            "categories": [],
            "options": [],
            "properties": [
                {"attributeFQN": "tenant~category", "values": [{"value": item["category"]}]}
            ],
        },
        "quantity": int(round(qty)),
        "isRecurring": False,
        "isTaxable": True,
        "fulfillmentMethod": "Ship",
        "subtotal": line_total,
        "extendedTotal": line_total,
        "taxableTotal": line_total,
        "discountTotal": 0.0,
        "discountedTotal": line_total,
        "itemTaxTotal": 0.0,
        "shippingTaxTotal": 0.0,
        "shippingTotal": 0.0,
        "feeTotal": 0.0,
        "total": line_total,
        "unitPrice": {
            "extendedAmount": price,
            "listAmount": price,
            "saleAmount": None,
            "overrideAmount": None,
        },
        "productDiscounts": [],
        "shippingDiscounts": [],
        "auditInfo": audit,
    }


def order_json(st: KiboState, row: sqlite3.Row, items: list[sqlite3.Row]) -> dict[str, Any]:
    """One store order as a Kibo ``CommerceRuntimeOrder``."""
    status, payment, fulfillment = kibo_statuses(row["state"])
    total, subtotal = round(float(row["grand_total"]), 2), round(float(row["subtotal"]), 2)
    refunded = round(float(row["total_refunded"] or 0), 2)
    collected = total if payment == "Paid" else 0.0
    audit = {
        "createDate": iso(row["created_at"]),
        "updateDate": iso(row["updated_at"]),
        "createBy": None,
        "updateBy": None,
    }
    return {
        "id": hex_id(KIND_ORDER, row["id"], st.config.tenant_id),
        "orderNumber": row["id"],
        "tenantId": st.config.tenant_id,
        "siteId": st.site_for_store(row["store_id"]),
        "channelCode": "Online",
        "currencyCode": row["currency"] or "USD",
        "customerAccountId": row["customer_id"],
        "email": row["customer_email"],
        "acceptsMarketing": bool(row["accepts_marketing"]),
        "status": status,
        "paymentStatus": payment,
        "fulfillmentStatus": fulfillment,
        "returnStatus": None,
        "type": "Online",
        "customerInteractionType": "Website",
        "isImport": False,
        "isHistoricalImport": False,
        "isDraft": False,
        "hasDraft": False,
        "isUnified": False,
        "isPartialOrder": False,
        "isEligibleForReturns": status == "Completed",
        "isFulfillable": status in ("Submitted", "Processing"),
        "readyToCapture": False,
        "isOptInForSms": False,
        "isContinuityOrder": False,
        "continuityOrderOrdinal": 0,
        "submittedDate": iso(row["created_at"]),
        "acceptedDate": None if status in ("Pending", "Cancelled") else iso(row["created_at"]),
        "closedDate": iso(row["updated_at"]) if status == "Completed" else None,
        "cancelledDate": iso(row["updated_at"]) if status == "Cancelled" else None,
        "subtotal": subtotal,
        "discountedSubtotal": subtotal,
        "discountTotal": 0.0,
        "discountedTotal": subtotal,
        "shippingTotal": round(max(total - subtotal, 0.0), 2),
        "shippingSubTotal": round(max(total - subtotal, 0.0), 2),
        "shippingTaxTotal": 0.0,
        "handlingTotal": 0.0,
        "itemTaxTotal": 0.0,
        "taxTotal": 0.0,
        "feeTotal": 0.0,
        "dutyTotal": 0.0,
        "total": total,
        "totalCollected": collected,
        "amountRefunded": refunded,
        "amountAvailableForRefund": round(collected - refunded, 2),
        "amountRemainingForPayment": 0.0 if status == "Cancelled" else round(total - collected, 2),
        "couponCodes": [],
        "orderDiscounts": [],
        "originalCartId": None,
        "externalId": row["increment_id"],
        "billingInfo": {
            "paymentType": "CreditCard",
            "isSameBillingShippingAddress": True,
            "billingContact": {
                "email": row["customer_email"],
                "firstName": row["customer_firstname"],
                "lastNameOrSurname": row["customer_lastname"],
            },
        },
        "items": [_item_json(st, it, n + 1, audit) for n, it in enumerate(items)],
        "payments": [],
        "notes": [],
        "auditInfo": audit,
    }


SELECT = (
    "SELECT o.*, COALESCE(c.accepts_marketing, 0) AS accepts_marketing FROM orders o "
    "LEFT JOIN customers c ON c.id = o.customer_id"
)


def _items_by_order(conn: sqlite3.Connection, ids: list[int]) -> dict[int, list[sqlite3.Row]]:
    out: dict[int, list[sqlite3.Row]] = {i: [] for i in ids}
    if ids:
        marks = ",".join("?" * len(ids))
        for it in conn.execute(
            f"SELECT * FROM order_items WHERE order_id IN ({marks}) ORDER BY id",
            ids,  # noqa: S608
        ):
            out[it["order_id"]].append(it)
    return out


def load_order_row(st: KiboState, order_id: str) -> sqlite3.Row | None:
    number = parse_hex_id(order_id, KIND_ORDER, st.config.tenant_id)
    if number is None:
        return None
    return st.db().execute(f"{SELECT} WHERE o.id = ?", (number,)).fetchone()  # noqa: S608


@bp.get("/api/commerce/orders")
@bp.get("/api/commerce/orders/")
def list_orders() -> Response:
    st = state()
    page = paging("orderNumber asc")
    if isinstance(page, Response):
        return page
    start, size, sort = page
    fields = order_fields(st)
    try:
        where, params = compile_filter(request.args.get("filter"), fields)
        order = compile_sort(sort, fields, "o.id ASC")
    except QueryError as exc:
        return invalid_parameter("filter", str(exc))
    site = request.headers.get("x-vol-site")
    if site:
        where += f" AND {fields['siteid'].sql} = ?"
        params.append(int(site))
    q = (request.args.get("q") or "").strip()
    if q:
        where += " AND (o.customer_email LIKE ? OR CAST(o.id AS TEXT) = ?)"
        params += [f"%{q}%", q]
    conn = st.db()
    join = " LEFT JOIN customers c ON c.id = o.customer_id" if "c." in where else ""
    total = st.count(f"SELECT COUNT(*) FROM orders o{join} WHERE {where}", params)  # noqa: S608
    rows = conn.execute(
        f"{SELECT} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
        [*params, size, start],
    ).fetchall()
    items = _items_by_order(conn, [r["id"] for r in rows])
    return respond(
        collection(start, size, total, [order_json(st, r, items[r["id"]]) for r in rows])
    )


@bp.get("/api/commerce/orders/<order_id>")
def get_order(order_id: str) -> Response:
    st = state()
    row = load_order_row(st, order_id)
    if row is None:
        return kibo_error(404, "ITEM_NOT_FOUND", f"Order {order_id} not found", "CommerceRuntime")
    return respond(order_json(st, row, _items_by_order(st.db(), [row["id"]])[row["id"]]))


def register(app: Flask) -> None:
    app.register_blueprint(bp)
