"""Signed REST under ``/rest[/<store_code>]/V1`` (also ``/index.php/rest/...``).

Every call is authorized as OauthUserContext does: an ``Authorization: OAuth`` header
verified against the access token (HMAC-SHA256), or a Bearer access token when the
``bearer_tokens`` option says the merchant enabled it; then the integration's ACL.
"""

from __future__ import annotations

import json
from functools import wraps
from math import ceil

from flask import Flask, Response, request
from werkzeug.routing import BaseConverter

from . import fields as partial
from . import serializers as s
from .oauth1 import OauthError, extract_params, request_url
from .search_criteria import SearchError, compile_order, compile_where, parse
from .state import state

NOT_AUTHORIZED = "The consumer isn't authorized to access %resources."
NO_ROUTE = {"message": "Request does not match any route."}
R_CUSTOMER, R_MANAGE = "Magento_Customer::customer", "Magento_Customer::manage"
R_SALES, R_CART, R_STORE = (
    "Magento_Sales::actions_view",
    "Magento_Cart::manage",
    "Magento_Backend::store",
)


class RestBase(BaseConverter):
    """``rest``, ``rest/<store_code>``, optionally behind ``index.php/``."""

    regex = r"(?:index\.php/)?rest(?:/[A-Za-z0-9_]+)?"
    part_isolating = False


def json_response(body, status: int = 200) -> Response:
    """JSON as Magento sends it (pre-encoded strings pass through)."""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return Response(text, status=status, content_type="application/json; charset=utf-8")


def _store_code(base: str) -> str | None:
    """Store code of the path, "default" for none, None when unknown (no route)."""
    parts = base.split("/")
    code = parts[-1] if parts[-1] != "rest" else None
    st = state()
    if code is None:
        return st.store_codes[0]
    if code == "all" or any(code == v["code"] for v in st.stores):
        return code
    return None


def _authorize(resource: str) -> Response | None:
    st = state()
    url = request_url(request)
    consumer = None
    try:
        params = extract_params(request, url)
        if params:
            consumer = st.oauth.validate_access(params, request.method, url)
    except OauthError as exc:
        return json_response(exc.body(), exc.status)
    header = request.headers.get("Authorization", "")
    if consumer is None and st.bearer_tokens and header.lower().startswith("bearer "):
        consumer = st.oauth.bearer(header[7:].strip())
    if consumer is not None:
        integ = next((i for i in st.integrations.values() if i.consumer_id == consumer.id), None)
        if integ is None or integ.resources is None or resource in integ.resources:
            return None
    return json_response({"message": NOT_AUTHORIZED, "parameters": {"resources": resource}}, 401)


def endpoint(resource: str):
    """Route guard: known store code, authorized consumer, Magento-shaped errors."""

    def deco(fn):
        @wraps(fn)
        def wrapper(base: str, **kw):
            code = _store_code(base)
            if code is None:
                return json_response(NO_ROUTE, 404)
            denied = _authorize(resource)
            if denied is not None:
                return denied
            try:
                resp = fn(code=code, **kw)
            except SearchError as exc:
                return json_response(exc.body(), exc.status)
            wanted = request.args.get("fields")
            if wanted and resp.status_code == 200:
                body = partial.apply(json.loads(resp.get_data()), partial.parse(wanted))
                resp = json_response(body)
            return resp

        return wrapper

    return deco


def _created_in() -> str:
    return s.store_name_case(state().stores, "{a}.store_id")


def _customer_select() -> str:
    return s.customer_json("t", _created_in().replace("{a}", "t")) + ", t.id"


def _search(entity: s.Entity, select: str, table: str, splice=None) -> Response:
    st = state()
    crit = parse(list(request.args.items(multi=True)), st.max_page_size, st.default_page_size)
    where, params = compile_where(entity, crit)
    order = compile_order(entity, crit)
    total = st.store.count(entity.table, where, params)
    limit = crit.page_size or None
    offset = 0
    if limit:
        page = max(crit.current_page or 1, 1)
        if st.legacy_paging:  # <= 2.3: a page past the end is the last page again
            page = min(page, max(1, ceil(total / limit)))
        offset = (page - 1) * limit
    rows = (
        []
        if limit and offset >= total
        else st.store.page(select, table, where, params, order, limit, offset)
    )
    items = [r[0] for r in rows]
    if splice and rows:
        items = splice(rows)
    echo = json.dumps(crit.echo, separators=(",", ":"))
    return json_response(
        f'{{"items":[{",".join(items)}],"search_criteria":{echo},"total_count":{total}}}'
    )


