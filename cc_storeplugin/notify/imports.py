"""The merchant's system emails about an import: completed (figures per list) or stopped.

Both read the :class:`SyncRun` by id and go to the connection's merchant email (none → a log
line and ``""``). The completed email is built only from ``SyncRun.totals``, which the import
pipeline fills with exactly this shape::

    totals = {
        "customers_in_store": int,   # registered customers read from the store
        "orders_in_store": int,      # orders read from the store
        "contacts": int,             # distinct contacts (customers + guest purchasers)
        "lists": [                   # one entry per CC list the import filled, in display order
            {"key": str, "name": str, "cc_list_id": str,
             "members_in_store": int, "members_in_cc": int},
        ],
        "skipped": {"invalid_email": int, "unsubscribed": int, "cc_rejected": int, ...},
        "api_calls": {"store": int, "constantcontact": int},
        "duration_s": float,
    }

``skipped`` maps a SyncError reason to a count. Missing keys read as zero / empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from html import escape

from flask import current_app

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection, SyncRun
from cc_storeplugin.notify.mailer import send_mail

log = logging.getLogger(__name__)

PLATFORM_LABELS = {"magento": "Magento", "kibo": "Kibo"}
REASON_LABELS = {
    "invalid_email": "invalid email address",
    "unsubscribed": "unsubscribed",
    "cc_rejected": "rejected by Constant Contact",
    "missing_field": "missing required fields",
    "platform_error": "could not be read from the store",
    "internal": "internal error",
}
REASON_HINTS = {"unsubscribed": " (we never re-add them)"}


@dataclass
class _Context:
    run: SyncRun
    connection: StoreConnection
    to: str
    platform: str
    errors_url: str
    connection_url: str


def send_import_completed(run_id: int) -> str:
    """Email the merchant the import's figures; returns the Message-ID / .eml path, or ""."""
    ctx = _context(run_id)
    if ctx is None:
        return ""
    totals = ctx.run.totals or {}
    lists = list(totals.get("lists") or [])
    contacts = int(totals.get("contacts") or 0)
    subject = (
        f"Your {ctx.platform} import is complete: "
        f"{_plural(contacts, 'contact')} in {_plural(len(lists), 'list')}"
    )
    skipped = {r: int(n) for r, n in (totals.get("skipped") or {}).items() if int(n or 0)}
    calls = totals.get("api_calls") or {}
    facts = [
        ("Contacts", f"{contacts:,}"),
        ("Customers in the store", f"{int(totals.get('customers_in_store') or 0):,}"),
        ("Orders in the store", f"{int(totals.get('orders_in_store') or 0):,}"),
        ("Duration", human_duration(float(totals.get("duration_s") or 0))),
        (
            "API calls used",
            f"{int(calls.get('store') or 0):,} to {ctx.platform}, "
            f"{int(calls.get('constantcontact') or 0):,} to Constant Contact",
        ),
    ]
    rows = [
        (
            str(item.get("name") or item.get("key") or "?"),
            int(item.get("members_in_store") or 0),
            int(item.get("members_in_cc") or 0),
        )
        for item in lists
    ]
    notes = [_difference_note(store, cc, skipped) for _, store, cc in rows]
    intro = (
        f"Your {ctx.platform} store{_store_suffix(ctx.connection)} is now connected to Constant "
        f"Contact. We imported {_plural(contacts, 'contact')} into {_plural(len(lists), 'list')}."
    )
    text = _completed_text(intro, rows, notes, skipped, facts, ctx)
    html = _completed_html(intro, rows, notes, skipped, facts, ctx)
    return send_mail(ctx.to, subject, text, html)


def send_import_failed(run_id: int, will_retry: bool = False) -> str:
    """Email the merchant why the import stopped and what happens next; "" if no email."""
    ctx = _context(run_id)
    if ctx is None:
        return ""
    run = ctx.run
    subject = f"Your {ctx.platform} import stopped"
    reason = (run.error_message or "").strip() or "An unexpected error stopped the import."
    progress = _progress(run)
    if will_retry:
        todo = (
            "We will retry automatically; it resumes where it stopped. "
            "You do not need to do anything."
        )
        todo_link = None
    else:
        todo = "Fix the cause above if it is on your side, then click Retry on the connection page:"
        todo_link = ctx.connection_url
    lines = [
        f"The import of your {ctx.platform} store{_store_suffix(ctx.connection)} into Constant "
        "Contact stopped.",
        "",
        f"Reason: {reason}",
        "",
        f"Done so far: {progress}",
        "",
        f"What to do: {todo}",
    ]
    if todo_link:
        lines.append(todo_link)
    lines += ["", f"Records that could not be imported: {ctx.errors_url}", ""]
    todo_html = escape(todo) + (
        f' <a href="{escape(todo_link)}">{escape(todo_link)}</a>' if todo_link else ""
    )
    html = _page(
        subject,
        f"<p>{escape(lines[0])}</p>"
        f"<p><strong>Reason:</strong> {escape(reason)}</p>"
        f"<p><strong>Done so far:</strong> {escape(progress)}</p>"
        f"<p><strong>What to do:</strong> {todo_html}</p>"
        f'<p>Records that could not be imported: <a href="{escape(ctx.errors_url)}">'
        f"{escape(ctx.errors_url)}</a></p>",
    )
    return send_mail(ctx.to, subject, "\n".join(lines), html)


