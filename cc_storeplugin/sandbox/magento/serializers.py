"""Magento REST JSON for store rows, built by SQLite's JSON functions (fast, no per-row Python).

Each entity has: the searchable fields (Magento field name -> SQL expression, whether text,
whether nullable), the SQL expression giving one item's JSON, and the FROM clause. Magento
drops null fields from REST output, so optional fields go through ``json_patch('{}', ...)``.
Money columns are REAL; PHP's json_encode writes ``10`` for ``10.0``, and so do we (``num``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def num(expr: str) -> str:
    """SQL for a number written as PHP would (integral floats without ``.0``)."""
    return (
        f"(CASE WHEN {expr} = CAST({expr} AS INTEGER) THEN CAST({expr} AS INTEGER) ELSE {expr} END)"
    )


def boolean(expr: str) -> str:
    """SQL giving a JSON true/false for an integer flag."""
    return f"json(CASE WHEN {expr} THEN 'true' ELSE 'false' END)"


@dataclass(frozen=True)
class Field:
    """A searchable/sortable field: SQL expression, text (NOCASE compare) and nullability."""

    sql: str
    text: bool = False
    nullable: bool = False


@dataclass(frozen=True)
class Entity:
    """How one searchable entity maps onto the store file."""

    name: str
    table: str  # FROM clause, main table aliased ``t``
    id_sql: str
    fields: dict[str, Field] = field(default_factory=dict)
    unknown_field_status: int = 500  # flat tables fail in SQL (masked 500); EAV says 400


def sql_text(value: str) -> str:
    """An SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def store_name_case(stores: list[dict], column: str, template: str = "{name}") -> str:
    """SQL CASE mapping a store id column to ``template`` filled with the store view name."""
    parts = " ".join(
        f"WHEN {int(s['id'])} THEN {sql_text(template.format(name=s['name']))}" for s in stores
    )
    default = sql_text(template.format(name="Default Store View"))
    return f"(CASE {column} {parts} ELSE {default} END)"


CUSTOMER = Entity(
    name="customer",
    table="customers t",
    id_sql="t.id",
    unknown_field_status=400,
    fields={
        "entity_id": Field("t.id"),
        "id": Field("t.id"),
        "email": Field("t.email", text=True),
        "firstname": Field("t.firstname", text=True),
        "lastname": Field("t.lastname", text=True),
        "group_id": Field("t.group_id"),
        "website_id": Field("t.website_id"),
        "store_id": Field("t.store_id"),
        "created_at": Field("t.created_at"),
        "updated_at": Field("t.updated_at"),
    },
)


def customer_json(alias: str, created_in: str) -> str:
    """SQL for one customer-data-customer-interface object from table alias ``alias``."""
    a = alias
    return (
        f"json_object('id', {a}.id, 'group_id', {a}.group_id, 'created_at', {a}.created_at,"
        f" 'updated_at', {a}.updated_at, 'created_in', {created_in}, 'email', {a}.email,"
        f" 'firstname', {a}.firstname, 'lastname', {a}.lastname, 'store_id', {a}.store_id,"
        f" 'website_id', {a}.website_id, 'addresses', json('[]'),"
        f" 'disable_auto_group_change', 0,"
        f" 'extension_attributes', json_object('is_subscribed', {boolean(a + '.is_subscribed')}))"
    )


ORDER = Entity(
    name="order",
    table="orders t",
    id_sql="t.id",
    fields={
        "entity_id": Field("t.id"),
        "increment_id": Field("t.increment_id", text=True),
        "customer_id": Field("t.customer_id", nullable=True),
        "customer_email": Field("t.customer_email", text=True),
        "customer_firstname": Field("t.customer_firstname", text=True, nullable=True),
        "customer_lastname": Field("t.customer_lastname", text=True, nullable=True),
        "customer_is_guest": Field("t.customer_is_guest"),
        "customer_group_id": Field("(CASE WHEN t.customer_is_guest THEN 0 ELSE 1 END)"),
        "state": Field("t.state", text=True),
        "status": Field("t.status", text=True),
        "grand_total": Field("t.grand_total"),
        "base_grand_total": Field("t.grand_total"),
        "subtotal": Field("t.subtotal"),
        "base_subtotal": Field("t.subtotal"),
        "total_refunded": Field("NULLIF(t.total_refunded, 0)", nullable=True),
        "order_currency_code": Field("t.currency", text=True),
        "base_currency_code": Field("t.currency", text=True),
        "store_id": Field("t.store_id"),
        "created_at": Field("t.created_at"),
        "updated_at": Field("t.updated_at"),
    },
)


