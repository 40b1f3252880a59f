"""Apply one run's segment diff (its transition log) to the Constant Contact lists.

Adds: the contacts that entered segments in the run (and are still members) are grouped by
the *combination* of lists they entered, so one contacts_json_import (≤ 40,000 rows, < 4 MB)
adds a contact to all its new lists at once. Unsubscribed contacts are never sent (pulled from
CC before this step); invalid addresses are quarantined.

Removals: the contacts that left are grouped the same way and removed with
remove_list_memberships, 500 CC contact ids and up to 50 lists a call. CC ids come from
``Customer.cc_contact_id``; unknown ones are learned in bulk with one contact export (never
one lookup per contact) of the smallest list of each combination concerned, and stored for
the next runs. Leavers that cannot be on a CC list (an address CC refuses; unsubscribed,
which CC takes off every list itself) never cause an export.

Rule (fewest calls): a list is *rebuilt* — one remove-all-members activity, then its current
members imported (⌈members / 40,000⌉ imports) — instead of diffed when that takes at most
half the calls, ``2 × (1 + ⌈members / 40,000⌉) ≤ ⌈left / 500⌉`` (or when its list was just
created; see ``rebuild_is_cheaper``).

All activities of the run are awaited together (one GET /activities a polling round). Then
the ids of the contacts the run's imports created are learned (GET /contacts?created_after,
500 a call), so their later removal needs no export. The checkpoint moves step by step
(plan, adds, removals, rebuild, wait, ids); a step redone after a crash is harmless since
CC lists are sets.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, exists, func, insert, literal, select, update

from cc_storeplugin.constantcontact import bulk
from cc_storeplugin.constantcontact import lists as cc_lists
from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.emails import check_email
from cc_storeplugin.extensions import db
from cc_storeplugin.models import (
    ConsentEvent,
    Customer,
    Segment,
    SegmentMembership,
    SegmentTransition,
    utcnow,
)
from cc_storeplugin.sync.consent_sync import SKIP_REASON
from cc_storeplugin.sync.runs import quarantine

STEPS = ("plan", "adds", "removals", "rebuild", "wait", "ids", "done")
# CC's clock and ours may differ a little; contacts created this long before the run count
CLOCK_SKEW = timedelta(minutes=5)
Save = Callable[[dict[str, Any]], None]
_ID_BATCH = 1000
_COPY_BATCH = 50_000


def apply_diff(
    client: CCClient, connection_id: int, run_id: int, state: dict[str, Any], save: Save
) -> dict[str, Any]:
    """Bring the CC lists in step with run ``run_id``'s transitions; returns the state:
    {step, rebuild, activities, imports, removals, exports, added, removed, ...}."""
    state.setdefault("step", "plan")
    for key in ("activities", "rebuild", "rebuilt"):
        state.setdefault(key, [])
    for key in ("imports", "removal_calls", "exports", "added", "removed", "skipped_unsub"):
        state.setdefault(key, 0)

    def at(step: str) -> bool:
        return STEPS.index(state["step"]) <= STEPS.index(step)

    def advance(step: str) -> None:
        state["step"] = step
        save(state)

    if at("plan"):
        state["started_at"] = datetime.now(UTC).isoformat()
        state["rebuild"] = _plan(client, connection_id, run_id)
        advance("adds")
    segments = _segments(connection_id)
    diffed = [s for s in segments if s.id not in state["rebuild"]]
    if at("adds"):
        state["activities"] = []  # redone whole after a crash: re-adding is harmless
        state["activities"] += _adds(client, connection_id, run_id, diffed, state)
        advance("removals")
    if at("removals"):
        state["activities"] += _removals(client, connection_id, run_id, diffed, state)
        advance("rebuild")
    if at("rebuild"):
        for seg in segments:
            if seg.id in state["rebuild"] and seg.id not in state["rebuilt"]:
                state["activities"] += _rebuild(client, connection_id, run_id, seg, state)
                state["rebuilt"].append(seg.id)
                save(state)
        advance("wait")
    if at("wait"):
        if state["activities"]:
            results = bulk.wait_for_activities(client, state["activities"])
            errors = [e for r in results.values() for e in r.errors if e.get("email")]
            if errors:
                items = [(None, e["email"], e.get("message", "rejected")) for e in errors]
                quarantine(connection_id, run_id, items, "cc_rejected")
            state["cc_errors"] = sum(r.error_count for r in results.values())
        advance("ids")
    if at("ids"):
        if state["imports"] and state.get("started_at"):
            since = datetime.fromisoformat(state["started_at"]) - CLOCK_SKEW
            state["ids_learned"] = learn_new_contact_ids(
                client, connection_id, since, state["added"]
            )
        advance("done")
    return state


# --- plan ------------------------------------------------------------------------------


def _segments(connection_id: int) -> list[Segment]:
    return list(
        db.session.scalars(
            select(Segment).where(Segment.connection_id == connection_id).order_by(Segment.id)
        )
    )


def _plan(client: CCClient, connection_id: int, run_id: int) -> list[int]:
    """Create missing lists; the segments to rebuild (new lists, or cheaper than a diff)."""
    rebuild = []
    for seg in _segments(connection_id):
        if not seg.cc_list_id:
            seg.cc_list_id = cc_lists.find_or_create_list(client, seg.name)
            db.session.commit()
            rebuild.append(seg.id)
            continue
        left = db.session.scalar(select(func.count()).select_from(_left(run_id, seg.id)))
        if not left:
            continue
        members = db.session.scalar(
            select(func.count())
            .select_from(SegmentMembership)
            .where(SegmentMembership.segment_id == seg.id)
        )
        if rebuild_is_cheaper(members, left):
            rebuild.append(seg.id)
    return rebuild


def rebuild_is_cheaper(members: int, left: int) -> bool:
    """Rebuild (1 remove-all + ⌈members/40k⌉ imports) only at half the calls of removing
    (⌈left/500⌉): a rebuild re-imports every member, which costs CC minutes on a big list
    and leaves the list incomplete until its imports end; a few calls more do not."""
    rebuild = 1 + math.ceil(members / bulk.MAX_ROWS)
    remove = math.ceil(left / cc_lists.MAX_IDS_PER_ACTIVITY)
    return 2 * rebuild <= remove


def _left(run_id: int, segment_id: int):
    """Customer ids that left the segment in the run and are not members now (net)."""
    member = exists().where(
        SegmentMembership.segment_id == segment_id,
        SegmentMembership.customer_id == SegmentTransition.customer_id,
    )
    return (
        select(SegmentTransition.customer_id)
        .where(
            SegmentTransition.segment_id == segment_id,
            SegmentTransition.sync_run_id == run_id,
            SegmentTransition.action == "left",
            ~member,
        )
        .distinct()
        .subquery()
    )


# --- adds ------------------------------------------------------------------------------


def _combo_rows(run_id: int, segments: list[Segment], action: str) -> Iterator[Any]:
    """Customers with a net ``action`` in the run, with a bit per segment of ``segments``,
    ordered by (combination, id): rows (id, email, first, last, consent, cc_contact_id, combo)."""
    ids = [s.id for s in segments]
    if not ids:
        return iter(())
    cand = (
        select(SegmentTransition.customer_id)
        .where(
            SegmentTransition.segment_id.in_(ids),
            SegmentTransition.sync_run_id == run_id,
            SegmentTransition.action == action,
        )
        .distinct()
        .subquery()
    )
    bits = []
    for i, seg in enumerate(segments):
        moved = exists().where(
            SegmentTransition.segment_id == seg.id,
            SegmentTransition.sync_run_id == run_id,
            SegmentTransition.action == action,
            SegmentTransition.customer_id == Customer.id,
        )
        member = exists().where(
            SegmentMembership.segment_id == seg.id, SegmentMembership.customer_id == Customer.id
        )
        net = and_(moved, member if action == "entered" else ~member)
        bits.append(net.cast(Integer) * (1 << i))
    combo = sum(bits[1:], bits[0])
    inner = (
        select(
            Customer.id,
            Customer.email,
            Customer.first_name,
            Customer.last_name,
            Customer.consent_state,
            Customer.cc_contact_id,
            combo.label("combo"),
        )
        .join(cand, cand.c.customer_id == Customer.id)
        .subquery()
    )
    stmt = select(inner).where(inner.c.combo > 0).order_by(inner.c.combo, inner.c.id)
    return iter(db.session.execute(stmt).all())


def _sendable(
    connection_id: int, run_id: int, rows: Iterable[Any], state: dict[str, Any]
) -> Iterator[dict]:
    """Import rows for consenting, valid contacts; the rest are recorded, never sent."""
    invalid, skipped = [], []
    for row in rows:
        if row.consent_state == "unsubscribed":
            skipped.append(row)
            continue
        email, reason = check_email(row.email)
        if email is None:
            invalid.append((row.id, row.email, reason or "invalid email"))
            continue
        state["added"] += 1
        yield bulk.import_row(email, row.first_name, row.last_name)
    if invalid:
        quarantine(connection_id, run_id, invalid, "invalid_email")
    if skipped:
        state["skipped_unsub"] += len(skipped)
        _ledger_skips(connection_id, run_id, skipped)


def _adds(
    client: CCClient, connection_id: int, run_id: int, segments: list[Segment], state: dict
) -> list[str]:
    activities = []
    rows = _combo_rows(run_id, segments, "entered")
    for combo, group in itertools.groupby(rows, key=lambda r: r.combo):
        list_ids = [s.cc_list_id for i, s in enumerate(segments) if combo >> i & 1]
        items = _sendable(connection_id, run_id, group, state)
        for chunk in bulk.chunk_rows(items, list_ids=list_ids):
            activities.append(bulk.submit_import(client, chunk, list_ids))
            state["imports"] += 1
    return activities


def _ledger_skips(connection_id: int, run_id: int, rows: list[Any]) -> None:
    now = utcnow()
    db.session.execute(
        insert(ConsentEvent),
        [
            {
                "connection_id": connection_id,
                "customer_id": r.id,
                "email": r.email,
                "action": "skipped",
                "source": "plugin",
                "reason": SKIP_REASON,
                "occurred_at": now,
                "recorded_at": now,
                "sync_run_id": run_id,
            }
            for r in rows
        ],
    )
    db.session.commit()


# --- removals --------------------------------------------------------------------------


def _removals(
    client: CCClient, connection_id: int, run_id: int, segments: list[Segment], state: dict
) -> list[str]:
    by_combo: dict[int, list[Any]] = {}
    for row in _combo_rows(run_id, segments, "left"):
        by_combo.setdefault(row.combo, []).append(row)
    if not by_combo:
        return []
    unknown = {r.email: r for rows in by_combo.values() for r in rows if _needs_lookup(r)}
    learned: dict[str, str] = {}
    if unknown:
        list_ids = _lists_to_export(segments, {r.combo for r in unknown.values()})
        learned = learn_contact_ids(client, connection_id, list_ids, unknown)
        state["exports"] += 1
    activities = []
    for combo, rows in sorted(by_combo.items()):
        list_ids = [s.cc_list_id for i, s in enumerate(segments) if combo >> i & 1]
        ids = [r.cc_contact_id or learned.get(r.email) for r in rows]
        ids = [i for i in ids if i]  # not in CC (never sent, or CC dropped them): nothing to do
        if ids:
            made = cc_lists.remove_members(client, list_ids, ids)
            activities += made
            state["removal_calls"] += len(made)
            state["removed"] += len(ids)
    return activities


def _needs_lookup(row: Any) -> bool:
    """A leaver whose CC id is unknown and who can be on a CC list at all: an address CC
    refuses was never sent, and CC takes an unsubscribed contact off every list itself
    ("automatically removed from all lists", CC community, thread 414664)."""
    if row.cc_contact_id or row.consent_state == "unsubscribed":
        return False
    return check_email(row.email)[0] is not None


def _lists_to_export(segments: list[Segment], combos: set[int]) -> list[str]:
    """The smallest lists that still hold every unknown leaver: a leaver of a combination
    was on each of its lists, so one list per combination (the one with the fewest members)
    is enough — "Recent" rather than "Recent" + "All"."""
    sizes = dict(
        db.session.execute(
            select(SegmentMembership.segment_id, func.count())
            .where(SegmentMembership.segment_id.in_([s.id for s in segments]))
            .group_by(SegmentMembership.segment_id)
        ).all()
    )
    chosen: dict[str, None] = {}
    for combo in sorted(combos):
        members = [s for i, s in enumerate(segments) if combo >> i & 1]
        smallest = min(members, key=lambda s: (sizes.get(s.id, 0), s.id))
        chosen[smallest.cc_list_id] = None
    return list(chosen)


def learn_contact_ids(
    client: CCClient, connection_id: int, list_ids: list[str], emails: Iterable[str]
) -> dict[str, str]:
    """One contact export of ``list_ids``: store the CC id of *every* contact in it on its
    customer row and return ``{email: contact_id}`` for ``emails`` (lower-cased, the
    mirror's key).

    The download is the cost, so everything in it is kept: the first export after an import
    teaches the mirror the ids of those lists' contacts, and later runs need none."""
    wanted = {e.lower() for e in emails}
    found: dict[str, str] = {}

    def pairs() -> Iterator[tuple[str, str]]:
        for email, cid in bulk.iter_contact_ids(client, list_ids):
            if email in wanted:
                found[email] = cid
            yield email, cid

    store_contact_ids(connection_id, pairs())
    return found


def learn_new_contact_ids(client: CCClient, connection_id: int, since: datetime, sent: int) -> int:
    """Store the CC ids of the contacts CC created since ``since`` (this run's imports, which
    sent ``sent`` rows, made them), paging GET /contacts?created_after at 500 a call, so a
    new contact's later removal needs no export. Returns how many ids were stored or changed.

    The first page asks for the count: when CC created more contacts in that window than
    the run could have (an import that ended minutes ago, another app), nothing more is
    paged — those ids are left to an export, never thousands of calls."""
    params = {
        "created_after": since.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "limit": 500,
        "include_count": "true",
    }
    first = client.request("GET", "/contacts", params=params) or {}
    if int(first.get("contacts_count") or 0) > sent:
        return 0

    def pairs() -> Iterator[tuple[str, str]]:
        for contact in client.paginate_from(first, "contacts"):
            email = ((contact.get("email_address") or {}).get("address") or "").strip().lower()
            if email and contact.get("contact_id"):
                yield email, contact["contact_id"]

    return store_contact_ids(connection_id, pairs())


def store_contact_ids(connection_id: int, pairs: Iterable[tuple[str, str]]) -> int:
    """Set ``cc_contact_id`` from ``(email, contact_id)`` pairs where it differs, in bulk:
    on PostgreSQL one COPY into a temporary table and one UPDATE … FROM (a million ids in
    seconds, memory flat); elsewhere in batches of executemany. Returns rows changed."""
    conn = db.session.connection()
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        items = iter(pairs)
        with raw.cursor() as cur:
            cur.execute("CREATE TEMP TABLE cc_ids_in (email text, cid text) ON COMMIT DROP")
            # pairs may call CC, whose client may read its token through this connection:
            # so they are read between COPYs, never while one holds the connection
            while batch := list(itertools.islice(items, _COPY_BATCH)):
                with cur.copy("COPY cc_ids_in (email, cid) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            cur.execute(
                "UPDATE customers c SET cc_contact_id = i.cid FROM cc_ids_in i"
                " WHERE c.connection_id = %s AND c.email = i.email"
                " AND c.cc_contact_id IS DISTINCT FROM i.cid",
                (connection_id,),
            )
            changed = cur.rowcount
        db.session.commit()
        return changed
    stmt = (
        update(Customer)
        .where(
            Customer.connection_id == connection_id,
            Customer.email == bindparam("e"),
            func.coalesce(Customer.cc_contact_id, "") != bindparam("cid"),
        )
        .values(cc_contact_id=bindparam("cid"))
        .execution_options(synchronize_session=False)
    )
    changed = 0
    items = iter(pairs)
    while batch := list(itertools.islice(items, _ID_BATCH)):
        result = db.session.connection().execute(stmt, [{"e": e, "cid": c} for e, c in batch])
        changed += max(result.rowcount, 0)
    db.session.commit()
    return changed


# --- rebuild ---------------------------------------------------------------------------


def _rebuild(
    client: CCClient, connection_id: int, run_id: int, seg: Segment, state: dict
) -> list[str]:
    """Empty the list (one activity, awaited) and import the segment's consenting members."""
    body = {"source": {"list_ids": [seg.cc_list_id]}, "list_ids": [seg.cc_list_id]}
    cleared = client.request("POST", "/activities/remove_list_memberships", json=body)
    state["removal_calls"] += 1
    bulk.wait_for_activities(client, [cleared["activity_id"]])
    rows = db.session.execute(
        select(
            Customer.id,
            Customer.email,
            Customer.first_name,
            Customer.last_name,
            Customer.consent_state,
            literal(None).label("cc_contact_id"),
        )
        .join(SegmentMembership, SegmentMembership.customer_id == Customer.id)
        .where(SegmentMembership.segment_id == seg.id)
        .order_by(Customer.id)
    )
    activities = []
    items = _sendable(connection_id, run_id, rows, state)
    for chunk in bulk.chunk_rows(items, list_ids=[seg.cc_list_id]):
        activities.append(bulk.submit_import(client, chunk, [seg.cc_list_id]))
        state["imports"] += 1
    return activities
