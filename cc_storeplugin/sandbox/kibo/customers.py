"""Customer accounts over the store's ``customers`` table (``openapi_customer.json``).

- ``GET /api/commerce/customer/accounts`` ``startIndex, pageSize (<=200), sortBy, filter,
  q, isAnonymous, responseFields`` -> ``CustomerAccountCollection``.
  Filterable/sortable: ``id, emailAddress, userName, firstName, lastName,
  acceptsMarketing, isActive, isAnonymous, isLocked, contacts.email,
  updateDate|auditInfo.updateDate, createDate|auditInfo.createDate, customerSinceDate``
  and ``userId`` (the 32-hex id carts carry). Text compares case-insensitively.
- ``GET /api/commerce/customer/accounts/{accountId}`` -> ``CustomerAccount`` (404 ITEM_NOT_FOUND).
- ``PUT /api/commerce/customer/accounts/{accountId}``: ``emailAddress``, ``firstName``,
  ``lastName`` and ``acceptsMarketing`` persist, ``auditInfo.updateDate`` moves to now;
  ``isActive`` is ignored (Kibo wants the DisableAccount action). Fires
  ``customeraccount.updated`` when an event endpoint is set (Kibo fires for API writes too).

Control: ``POST /_sandbox/customers`` (a shopper signs up: ``customeraccount.created``) and
``POST /_sandbox/customers/{id}`` (a shopper edits the account, e.g. opts in:
``customeraccount.updated``), both with CustomerAccount field names.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from .common import (
    KIND_USER,
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
    store_ts,
)
from .query import Field, QueryError, compile_filter, compile_sort

bp = Blueprint("kibo_customers", __name__)

_UPDATED = Field("c.updated_at", "date")
_CREATED = Field("c.created_at", "date")
ACCOUNT_FIELDS = {
    "id": Field("c.id", "int"),
    "emailaddress": Field("c.email", "str"),
    "username": Field("c.email", "str"),
    "contacts.email": Field("c.email", "str"),
    "firstname": Field("c.firstname", "str"),
    "lastname": Field("c.lastname", "str"),
    "acceptsmarketing": Field("c.accepts_marketing", "bool"),
    "isactive": Field("1", "bool"),
    "isanonymous": Field("0", "bool"),
    "islocked": Field("0", "bool"),
    "updatedate": _UPDATED,
    "auditinfo.updatedate": _UPDATED,
    "createdate": _CREATED,
    "auditinfo.createdate": _CREATED,
    "customersincedate": _CREATED,
}


def account_fields(st: KiboState) -> dict[str, Field]:
    """Filterable fields; ``userId`` takes the 32-hex user id (as carts carry it)."""
    tenant = st.config.tenant_id
    user = Field("c.id", "int", lambda raw: parse_hex_id(raw, KIND_USER, tenant))
    return {**ACCOUNT_FIELDS, "userid": user}


def account_json(st: KiboState, row: sqlite3.Row, summary: tuple | None) -> dict[str, Any]:
    """One store customer as a Kibo ``CustomerAccount``."""
    cfg = st.config
    audit = {
        "createDate": iso(row["created_at"]),
        "updateDate": iso(row["updated_at"]),
        "createBy": None,
        "updateBy": None,
    }
    count, amount, last = summary or (0, 0.0, None)
    return {
        "id": row["id"],
        "userId": hex_id(KIND_USER, row["id"], cfg.tenant_id),
        "emailAddress": row["email"],
        "userName": row["email"],
        "firstName": row["firstname"],
        "lastName": row["lastname"],
        "localeCode": "en-US",
        "isAnonymous": False,
        "isLocked": False,
        "isActive": True,
        "acceptsMarketing": bool(row["accepts_marketing"]),
        "hasExternalPassword": False,
        "customerSet": "default",
        "accountType": "B2C",
        "companyOrOrganization": None,
        "taxExempt": False,
        "taxId": None,
        "externalId": None,
        "migrationRequired": False,
        "customerSinceDate": iso(row["created_at"]),
        "commerceSummary": {
            "totalOrderAmount": {"currencyCode": "USD", "amount": round(float(amount or 0), 2)},
            "orderCount": int(count or 0),
            "lastOrderDate": iso(last),
            "wishlistCount": 0,
            "visitsCount": 0,
        },
        "contacts": [
            {
                "accountId": row["id"],
                "id": row["id"],
                "email": row["email"],
                "firstName": row["firstname"],
                "lastNameOrSurname": row["lastname"],
                "types": [{"name": "Billing", "isPrimary": True}],
                "auditInfo": audit,
            }
        ],
        "notes": [],
        "attributes": [],
        "segments": [],
        "auditInfo": audit,
    }


def _summaries(conn: sqlite3.Connection, ids: list[int]) -> dict[int, tuple]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        "SELECT customer_id, COUNT(*), SUM(grand_total), MAX(created_at) FROM orders "
        f"WHERE customer_id IN ({marks}) AND state != 'canceled' GROUP BY customer_id",
        ids,
    ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def load_account(st: KiboState, account_id: int) -> dict[str, Any] | None:
    conn = st.db()
    row = conn.execute("SELECT * FROM customers c WHERE c.id = ?", (account_id,)).fetchone()
    if row is None:
        return None
    return account_json(st, row, _summaries(conn, [account_id]).get(account_id))


@bp.get("/api/commerce/customer/accounts")
@bp.get("/api/commerce/customer/accounts/")
def list_accounts() -> Response:
    st = state()
    page = paging("id asc")
    if isinstance(page, Response):
        return page
    start, size, sort = page
    try:
        fields = account_fields(st)
        where, params = compile_filter(request.args.get("filter"), fields)
        order = compile_sort(sort, fields, "c.id ASC")
    except QueryError as exc:
        return invalid_parameter("filter", str(exc))
    q = (request.args.get("q") or "").strip()
    if q:
        where += " AND (c.email LIKE ? OR c.firstname LIKE ? OR c.lastname LIKE ?)"
        params += [f"%{q}%"] * 3
    if (request.args.get("isAnonymous") or "").lower() == "true":
        where += " AND 0"
    conn = st.db()
    total = st.count(f"SELECT COUNT(*) FROM customers c WHERE {where}", params)  # noqa: S608
    rows = conn.execute(
        f"SELECT * FROM customers c WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
        [*params, size, start],
    ).fetchall()
    sums = _summaries(conn, [r["id"] for r in rows])
    items = [account_json(st, r, sums.get(r["id"])) for r in rows]
    return respond(collection(start, size, total, items))


@bp.get("/api/commerce/customer/accounts/<int:account_id>")
def get_account(account_id: int) -> Response:
    account = load_account(state(), account_id)
    if account is None:
        return _not_found(account_id)
    return respond(account)


def _not_found(account_id: int) -> Response:
    return kibo_error(404, "ITEM_NOT_FOUND", f"Customer account {account_id} not found", "Customer")


def update_account(st: KiboState, account_id: int, body: dict[str, Any]) -> dict | None:
    """Persist the writable fields of a CustomerAccount body; returns the new account."""
    sets: dict[str, Any] = {}
    for key, column in (
        ("emailAddress", "email"),
        ("firstName", "firstname"),
        ("lastName", "lastname"),
    ):
        if isinstance(body.get(key), str) and (body[key] or key != "emailAddress"):
            sets[column] = body[key]
    if isinstance(body.get("acceptsMarketing"), bool):
        sets["accepts_marketing"] = int(body["acceptsMarketing"])
    sets["updated_at"] = store_ts(st.now())
    assignments = ", ".join(f"{col} = ?" for col in sets)
    with st.write_lock:
        conn = st.db()
        cur = conn.execute(
            f"UPDATE customers SET {assignments} WHERE id = ?",  # noqa: S608
            [*sets.values(), account_id],
        )
        conn.commit()
        st.wrote()
    if cur.rowcount == 0:
        return None
    return load_account(st, account_id)


def create_account(st: KiboState, body: dict[str, Any]) -> dict[str, Any]:
    """Insert a new customer as a storefront sign-up would."""
    now = store_ts(st.now())
    with st.write_lock:
        conn = st.db()
        cur = conn.execute(
            "INSERT INTO customers (email, firstname, lastname, created_at, updated_at, "
            "accepts_marketing) VALUES (?, ?, ?, ?, ?, ?)",
            (
                body["emailAddress"],
                body.get("firstName") or "",
                body.get("lastName") or "",
                now,
                now,
                int(bool(body.get("acceptsMarketing"))),
            ),
        )
        conn.commit()
        st.wrote()
    return load_account(st, int(cur.lastrowid or 0)) or {}


@bp.put("/api/commerce/customer/accounts/<int:account_id>")
def put_account(account_id: int) -> Response:
    st = state()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return invalid_parameter("account", "A CustomerAccount JSON body is required")
    if "acceptsMarketing" in body and not isinstance(body["acceptsMarketing"], bool):
        return invalid_parameter("acceptsMarketing", "acceptsMarketing must be a boolean")
    account = update_account(st, account_id, body)
    if account is None:
        return _not_found(account_id)
    st.events.notify("customeraccount.updated", str(account_id))
    return respond(account)


@bp.post("/_sandbox/customers")
def sandbox_signup() -> Response | tuple[Response, int]:
    st = state()
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("emailAddress"), str):
        return jsonify({"message": "JSON with emailAddress expected"}), 400
    account = create_account(st, body)
    deliveries = st.events.notify("customeraccount.created", str(account["id"]))
    return jsonify({"account": account, "deliveries": [d["id"] for d in deliveries]}), 201


@bp.post("/_sandbox/customers/<int:account_id>")
def sandbox_shopper_edit(account_id: int) -> Response | tuple[Response, int]:
    st = state()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify({"message": "JSON object expected"}), 400
    account = update_account(st, account_id, body)
    if account is None:
        return jsonify({"message": f"no customer {account_id}"}), 404
    deliveries = st.events.notify("customeraccount.updated", str(account_id))
    return jsonify({"account": account, "deliveries": [d["id"] for d in deliveries]})


def register(app: Flask) -> None:
    app.register_blueprint(bp)