def order_json(store_name: str) -> str:
    """SQL for a sales-data-order-interface object without items (spliced in afterwards)."""
    gt, sub = num("t.grand_total"), num("t.subtotal")
    refunded = f"(CASE WHEN t.total_refunded > 0 THEN {num('t.total_refunded')} END)"
    return (
        "json_patch('{}', json_object("
        "'base_currency_code', t.currency, 'base_discount_amount', 0, 'base_grand_total', "
        f"{gt}, 'base_shipping_amount', 0, 'base_subtotal', {sub}, 'base_tax_amount', 0, "
        f"'base_total_refunded', {refunded}, 'created_at', t.created_at, "
        "'customer_email', t.customer_email, 'customer_firstname', t.customer_firstname, "
        "'customer_group_id', (CASE WHEN t.customer_is_guest THEN 0 ELSE 1 END), "
        "'customer_id', t.customer_id, 'customer_is_guest', t.customer_is_guest, "
        "'customer_lastname', t.customer_lastname, 'discount_amount', 0, 'entity_id', t.id, "
        "'global_currency_code', t.currency, "
        f"'grand_total', {gt}, 'increment_id', t.increment_id, 'is_virtual', 0, "
        "'order_currency_code', t.currency, 'shipping_amount', 0, 'state', t.state, "
        "'status', t.status, 'store_currency_code', t.currency, 'store_id', t.store_id, "
        f"'store_name', {store_name}, 'subtotal', {sub}, 'tax_amount', 0, "
        f"'total_refunded', {refunded}, 'updated_at', t.updated_at))"
    )


ORDER_ITEMS_SQL = (
    "SELECT i.order_id, json_group_array(json_object("
    "'item_id', i.id, 'order_id', i.order_id, 'sku', i.sku, 'name', i.name, "
    "'product_id', i.product_id, 'product_type', 'simple', "
    f"'price', {num('i.price')}, 'base_price', {num('i.price')}, "
    f"'original_price', {num('i.price')}, 'qty_ordered', {num('i.qty')}, "
    f"'row_total', {num('round(i.qty * i.price, 2)')}, "
    f"'base_row_total', {num('round(i.qty * i.price, 2)')}, 'is_virtual', 0)), "
    "COUNT(*), SUM(i.qty) FROM order_items i WHERE i.order_id IN ({ids}) GROUP BY i.order_id"
)


CART = Entity(
    name="cart",
    table="carts t",
    id_sql="t.id",
    fields={
        "entity_id": Field("t.id"),
        "customer_id": Field("t.customer_id", nullable=True),
        "customer_email": Field("t.customer_email", text=True, nullable=True),
        "customer_is_guest": Field("(t.customer_id IS NULL)"),
        "is_active": Field("t.is_active"),
        "items_count": Field("t.items_count"),
        "reserved_order_id": Field("t.reserved_order_id", text=True, nullable=True),
        "grand_total": Field("t.grand_total"),
        "base_grand_total": Field("t.grand_total"),
        "store_id": Field("1"),
        "created_at": Field("t.created_at"),
        "updated_at": Field("t.updated_at"),
    },
)


def cart_json(created_in: str) -> str:
    """SQL for a quote-data-cart-interface object without items; ``c`` is the customer join.

    A guest quote's customer keeps its non-nullable getters as nulls, as Magento prints them:
    ``{"email": null, "firstname": null, "lastname": null}`` (magento/magento2#6303).
    """
    guest = "json_object('email', t.customer_email, 'firstname', NULL, 'lastname', NULL)"
    obj = (
        "json_object("
        "'id', t.id, 'created_at', t.created_at, 'updated_at', t.updated_at, "
        f"'is_active', {boolean('t.is_active')}, 'is_virtual', json('false'), "
        "'items_count', t.items_count, "
        f"'customer', CASE WHEN c.id IS NULL THEN {guest} "
        f"ELSE {customer_json('c', created_in)} END, "
        "'reserved_order_id', t.reserved_order_id, 'orig_order_id', 0, "
        "'currency', json_object('global_currency_code', 'USD', 'base_currency_code', 'USD', "
        "'store_currency_code', 'USD', 'quote_currency_code', 'USD', 'store_to_base_rate', 0, "
        "'store_to_quote_rate', 0, 'base_to_global_rate', 1, 'base_to_quote_rate', 1), "
        f"'customer_is_guest', {boolean('t.customer_id IS NULL')}, "
        "'customer_note_notify', json('true'), 'customer_tax_class_id', 3, 'store_id', 1)"
    )
    drop = "CASE WHEN t.reserved_order_id IS NULL THEN '$.reserved_order_id' ELSE '$.none' END"
    return f"json_remove({obj}, {drop})"


