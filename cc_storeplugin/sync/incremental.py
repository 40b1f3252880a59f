"""Incremental fetch: the customers and orders a store changed since a watermark.

No fixed time windows: each kind is read from ``watermark − OVERLAP`` onwards in
``(updated_at, id)`` order with *keyset* paging — every request asks for the rows after the
last (updated_at, id) seen, so a row that changes while we page (and jumps to the end) can
never push an unread row onto an already-read page. The new watermark is the largest
updated_at seen, so an outage of any length loses nothing. The overlap re-reads rows whose
transaction committed late; upserts of unchanged rows write nothing.

Magento: ``updated_at gteq T`` AND (``updated_at gt T`` OR ``entity_id gt N``), sortOrders
updated_at ASC, entity_id ASC, pageSize 300. Kibo: ``filter=updateDate gt T or (updateDate
eq T and id gt N)`` (orders: orderNumber), sortBy ``updateDate asc,<id> asc``, pageSize 200.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Order, StoreConnection, SyncRun
from cc_storeplugin.platforms.base import Page
from cc_storeplugin.sync import mirror

OVERLAP = timedelta(minutes=15)
KINDS = ("customers", "orders")
Save = Callable[[dict[str, Any]], None]

# kind -> (Magento resource, id field in items, id field for filter/sort, adapter mapper name)
_MAGENTO = {
    "customers": ("customers/search", "id", "entity_id", "map_customer"),
    "orders": ("orders", "entity_id", "entity_id", "map_order"),
}
# kind -> (Kibo path, id field in items and in filter/sort, mapper name)
_KIBO = {
    "customers": ("/api/commerce/customer/accounts", "id", "map_customer"),
    "orders": ("/api/commerce/orders", "orderNumber", "map_order"),
}


def stored_watermark(conn: StoreConnection, kind: str) -> datetime | None:
    """The kind's watermark from the connection's settings; else (first run after the import)
    the newest updated_at the mirror holds, or the import's start if earlier; None when the
    mirror is empty (fetch everything)."""
    value = ((conn.settings or {}).get("watermarks") or {}).get(kind)
    if value:
        return datetime.fromisoformat(value)
    model = Customer if kind == "customers" else Order
    newest = db.session.scalar(
        select(func.max(model.platform_updated_at)).where(model.connection_id == conn.id)
    )
    # A row changed while the import was paging may be older than the newest row it read.
    import_started = db.session.scalar(
        select(SyncRun.started_at)
        .where(
            SyncRun.connection_id == conn.id,
            SyncRun.kind == "import",
            SyncRun.status == "COMPLETE",
        )
        .order_by(SyncRun.id.desc())
        .limit(1)
    )
    if newest is None or import_started is None:
        return newest
    return min(newest, import_started)


def save_watermarks(connection_id: int, marks: dict[str, str | None]) -> None:
    """Store the run's new watermarks (only after it completed); None keeps the old one."""
    conn = db.session.get(StoreConnection, connection_id)
    settings = dict(conn.settings or {})
    current = dict(settings.get("watermarks") or {})
    current.update({k: v for k, v in marks.items() if v})
    settings["watermarks"] = current
    conn.settings = settings  # a new dict: JSON columns do not track in-place changes
    db.session.commit()


def fetch_changed(
    adapter: Any, connection_id: int, kind: str, cp: dict[str, Any], save: Save, run_id: int
) -> dict[str, Any]:
    """Upsert the kind's changed records page by page into the mirror, checkpointing after
    each page in ``cp[kind]`` = {since, after, max_seen, changed, seen, affected}.

    Resumes after the last page saved. ``affected`` (orders) lists the contacts whose
    purchase stats may have changed. Returns ``cp[kind]``.
    """
    state = cp.setdefault(kind, {})
    if "since" not in state:
        since = stored_watermark(db.session.get(StoreConnection, connection_id), kind)
        state.update(mark=since.isoformat() if since else None, after=None)
        state["since"] = (since - OVERLAP).isoformat() if since else None
        state.update(max_seen=None, changed=0, seen=0, affected=[], done=False)
        save(cp)
    if state.get("done"):
        return state
    since = datetime.fromisoformat(state["since"]) if state["since"] else None
    mark = datetime.fromisoformat(state["mark"]) if state["mark"] else None
    affected = set(state["affected"])
    for page, after in changed_pages(adapter, kind, since, state["after"]):
        if kind == "customers":
            counts = mirror.upsert_customers(connection_id, page.records, run_id=run_id)
            state["changed"] += counts["inserted"] + counts["updated"]
            rejected = list(page.rejected) + [
                (f"customer {ref}", why) for ref, why in counts["rejected"]
            ]
        else:
            affected |= mirror.upsert_orders(connection_id, page.records)
            # orders newer than the old watermark (the overlap's re-reads do not count)
            state["changed"] += sum(
                1 for r in page.records if mark is None or (r.updated_at and r.updated_at > mark)
            )
            rejected = list(page.rejected)
        if rejected:
            _quarantine(connection_id, run_id, rejected)
        state["seen"] += len(page.records)
        newest = max((r.updated_at for r in page.records if r.updated_at), default=None)
        if newest and (not state["max_seen"] or newest > datetime.fromisoformat(state["max_seen"])):
            state["max_seen"] = newest.isoformat()
        state["after"], state["affected"] = after, sorted(affected)
        save(cp)  # commits the page's upserts together with the checkpoint
    state["done"] = True
    save(cp)
    return state