def human_duration(seconds: float) -> str:
    """``252`` → ``"4 min 12 s"``; ``3725`` → ``"1 h 2 min 5 s"``; under a second → ``"< 1 s"``."""
    total = round(seconds)
    if total < 1:
        return "< 1 s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "min"), (secs, "s")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n)


def _context(run_id: int) -> _Context | None:
    run = db.session.get(SyncRun, run_id)
    if run is None:
        raise LookupError(f"run_id: no sync run {run_id}")
    connection = run.connection
    if connection is None:
        raise LookupError(f"run_id: sync run {run_id} has no connection")
    email = (connection.merchant.email or "").strip()
    if not email:
        log.info(
            "no email for merchant %s; import email for run %s not sent",
            connection.merchant_id,
            run_id,
        )
        return None
    base = str(current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    connection_url = f"{base}/connections/{connection.id}"
    return _Context(
        run=run,
        connection=connection,
        to=email,
        platform=PLATFORM_LABELS.get(connection.platform, connection.platform.title()),
        errors_url=f"{connection_url}/errors",
        connection_url=connection_url,
    )


def _difference_note(in_store: int, in_cc: int, skipped: dict[str, int]) -> str:
    diff = in_store - in_cc
    if diff == 0:
        return ""
    if diff < 0:
        return (
            f"{-diff:,} more in Constant Contact than in the store "
            "(contacts already on the list before the import)"
        )
    if skipped and diff <= sum(skipped.values()):
        reasons = ", ".join(_reason(r) for r in skipped)
        return f"{diff:,} not in Constant Contact: skipped ({reasons}), see below"
    return f"{diff:,} not in Constant Contact; see the error list"


def _completed_text(intro, rows, notes, skipped, facts, ctx) -> str:
    headers = ("List", "In the store", "In Constant Contact")
    cells = [(name, f"{store:,}", f"{cc:,}") for name, store, cc in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def row(c: tuple[str, str, str], note: str = "") -> str:
        line = f"{c[0]:<{widths[0]}}  {c[1]:>{widths[1]}}  {c[2]:>{widths[2]}}"
        return f"{line}  ! {note}" if note else line

    lines = [intro, "", row(headers), "  ".join("-" * w for w in widths)]
    lines += [row(c, n) for c, n in zip(cells, notes, strict=True)]
    lines += ["", _skipped_heading(skipped)]
    lines += [f"  {_reason(r)}: {n:,}{REASON_HINTS.get(r, '')}" for r, n in skipped.items()]
    lines.append("")
    lines += [f"{label}: {value}" for label, value in facts]
    lines += ["", f"Records that could not be imported: {ctx.errors_url}", ""]
    return "\n".join(lines)


def _completed_html(intro, rows, notes, skipped, facts, ctx) -> str:
    cell = 'style="padding:4px 10px;border-bottom:1px solid #ddd;text-align:{}"'
    flags = [
        f'<strong style="color:#b45309">&#9888; {escape(note)}</strong>' if note else ""
        for note in notes
    ]
    body_rows = "".join(
        f"<tr><td {cell.format('left')}>{escape(name)}</td>"
        f"<td {cell.format('right')}>{store:,}</td><td {cell.format('right')}>{cc:,}</td>"
        f"<td {cell.format('left')}>{flag}</td></tr>"
        for (name, store, cc), flag in zip(rows, flags, strict=True)
    )
    table = (
        '<table style="border-collapse:collapse">'
        f"<tr><th {cell.format('left')}>List</th><th {cell.format('right')}>In the store</th>"
        f"<th {cell.format('right')}>In Constant Contact</th><th {cell.format('left')}></th></tr>"
        f"{body_rows}</table>"
    )
    skipped_items = "".join(
        f"<li>{escape(_reason(r))}: {n:,}{escape(REASON_HINTS.get(r, ''))}</li>"
        for r, n in skipped.items()
    )
    facts_html = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in facts)
    return _page(
        "Import complete",
        f"<p>{escape(intro)}</p>{table}"
        f"<p>{escape(_skipped_heading(skipped))}</p>"
        f"{f'<ul>{skipped_items}</ul>' if skipped_items else ''}"
        f"<ul>{facts_html}</ul>"
        f'<p>Records that could not be imported: <a href="{escape(ctx.errors_url)}">'
        f"{escape(ctx.errors_url)}</a></p>",
    )


def _reason(reason: str) -> str:
    return REASON_LABELS.get(reason, reason.replace("_", " "))


def _skipped_heading(skipped: dict[str, int]) -> str:
    total = sum(skipped.values())
    if not total:
        return "No contacts were skipped."
    return f"{_plural(total, 'contact')} skipped:"


def _progress(run: SyncRun) -> str:
    done = run.progress_done or 0
    phase = f", in the {run.phase.replace('_', ' ')} step" if run.phase else ""
    if run.progress_total:
        pct = 100 * done // run.progress_total
        return f"{done:,} of {run.progress_total:,} ({pct}%){phase}"
    return f"{done:,} done{phase}"


def _store_suffix(connection: StoreConnection) -> str:
    return f" {connection.store_base_url}" if connection.store_base_url else ""


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
        f'<body style="font-family:sans-serif;color:#222">{body}</body></html>'
    )
