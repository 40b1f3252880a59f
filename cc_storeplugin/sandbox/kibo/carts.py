"""Carts over the store's ``carts`` / ``cart_items`` tables (``openapi_commerce.json`` ``Cart``).

Kibo has no public "list carts" call; apps learn cart ids from ``cart.*`` events and read:

- ``GET /api/commerce/carts/{cartId}`` -> ``Cart``; ``.../summary`` -> ``CartSummary``;
  ``.../items`` -> ``CartItemCollection``.
- ``GET /api/commerce/carts/user/{userId}`` (and ``.../summary``): the user's newest active
  cart; ``userId`` is the account's 32-hex ``userId``.

Converted carts (``is_active = 0``) no longer exist (404 ITEM_NOT_FOUND), as Kibo deletes a
cart when it becomes an order. ``expirationDate`` is ``updated_at`` + ``cart_expiry_days``
(option, default 14); past it the summary says ``isExpired`` (an abandoned cart).
Control: ``GET /_sandbox/carts?startIndex=&pageSize=`` lists active cart ids for tests.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from .common import (
    KIND_CART,
    KIND_CART_ITEM,
    KIND_USER,
    STORE_FMT,
    KiboState,
    hex_id,
    iso,
    kibo_error,
    parse_hex_id,
    respond,
    state,
    store_ts,
)

bp = Blueprint("kibo_carts", __name__)


def _expiry(st: KiboState, updated_at: str) -> str:
    when = datetime.strptime(updated_at[:19], STORE_FMT) + timedelta(
        days=st.config.cart_expiry_days
    )
    return when.strftime(STORE_FMT)


def _item_json(st: KiboState, item: sqlite3.Row, audit: dict) -> dict[str, Any]:
    qty, price = float(item["qty"]), float(item["price"])
    line_total = round(qty * price, 2)
    return {
        "id": hex_id(KIND_CART_ITEM, item["id"], st.config.tenant_id),
        "product": {
            "productCode": item["sku"],
            "name": item["name"],
            "sku": item["sku"],
            "goodsType": "Physical",
            "isPackagedStandAlone": False,
            "productType": "Standard",
            "price": {"price": price, "salePrice": None},
        },
        "quantity": int(round(qty)),
        "fulfillmentMethod": "Ship",
        "subtotal": line_total,
        "extendedTotal": line_total,
        "discountTotal": 0.0,
        "discountedTotal": line_total,
        "total": line_total,
        "unitPrice": {"extendedAmount": price, "listAmount": price},
        "auditInfo": audit,
    }


def cart_json(st: KiboState, row: sqlite3.Row, items: list[sqlite3.Row]) -> dict[str, Any]:
    """One active store cart as a Kibo ``Cart``."""
    cfg = st.config
    audit = {
        "createDate": iso(row["created_at"]),
        "updateDate": iso(row["updated_at"]),
        "createBy": None,
        "updateBy": None,
    }
    subtotal = round(sum(float(i["qty"]) * float(i["price"]) for i in items), 2)
    total = round(float(row["grand_total"]), 2)
    customer = row["customer_id"]
    return {
        "id": hex_id(KIND_CART, row["id"], cfg.tenant_id),
        "tenantId": cfg.tenant_id,
        "siteId": st.site_ids()[0],
        "channelCode": "Online",
        "currencyCode": "USD",
        "userId": hex_id(KIND_USER, customer, cfg.tenant_id) if customer else None,
        "customerInteractionType": "Website",
        "fulfillmentInfo": {"fulfillmentContact": {"email": row["customer_email"]}},
        "subtotal": subtotal,
        "discountedSubtotal": subtotal,
        "discountTotal": 0.0,
        "discountedTotal": subtotal,
        "shippingTotal": 0.0,
        "taxTotal": 0.0,
        "feeTotal": 0.0,
        "total": total,
        "expirationDate": iso(_expiry(st, row["updated_at"])),
        "items": [_item_json(st, i, audit) for i in items],
        "couponCodes": [],
        "orderDiscounts": [],
        "cartMessages": [],
        "changeMessages": [],
        "extendedProperties": [],
        "auditInfo": audit,
    }


def _items(conn: sqlite3.Connection, cart_id: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM cart_items WHERE cart_id = ? ORDER BY id", (cart_id,)
    ).fetchall()


def _not_found(what: str) -> Response:
    return kibo_error(404, "ITEM_NOT_FOUND", f"{what} not found", "CommerceRuntime")


def _cart_row(st: KiboState, cart_id: str) -> sqlite3.Row | None:
    number = parse_hex_id(cart_id, KIND_CART, st.config.tenant_id)
    if number is None:
        return None
    return (
        st.db().execute("SELECT * FROM carts WHERE id = ? AND is_active = 1", (number,)).fetchone()
    )


def _user_cart_row(st: KiboState, user_id: str) -> sqlite3.Row | None:
    customer = parse_hex_id(user_id, KIND_USER, st.config.tenant_id)
    if customer is None:
        return None
    return (
        st.db()
        .execute(
            "SELECT * FROM carts WHERE customer_id = ? AND is_active = 1 "
            "ORDER BY updated_at DESC, id DESC LIMIT 1",
            (customer,),
        )
        .fetchone()
    )


def summary_json(st: KiboState, row: sqlite3.Row | None) -> dict[str, Any]:
    if row is None:
        return {
            "itemCount": 0,
            "totalQuantity": 0,
            "total": 0.0,
            "isExpired": False,
            "hasActiveCart": False,
        }
    items = _items(st.db(), row["id"])
    return {
        "itemCount": len(items),
        "totalQuantity": int(sum(float(i["qty"]) for i in items)),
        "total": round(float(row["grand_total"]), 2),
        "isExpired": store_ts(st.now()) > _expiry(st, row["updated_at"]),
        "hasActiveCart": True,
    }


@bp.get("/api/commerce/carts/<cart_id>")
def get_cart(cart_id: str) -> Response:
    st = state()
    row = _cart_row(st, cart_id)
    if row is None:
        return _not_found(f"Cart {cart_id}")
    return respond(cart_json(st, row, _items(st.db(), row["id"])))


@bp.get("/api/commerce/carts/<cart_id>/summary")
def get_cart_summary(cart_id: str) -> Response:
    st = state()
    row = _cart_row(st, cart_id)
    if row is None:
        return _not_found(f"Cart {cart_id}")
    return respond(summary_json(st, row))


@bp.get("/api/commerce/carts/<cart_id>/items")
def get_cart_items(cart_id: str) -> Response:
    st = state()
    row = _cart_row(st, cart_id)
    if row is None:
        return _not_found(f"Cart {cart_id}")
    items = cart_json(st, row, _items(st.db(), row["id"]))["items"]
    return respond({"totalCount": len(items), "items": items})


@bp.get("/api/commerce/carts/user/<user_id>")
def get_user_cart(user_id: str) -> Response:
    st = state()
    row = _user_cart_row(st, user_id)
    if row is None:
        return _not_found(f"Cart for user {user_id}")
    return respond(cart_json(st, row, _items(st.db(), row["id"])))


@bp.get("/api/commerce/carts/user/<user_id>/summary")
def get_user_cart_summary(user_id: str) -> Response:
    st = state()
    return respond(summary_json(st, _user_cart_row(st, user_id)))


@bp.get("/_sandbox/carts")
def sandbox_carts() -> Response:
    st = state()
    start = request.args.get("startIndex", default=0, type=int)
    size = request.args.get("pageSize", default=100, type=int)
    rows = (
        st.db()
        .execute(
            "SELECT id, customer_id, updated_at FROM carts WHERE is_active = 1 "
            "ORDER BY id LIMIT ? OFFSET ?",
            (size, start),
        )
        .fetchall()
    )
    return jsonify(
        {
            "items": [
                {
                    "id": hex_id(KIND_CART, r["id"], st.config.tenant_id),
                    "customerAccountId": r["customer_id"],
                    "updateDate": iso(r["updated_at"]),
                }
                for r in rows
            ]
        }
    )


def register(app: Flask) -> None:
    app.register_blueprint(bp)