def _by_ids(template: str, rows: list[tuple], chunk: int = 10_000) -> list[tuple]:
    """Run an ``IN ({ids})`` query for the ids of ``rows`` (chunked under SQLite's limit)."""
    ids = [r[1] for r in rows]
    out: list[tuple] = []
    for i in range(0, len(ids), chunk):
        part = ids[i : i + chunk]
        out += state().store.query(template.replace("{ids}", ",".join("?" * len(part))), part)
    return out


def _splice_order_items(rows: list[tuple]) -> list[str]:
    got = {oid: (items, n, qty) for oid, items, n, qty in _by_ids(s.ORDER_ITEMS_SQL, rows)}
    out = []
    for r in rows:
        items, n, qty = got.get(r[1], ("[]", 0, 0))
        qty = int(qty) if float(qty).is_integer() else qty
        out.append(
            s.splice(r[0], f'"total_item_count":{n},"total_qty_ordered":{qty},"items":{items}')
        )
    return out


def _splice_cart_items(rows: list[tuple]) -> list[str]:
    got = {cid: (items, qty) for cid, items, qty in _by_ids(s.CART_ITEMS_SQL, rows)}
    out = []
    for r in rows:
        items, qty = got.get(r[1], ("[]", 0))
        qty = int(qty) if float(qty).is_integer() else qty
        out.append(s.splice(r[0], f'"items":{items},"items_qty":{qty}'))
    return out


def _order_select() -> str:
    name = s.store_name_case(
        state().stores, "t.store_id", "Main Website\nMain Website Store\n{name}"
    )
    return s.order_json(name) + ", t.id"


def _cart_select() -> str:
    return s.cart_json(_created_in().replace("{a}", "c")) + ", t.id"


@endpoint(R_CUSTOMER)
def customers_search(code: str) -> Response:
    """GET /V1/customers/search."""
    return _search(s.CUSTOMER, _customer_select(), s.CUSTOMER.table)


@endpoint(R_SALES)
def orders_search(code: str) -> Response:
    """GET /V1/orders."""
    return _search(s.ORDER, _order_select(), s.ORDER.table, _splice_order_items)


@endpoint(R_CART)
def carts_search(code: str) -> Response:
    """GET /V1/carts/search."""
    return _search(s.CART, _cart_select(), s.CART_FROM, _splice_cart_items)


def _no_entity(field: str, value) -> Response:
    body = {
        "message": "No such entity with %fieldName = %fieldValue",
        "parameters": {"fieldName": field, "fieldValue": value},
    }
    return json_response(body, 404)


def _one_customer(customer_id: int) -> str | None:
    rows = state().store.query(
        f"SELECT {_customer_select()} FROM customers t WHERE t.id = ?",  # noqa: S608
        [customer_id],
    )
    return rows[0][0] if rows else None


@endpoint(R_CUSTOMER)
def customer_get(code: str, customer_id: int) -> Response:
    """GET /V1/customers/{customerId}."""
    one = _one_customer(customer_id)
    return json_response(one) if one else _no_entity("customerId", customer_id)


def _required(field: str) -> Response:
    body = {
        "message": '"%fieldName" is required. Enter and try again.',
        "parameters": {"fieldName": field},
    }
    return json_response(body, 400)


