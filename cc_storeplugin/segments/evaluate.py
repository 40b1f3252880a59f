"""Segment evaluation: each segment's members computed in SQL and diffed against memberships.

Per segment, in one transaction (committed before the next segment, so a killed run resumes
with nothing lost or doubled): one INSERT … SELECT writes the transitions, a single pass of
the connection's customers LEFT JOINed to the segment's memberships keeping the rows where
"matches the rule" and "is a member" disagree ("entered" / "left", each with its reason built
in SQL); then a DELETE removes the left memberships and an INSERT … SELECT adds the entered
ones, both read back from those transition rows. No customer row passes through Python.

Contract for the Constant Contact step: the diff of a run *is* its transition log. The
contacts to add to segment S's list in run R are
``SELECT customer_id FROM segment_transitions WHERE sync_run_id = R AND segment_id = S AND
action = 'entered'`` (``changed_customers(R, S, "entered")``), those to remove the same with
``'left'``. If R evaluated S more than once, a customer may appear under both actions; the
current ``segment_memberships`` row (present or not) is the net result. Pass ``run_id``:
transitions written without one are history only. Callers hold the connection's sync lock,
so two evaluations of one connection never interleave.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import (
    Integer,
    Select,
    and_,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    not_,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Customer, Segment, SegmentMembership, SegmentTransition
from cc_storeplugin.models.base import UTCDateTime
from cc_storeplugin.segments import builtin, custom_sql
from cc_storeplugin.segments.custom_rules import load_rule
from cc_storeplugin.sessions import in_parallel_sessions

log = logging.getLogger(__name__)

MEMBERS = SegmentMembership.__table__
TRANSITIONS = SegmentTransition.__table__
CUSTOMERS = Customer.__table__
TRANSITION_COLUMNS = [
    "connection_id",
    "customer_id",
    "segment_id",
    "action",
    "reason",
    "occurred_at",
    "sync_run_id",
]

# rowcount of an INSERT … SELECT is only kept on request (SQLAlchemy 2 "preserve_rowcount").
COUNTED = {"preserve_rowcount": True}


@dataclass(frozen=True)
class SegmentSpec:
    """What evaluation needs of a segment: its condition and the SQL texts of its reasons."""

    condition: ColumnElement[bool]
    entered_reason: ColumnElement[str]
    left_reason: ColumnElement[str]


def evaluate_segments(
    connection_id: int,
    now: datetime,
    *,
    run_id: int | None = None,
    segment_ids: list[int] | None = None,
) -> dict[str, dict[str, int]]:
    """Bring the connection's segment memberships in line with the mirror at instant ``now``.

    Evaluates every segment of the connection (creating the built-ins if missing), or only
    ``segment_ids`` (ids of other connections are ignored). Returns per segment key
    ``{"entered": n, "left": n, "members": n}``. Commits after each segment.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware UTC datetime")
    query = select(Segment.id, Segment.key, Segment.kind, Segment.name, Segment.rule).where(
        Segment.connection_id == connection_id
    )
    if segment_ids is None:
        builtin.ensure_builtin_segments(connection_id)
    else:
        query = query.where(Segment.id.in_(segment_ids))
    segments = db.session.execute(query.order_by(Segment.id)).all()
    db.session.commit()

    if db.engine.dialect.name == "postgresql" and len(segments) > 1:
        return _in_parallel(connection_id, segments, now, run_id)
    return {seg.key: r for seg in segments if (r := _one(connection_id, seg, now, run_id))}


PARALLEL = 2  # PostgreSQL sessions evaluating segments at once (an INSERT … SELECT is one core)


def _one(connection_id: int, seg: Any, now: datetime, run_id: int | None) -> dict[str, int] | None:
    """Evaluate one segment on this thread's session and commit; None if it was skipped."""
    first = db.session.scalar(select(Segment.evaluated_at).where(Segment.id == seg.id)) is None
    spec = spec_for(seg.kind, seg.key, seg.name, seg.rule, now, first_evaluation=first)
    if spec is None:
        return None
    try:
        result = _apply(connection_id, seg.id, spec, now, run_id)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return result


def _in_parallel(
    connection_id: int, segments: list[Any], now: datetime, run_id: int | None
) -> dict[str, dict[str, int]]:
    """Segments touch disjoint rows (their own memberships and log entries), so PARALLEL
    sessions evaluate them side by side; each commits its own, as the serial path does."""
    done = in_parallel_sessions(
        lambda seg: _one(connection_id, seg, now, run_id),
        segments,
        workers=PARALLEL,
        name="segments",
    )
    return {seg.key: r for seg, r in zip(segments, done, strict=True) if r is not None}