CART_FROM = "carts t LEFT JOIN customers c ON c.id = t.customer_id"

CART_ITEMS_SQL = (
    (
        "SELECT i.cart_id, json_group_array(json_object("
        "'item_id', i.id, 'sku', i.sku, 'qty', {qty}, 'name', i.name, 'price', {price}, "
        "'product_type', 'simple', 'quote_id', CAST(i.cart_id AS TEXT))), SUM(i.qty) "
        "FROM cart_items i WHERE i.cart_id IN ({ids}) GROUP BY i.cart_id"
    )
    .replace("{qty}", num("i.qty"))
    .replace("{price}", num("i.price"))
)


def splice(obj_json: str, extra: str) -> str:
    """Append ``extra`` (``"k":v,...``) to a JSON object string."""
    return obj_json[:-1] + ("," if len(obj_json) > 2 else "") + extra + "}"


def money(v: float) -> float | int:
    """A number as PHP's json_encode prints it."""
    return int(v) if float(v).is_integer() else v


def totals(grand: float, items: list[tuple]) -> dict:
    """quote-data-totals-interface for a cart: no tax, shipping or discounts in the sandbox.

    Getters Magento declares non-nullable print null (weee_tax_applied_amount and friends).
    """
    subtotal = round(sum(q * p for _, _, q, p in items), 2)
    qty = sum(q for _, _, q, _ in items)

    lines = []
    for item_id, name, q, price in items:
        row = money(round(q * price, 2))
        lines.append(
            {
                "item_id": item_id,
                "price": money(price),
                "base_price": money(price),
                "qty": money(q),
                "row_total": row,
                "base_row_total": row,
                "row_total_with_discount": 0,
                "tax_amount": 0,
                "base_tax_amount": 0,
                "tax_percent": 0,
                "discount_amount": 0,
                "base_discount_amount": 0,
                "discount_percent": 0,
                "price_incl_tax": money(price),
                "base_price_incl_tax": money(price),
                "row_total_incl_tax": row,
                "base_row_total_incl_tax": row,
                "options": "[]",
                "weee_tax_applied_amount": None,
                "weee_tax_applied": None,
                "name": name,
            }
        )
    g, sub = money(grand), money(subtotal)
    body = {
        "grand_total": g,
        "base_grand_total": g,
        "subtotal": sub,
        "base_subtotal": sub,
        "discount_amount": 0,
        "base_discount_amount": 0,
        "subtotal_with_discount": sub,
        "base_subtotal_with_discount": sub,
        "shipping_amount": 0,
        "base_shipping_amount": 0,
        "shipping_discount_amount": 0,
        "base_shipping_discount_amount": 0,
        "tax_amount": 0,
        "base_tax_amount": 0,
        "weee_tax_applied_amount": None,
        "shipping_tax_amount": 0,
        "base_shipping_tax_amount": 0,
        "subtotal_incl_tax": sub,
        "shipping_incl_tax": 0,
        "base_shipping_incl_tax": 0,
        "base_currency_code": "USD",
        "quote_currency_code": "USD",
        "items_qty": money(qty),
        "items": lines,
        "total_segments": [
            {"code": "subtotal", "title": "Subtotal", "value": sub},
            {"code": "shipping", "title": "Shipping & Handling", "value": 0},
            {
                "code": "tax",
                "title": "Tax",
                "value": 0,
                "extension_attributes": {"tax_grandtotal_details": []},
            },
            {"code": "grand_total", "title": "Grand Total", "value": g, "area": "footer"},
        ],
    }
    return body