@endpoint(R_MANAGE)
def customer_put(code: str, customer_id: int) -> Response:
    """PUT /V1/customers/{customerId}: save; extension_attributes.is_subscribed (un)subscribes."""
    st = state()
    body = request.get_json(silent=True)
    cust = body.get("customer") if isinstance(body, dict) else None
    if not isinstance(cust, dict):
        return _required("customer")
    rows = st.store.query("SELECT email, website_id FROM customers WHERE id = ?", [customer_id])
    if not rows:
        return _no_entity("customerId", customer_id)
    for name in ("firstname", "lastname", "email"):
        if not isinstance(cust.get(name), str) or not cust[name].strip():
            return _required(name)
    website = int(cust.get("website_id") or rows[0][1])
    if cust["email"] != rows[0][0]:
        dup = st.store.query(
            "SELECT 1 FROM customers WHERE email = ? COLLATE NOCASE AND website_id = ? AND id != ?",
            [cust["email"], website, customer_id],
        )
        if dup:
            msg = "A customer with the same email address already exists in an associated website."
            return json_response({"message": msg}, 400)
    sets = {
        "email": cust["email"],
        "firstname": cust["firstname"],
        "lastname": cust["lastname"],
        "website_id": website,
        "updated_at": st.now_text(),
    }
    for name in ("group_id", "store_id"):
        if isinstance(cust.get(name), int):
            sets[name] = cust[name]
    ext = cust.get("extension_attributes")
    if isinstance(ext, dict) and isinstance(ext.get("is_subscribed"), bool):
        sets["is_subscribed"] = int(ext["is_subscribed"])
    assign = ", ".join(f"{k} = ?" for k in sets)
    st.store.execute(f"UPDATE customers SET {assign} WHERE id = ?", [*sets.values(), customer_id])  # noqa: S608
    return json_response(_one_customer(customer_id))


@endpoint(R_SALES)
def order_get(code: str, order_id: int) -> Response:
    """GET /V1/orders/{id}."""
    rows = state().store.query(f"SELECT {_order_select()} FROM orders t WHERE t.id = ?", [order_id])  # noqa: S608
    if not rows:
        msg = "The entity that was requested doesn't exist. Verify the entity and try again."
        return json_response({"message": msg}, 404)
    return json_response(_splice_order_items(rows)[0])


@endpoint(R_CART)
def cart_totals(code: str, cart_id: int) -> Response:
    """GET /V1/carts/{cartId}/totals (active carts only, as quoteRepository->getActive)."""
    st = state()
    cart = st.store.query("SELECT grand_total FROM carts WHERE id = ? AND is_active = 1", [cart_id])
    if not cart:
        return _no_entity("cartId", cart_id)
    items = st.store.query(
        "SELECT id, name, qty, price FROM cart_items WHERE cart_id = ?", [cart_id]
    )
    return json_response(s.totals(cart[0][0], items))


@endpoint(R_STORE)
def store_views(code: str) -> Response:
    """GET /V1/store/storeViews (the admin store included, as getList returns it)."""
    admin = {
        "id": 0,
        "code": "admin",
        "name": "Admin",
        "website_id": 0,
        "store_group_id": 0,
        "is_active": 1,
    }
    return json_response([admin, *state().stores])


@endpoint(R_STORE)
def websites(code: str) -> Response:
    """GET /V1/store/websites."""
    admin = {"id": 0, "code": "admin", "name": "Admin", "default_group_id": 0}
    return json_response([admin, *state().websites])


ROUTES = (
    ("customers/search", customers_search, "GET"),
    ("customers/<int:customer_id>", customer_get, "GET"),
    ("customers/<int:customer_id>", customer_put, "PUT"),
    ("orders", orders_search, "GET"),
    ("orders/<int:order_id>", order_get, "GET"),
    ("carts/search", carts_search, "GET"),
    ("carts/<int:cart_id>/totals", cart_totals, "GET"),
    ("store/storeViews", store_views, "GET"),
    ("store/websites", websites, "GET"),
)


def register(app: Flask) -> None:
    """Add the REST routes and Magento's 404 body for unknown REST paths."""
    app.url_map.converters["mgrest"] = RestBase
    for path, view, method in ROUTES:
        app.add_url_rule(
            f"/<mgrest:base>/V1/{path}", f"mg_{view.__name__}_{method}", view, methods=[method]
        )

    def not_found(exc):
        path = request.path
        if path.startswith(("/rest/", "/index.php/rest/")):
            return json_response(NO_ROUTE, 404)
        return exc

    app.register_error_handler(404, not_found)
    app.register_error_handler(405, not_found)