def spec_for(
    kind: str,
    key: str,
    name: str,
    rule: dict[str, Any] | None,
    now: datetime,
    *,
    first_evaluation: bool = False,
) -> SegmentSpec | None:
    """The SQL of a segment; None for a custom segment whose stored rule no longer validates
    (it is skipped and logged, so one bad rule cannot stop the connection's other lists).

    Custom rules compile with ``custom_sql.compile_rule(rule, now)``; their reasons name the
    segment (without the "<Platform> – " list prefix) and the figures the rule looks at.
    """
    if kind == "builtin":
        return SegmentSpec(
            condition=builtin.rule(key, now),
            entered_reason=builtin.reason(key, "entered", now, first_evaluation=first_evaluation),
            left_reason=builtin.reason(key, "left", now, first_evaluation=first_evaluation),
        )
    try:
        checked = load_rule(rule)
    except ValidationError as err:
        log.warning("custom segment %s skipped: invalid rule %s", key, err.messages)
        return None
    entered, left = custom_sql.reasons(display_name(name), checked)
    return SegmentSpec(
        condition=custom_sql.compile_rule(checked, now),
        entered_reason=entered,
        left_reason=left,
    )


def display_name(list_name: str) -> str:
    """A segment's own name: its list name without the "<Platform> – " prefix."""
    for label in builtin.PLATFORM_LABELS.values():
        prefix = f"{label} \u2013 "
        if list_name.startswith(prefix):
            return list_name[len(prefix) :]
    return list_name


def _apply(
    connection_id: int, segment_id: int, spec: SegmentSpec, now: datetime, run_id: int | None
) -> dict[str, int]:
    conn = db.session.connection()
    at = literal(now, UTCDateTime())
    # One pass: every customer of the connection against this segment's memberships. A member
    # is always a customer of the connection (the mirror never deletes one customer).
    membership = MEMBERS.c.customer_id
    was_member = membership.is_not(None)
    matches = func.coalesce(spec.condition, false())
    diff_rows = (
        select(
            literal(connection_id, Integer()),
            CUSTOMERS.c.id,
            literal(segment_id, Integer()),
            case((was_member, "left"), else_="entered"),
            case((was_member, spec.left_reason), else_=spec.entered_reason),
            at,
            literal(run_id, Integer()) if run_id is not None else null(),
        )
        .select_from(
            CUSTOMERS.outerjoin(
                MEMBERS, and_(membership == CUSTOMERS.c.id, MEMBERS.c.segment_id == segment_id)
            )
        )
        .where(
            CUSTOMERS.c.connection_id == connection_id,
            or_(and_(membership.is_(None), matches), and_(was_member, not_(matches))),
        )
    )
    # Every transition written below gets an id above this mark (the sequence only grows).
    mark = conn.scalar(select(func.coalesce(func.max(TRANSITIONS.c.id), 0)))
    changed = conn.execute(
        insert(TRANSITIONS).from_select(TRANSITION_COLUMNS, diff_rows), execution_options=COUNTED
    ).rowcount
    counts = {"entered": 0, "left": 0}

    def batch(action: str) -> Select[Any]:
        return select(TRANSITIONS.c.customer_id).where(
            TRANSITIONS.c.id > mark,
            TRANSITIONS.c.segment_id == segment_id,
            TRANSITIONS.c.action == action,
        )

    if changed:
        counts["left"] = conn.execute(
            delete(MEMBERS).where(
                MEMBERS.c.segment_id == segment_id, MEMBERS.c.customer_id.in_(batch("left"))
            )
        ).rowcount
        new_members = batch("entered").with_only_columns(
            literal(segment_id, Integer()), TRANSITIONS.c.customer_id, at
        )
        counts["entered"] = conn.execute(
            insert(MEMBERS).from_select(["segment_id", "customer_id", "since"], new_members),
            execution_options=COUNTED,
        ).rowcount
    members = conn.scalar(
        select(func.count()).select_from(MEMBERS).where(MEMBERS.c.segment_id == segment_id)
    )
    conn.execute(update(Segment.__table__).where(Segment.id == segment_id).values(evaluated_at=now))
    return {**counts, "members": members}


def changed_customers(run_id: int, segment_id: int, action: str) -> Select[tuple[int]]:
    """The customer ids that entered (or left) a segment in a run, for the CC step to stream."""
    return select(SegmentTransition.customer_id).where(
        SegmentTransition.sync_run_id == run_id,
        SegmentTransition.segment_id == segment_id,
        SegmentTransition.action == action,
    )


def transitions_for(customer_id: int, *, connection_id: int | None = None) -> list[dict[str, Any]]:
    """A customer's segment history, oldest first, for the customer page and the JSON API.

    Pass ``connection_id`` (the signed-in merchant's) to scope the read to that connection.
    """
    query = (
        select(
            SegmentTransition.id,
            Segment.key,
            Segment.name,
            SegmentTransition.action,
            SegmentTransition.reason,
            SegmentTransition.occurred_at,
            SegmentTransition.sync_run_id,
        )
        .join(Segment, Segment.id == SegmentTransition.segment_id)
        .where(SegmentTransition.customer_id == customer_id)
        .order_by(SegmentTransition.occurred_at, SegmentTransition.id)
    )
    if connection_id is not None:
        query = query.where(SegmentTransition.connection_id == connection_id)
    return [
        {
            "segment_key": r.key,
            "segment_name": r.name,
            "action": r.action,
            "reason": r.reason,
            "occurred_at": r.occurred_at,
            "sync_run_id": r.sync_run_id,
        }
        for r in db.session.execute(query)
    ]
