"""Fill the Constant Contact lists from the segment memberships with the fewest calls.

Contacts are streamed from SQL ordered by their *combination* of lists (a bit per segment)
and id, so each contacts_json_import carries one ``list_ids`` set and up to 40,000 rows
(< 4 MB). Up to IN_FLIGHT activities run at once; each submission and each confirmation
is checkpointed, so a killed worker waits for what it had submitted and goes on after it
(a re-sent chunk would be harmless anyway: CC lists are sets).
Unsubscribed contacts are never sent; invalid emails are quarantined as SyncErrors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, and_, exists, literal, or_, select

from cc_storeplugin.constantcontact import bulk
from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.emails import check_email
from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Segment, SegmentMembership
from cc_storeplugin.sync.runs import quarantine

Checkpoint = dict[str, Any]
STREAM_BATCH = 5000
IN_FLIGHT = 3  # import activities running on CC's side at once (each is confirmed in order)


@dataclass
class Chunk:
    combo: int
    rows: list[dict[str, Any]]
    last_id: int
    invalid: list[tuple[int, str, str]]  # (customer id, email, reason)


def export_segments(
    client: CCClient,
    connection_id: int,
    run_id: int,
    checkpoint: Checkpoint,
    save: Callable[[Checkpoint], None],
    progress: Callable[[int], None] | None = None,
) -> Checkpoint:
    """Send every consenting contact to its lists; returns the final checkpoint."""
    segments = _segments(connection_id)
    all_list = next(s.cc_list_id for s in segments if s.key == "all")
    others = [s for s in segments if s.key != "all"]
    cp = {
        "after": None,
        "pending": [],
        "activities": 0,
        "sent": 0,
        "cc_errors": 0,
        "cannot_add": 0,
        **checkpoint,
    }
    if isinstance(cp["pending"], dict):  # a checkpoint from before activities overlapped
        cp["pending"] = [cp["pending"]]
    cp["pending"] = cp["pending"] or []
    # Resume: the activities submitted before the stop are waited for, then the stream goes
    # on after the last of them (they were all submitted, so none is sent twice).
    resume_at = cp["pending"][-1]["after"] if cp["pending"] else cp["after"]
    for chunk in _chunks(connection_id, others, resume_at):
        _quarantine(connection_id, run_id, chunk.invalid)
        entry: dict[str, Any] = {"activity_id": None, "after": [chunk.combo, chunk.last_id]}
        if chunk.rows:
            list_ids = [all_list] + [
                s.cc_list_id for i, s in enumerate(others) if chunk.combo >> i & 1
            ]
            entry["activity_id"] = bulk.submit_import(client, chunk.rows, list_ids)
            entry["rows"] = len(chunk.rows)
        cp["pending"].append(entry)
        save(cp)
        while _in_flight(cp) >= IN_FLIGHT or (
            cp["pending"] and not cp["pending"][0]["activity_id"]
        ):
            _finish_oldest(client, connection_id, run_id, cp, save)
        if progress:
            progress(cp["sent"])
    while cp["pending"]:
        _finish_oldest(client, connection_id, run_id, cp, save)
    if progress:
        progress(cp["sent"])
    return cp


def _in_flight(cp: Checkpoint) -> int:
    return sum(1 for p in cp["pending"] if p["activity_id"])


def _finish_oldest(client, connection_id, run_id, cp, save) -> None:
    """Wait for the oldest submitted activity, record its outcome, move the checkpoint past it.

    Activities are confirmed in submission order, so ``after`` only passes rows whose
    activity has ended; later ones run on CC's side meanwhile. One that was followed by
    another submission is looked at once before the first polling sleep: by then it has
    often ended, and sleeping a second per activity cost the 1M import ~34 s.
    """
    pending = cp["pending"][0]
    if pending["activity_id"]:
        result = None
        if len(cp["pending"]) > 1:  # submitted a chunk or more ago: often over already
            result = bulk.get_activity(client, pending["activity_id"])
        if result is None or not result.done:
            result = bulk.wait_for_activity(client, pending["activity_id"])
        errors = [e for e in result.errors if e.get("email")]
        if errors:
            quarantine(
                connection_id,
                run_id,
                [(None, e["email"], e.get("message", "rejected")) for e in errors],
                "cc_rejected",
            )
        cp["activities"] += 1
        cp["sent"] += pending["rows"]
        cp["cc_errors"] += result.error_count
        cp["cannot_add"] += result.cannot_add_to_list_count
    cp["after"] = pending["after"]
    cp["pending"] = cp["pending"][1:]
    save(cp)


def _segments(connection_id: int) -> list[Segment]:
    return list(
        db.session.scalars(
            select(Segment)
            .where(Segment.connection_id == connection_id, Segment.cc_list_id.is_not(None))
            .order_by(Segment.id)
        )
    )


def _chunks(connection_id: int, others: list[Segment], after: list[int] | None) -> Iterator[Chunk]:
    """Stream contacts by (combination, id) and cut chunks at combination changes and limits."""
    bits = [
        exists()
        .where(SegmentMembership.segment_id == s.id, SegmentMembership.customer_id == Customer.id)
        .cast(Integer)
        * (1 << i)
        for i, s in enumerate(others)
    ]
    combo = sum(bits[1:], bits[0]) if bits else literal(0)
    inner = (
        select(
            Customer.id,
            Customer.email,
            Customer.first_name,
            Customer.last_name,
            combo.label("combo"),
        )
        .where(Customer.connection_id == connection_id, Customer.consent_state != "unsubscribed")
        .subquery()
    )
    stmt = select(inner).order_by(inner.c.combo, inner.c.id)
    if after:
        stmt = stmt.where(
            or_(inner.c.combo > after[0], and_(inner.c.combo == after[0], inner.c.id > after[1]))
        )
    reader, result = _stream(stmt)
    try:
        current: Chunk | None = None
        size = 0
        for row in result:
            if current is not None and (
                row.combo != current.combo or len(current.rows) >= bulk.MAX_ROWS
            ):
                yield current
                current, size = None, 0
            if current is None:
                current, size = Chunk(row.combo, [], row.id, []), _WRAPPER_BYTES
            email, reason = check_email(row.email)
            current.last_id = row.id
            if email is None:
                current.invalid.append((row.id, row.email, reason or "invalid email"))
                continue
            item = bulk.import_row(email, row.first_name, row.last_name)
            item_bytes = len(json.dumps(item, ensure_ascii=False).encode()) + 1
            if size + item_bytes > bulk.MAX_BYTES and current.rows:
                # ids are integers: the full chunk ends just before this row
                current.last_id = row.id - 1
                yield current
                current, size = Chunk(row.combo, [], row.id, []), _WRAPPER_BYTES
            current.rows.append(item)
            size += item_bytes
        if current is not None:
            yield current
    finally:
        result.close()
        if reader is not None:
            reader.close()


def _stream(stmt: Any) -> tuple[Any, Any]:
    """Stream rows while the session commits checkpoints between chunks.

    PostgreSQL: a server-side cursor on its own connection (a commit on the session's
    connection would close it). SQLite: the session's connection, which may commit while a
    read is pending.
    """
    if db.engine.dialect.name == "postgresql":
        reader = db.engine.connect()
        result = reader.execution_options(stream_results=True, yield_per=STREAM_BATCH).execute(stmt)
        return reader, result
    return None, db.session.execute(stmt)


_WRAPPER_BYTES = 1024  # {"import_data": [...], "list_ids": [...]} around the rows


def _quarantine(connection_id: int, run_id: int, invalid: list[tuple[int, str, str]]) -> None:
    if invalid:
        quarantine(connection_id, run_id, invalid, "invalid_email")