def _quarantine(connection_id: int, run_id: int, rejected: list[tuple[str, str]]) -> None:
    from cc_storeplugin.sync.runs import quarantine

    quarantine(connection_id, run_id, [(None, ref, why) for ref, why in rejected], "missing_field")


def changed_pages(
    adapter: Any, kind: str, since: datetime | None, after: list[Any] | None
) -> Iterator[tuple[Page, list[Any]]]:
    """Pages of records updated at or after ``since``, each with the keyset position after it."""
    if adapter.platform == "magento":
        return _magento_pages(adapter, kind, since, after)
    if adapter.platform == "kibo":
        return _kibo_pages(adapter, kind, since, after)
    raise ValueError(f"no incremental fetch for platform {adapter.platform!r}")


def _magento_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _magento_pages(adapter, kind, since, after) -> Iterator[tuple[Page, list[Any]]]:
    from cc_storeplugin.platforms.magento import adapter as magento

    resource, item_id, id_field, mapper = _MAGENTO[kind]
    page_size = min(adapter.page_size, magento.MAX_PAGE_SIZE)
    while True:
        groups: list[list[dict[str, Any]]] = []
        if after:
            groups.append([{"field": "updated_at", "value": after[0], "condition_type": "gteq"}])
            groups.append(
                [
                    {"field": "updated_at", "value": after[0], "condition_type": "gt"},
                    {"field": id_field, "value": after[1], "condition_type": "gt"},
                ]
            )
        elif since is not None:
            groups.append(
                [{"field": "updated_at", "value": _magento_time(since), "condition_type": "gteq"}]
            )
        body = adapter.client.search(
            resource,
            filter_groups=groups,
            sort_orders=(("updated_at", "ASC"), (id_field, "ASC")),
            page_size=page_size,
            current_page=1,
        )
        items = body.get("items") or []
        if not items:
            return
        records, rejected = magento.map_items(items, kind[:-1], getattr(magento, mapper))
        last = items[-1]
        after = [str(last.get("updated_at")), int(last.get(item_id))]
        total = body.get("total_count")
        yield Page(records=records, cursor={"after": after}, rejected=rejected), after
        if not isinstance(total, int) or total <= len(items):
            return


def _kibo_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _kibo_pages(adapter, kind, since, after) -> Iterator[tuple[Page, list[Any]]]:
    from cc_storeplugin.platforms.kibo import adapter as kibo

    path, id_field, mapper = _KIBO[kind]
    while True:
        if after:
            t, n = after
            flt = f"updateDate gt {t} or (updateDate eq {t} and {id_field} gt {n})"
        else:
            flt = f"updateDate ge {_kibo_time(since)}" if since is not None else None
        params: dict[str, Any] = {
            "startIndex": 0,
            "pageSize": adapter.page_size,
            "sortBy": f"updateDate asc,{id_field} asc",
        }
        if flt:
            params["filter"] = flt
        body = adapter.client.get(path, params) or {}
        items = body.get("items") or []
        if not items:
            return
        records, rejected = kibo.map_items(items, kind[:-1], getattr(kibo, mapper))
        last = items[-1]
        stamp = (last.get("auditInfo") or {}).get("updateDate")
        after = [stamp, int(last.get(id_field))]
        total = body.get("totalCount")
        yield Page(records=records, cursor={"after": after}, rejected=rejected), after
        if not isinstance(total, int) or total <= len(items):
            return
