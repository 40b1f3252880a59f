"""CC bulk activities with the fewest calls: JSON imports in chunks bounded by 40,000 rows and
the 4 MB body (spec B4), activity polling that checks many activities in one call, and the
contact export that maps emails to CC contact ids without one lookup per contact.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .client import TRANSIENT, CCClient
from .errors import CCError, CCUnavailable, QuotaExceeded, Throttled

MAX_ROWS = 40_000
MAX_BYTES = 3_900_000
"""CC drops whatever follows the first 4 MB of a JSON import (swagger); "MB" may mean 10^6,
so chunks stay about 100 KB under 4,000,000 bytes of serialized request body."""
MAX_LISTS = 50
NAME_MAX = 50
"""``JsonImportContact.first_name`` / ``last_name`` maxLength (swagger)."""
TERMINAL = frozenset({"completed", "failed", "cancelled", "timed_out"})
POLL_S = (1, 2, 3, 5, 8, 13)
_WORST_LIST_IDS = ["00000000-0000-0000-0000-000000000000"] * MAX_LISTS
_QUOTED_EMAIL = re.compile(r"'([^'\s]*@[^'\s]*)'")
_EMAIL_IN_TEXT = re.compile(r"[^\s'\"<>(),;:@\[\]]+@[^\s'\"<>(),;:@\[\]]+\.[A-Za-z]{2,}")


def import_row(email: str, first_name: str | None = None, last_name: str | None = None) -> dict:
    """One ``import_data`` item; names trimmed to CC's 50 characters, empty ones left out
    (CC keeps what an existing contact has for fields not sent)."""
    row = {"email": email}
    for key, value in (("first_name", first_name), ("last_name", last_name)):
        value = (value or "").strip()
        if value:
            row[key] = value[:NAME_MAX].rstrip()
    return row


def _dumps(obj: Any) -> str:
    """The JSON ``requests`` sends for ``json=obj`` (ASCII, so len() counts bytes)."""
    return json.dumps(obj, allow_nan=False)


def body_size(rows: Sequence[dict], list_ids: Sequence[str]) -> int:
    """Bytes of the serialized import request body."""
    return len(_dumps({"import_data": list(rows), "list_ids": list(list_ids)}))


def chunk_rows(
    rows: Iterable[dict],
    *,
    max_rows: int = MAX_ROWS,
    max_bytes: int = MAX_BYTES,
    list_ids: Sequence[str] | None = None,
) -> Iterator[list[dict]]:
    """Stream ``rows`` in chunks that each fit one import call: at most ``max_rows`` rows and
    ``max_bytes`` of request body, wrapper included (for 50 list ids unless ``list_ids``).
    Holds one chunk at a time."""
    wrapper = len(_dumps({"import_data": [], "list_ids": list(list_ids or _WORST_LIST_IDS)}))
    chunk: list[dict] = []
    size = wrapper
    for row in rows:
        n = len(_dumps(row))
        if wrapper + n > max_bytes:
            raise ValueError(f"one import row is {n} bytes, more than a request may carry")
        extra = n + (2 if chunk else 0)  # ", " between items
        if chunk and (len(chunk) >= max_rows or size + extra > max_bytes):
            yield chunk
            chunk, size, extra = [], wrapper, n
        chunk.append(row)
        size += extra
    if chunk:
        yield chunk


def submit_import(client: CCClient, rows: Sequence[dict], list_ids: Sequence[str]) -> str:
    """POST /activities/contacts_json_import for one chunk; returns the activity_id."""
    targets = list(dict.fromkeys(list_ids))
    if not rows or len(rows) > MAX_ROWS:
        raise ValueError(f"an import takes 1 to {MAX_ROWS} rows, not {len(rows)}")
    if not 1 <= len(targets) <= MAX_LISTS:
        raise ValueError(f"an import adds to 1 to {MAX_LISTS} lists, not {len(targets)}")
    body = {"import_data": list(rows), "list_ids": targets}
    if len(_dumps(body)) > MAX_BYTES:
        raise ValueError("the import body is over MAX_BYTES: build chunks with chunk_rows()")
    activity = client.request("POST", "/activities/contacts_json_import", json=body)
    return activity["activity_id"]


@dataclass
class ActivityResult:
    """Where a CC bulk activity stands, with the counts an import reports."""

    activity_id: str
    state: str
    items_total_count: int = 0
    items_completed_count: int = 0
    error_count: int = 0
    cannot_add_to_list_count: int = 0
    person_count: int = 0
    percent_done: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    results_href: str | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.state == "completed"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ActivityResult:
        """Parse an Activity (GET /activities/{id} or an item of GET /activities)."""
        status = body.get("status") or {}
        links = body.get("_links") or {}
        return cls(
            activity_id=body["activity_id"],
            state=str(body.get("state") or "initialized"),
            items_total_count=int(status.get("items_total_count") or 0),
            items_completed_count=int(status.get("items_completed_count") or 0),
            error_count=int(status.get("error_count") or 0),
            cannot_add_to_list_count=int(status.get("cannot_add_to_list_count") or 0),
            person_count=int(status.get("person_count") or 0),
            percent_done=int(body.get("percent_done") or 0),
            errors=parse_activity_errors(body.get("activity_errors")),
            results_href=(links.get("results") or {}).get("href"),
        )


def parse_activity_errors(items: Any) -> list[dict[str, str]]:
    """``activity_errors`` (strings, or ``{"message"}`` objects per ``ActivityErrors``) as
    ``[{"message", "email"?}]``; the email is whatever address the message names."""
    out = []
    for item in items or []:
        message = item.get("message") if isinstance(item, dict) else item
        if not message:
            continue
        entry = {"message": str(message)}
        found = _QUOTED_EMAIL.search(entry["message"]) or _EMAIL_IN_TEXT.search(entry["message"])
        if found:
            entry["email"] = found.group(found.lastindex or 0)
        out.append(entry)
    return out


class ActivityPending(TimeoutError):
    """Activities still not finished after ``timeout_s``; keep the ids and wait again later."""

    def __init__(self, activity_ids: Sequence[str], waited_s: float) -> None:
        super().__init__(f"{len(activity_ids)} CC activities unfinished after {waited_s:.0f} s")
        self.activity_ids = list(activity_ids)


def _delays(poll_s: Sequence[float]) -> Iterator[float]:
    yield from poll_s
    while True:
        yield poll_s[-1]


def get_activity(client: CCClient, activity_id: str) -> ActivityResult:
    return ActivityResult.from_json(client.request("GET", f"/activities/{activity_id}"))


def wait_for_activity(
    client: CCClient,
    activity_id: str,
    *,
    poll_s: Sequence[float] = POLL_S,
    timeout_s: float = 7200,
    sleep: Callable[[float], Any] = time.sleep,
) -> ActivityResult:
    """Poll GET /activities/{id} at growing intervals (the last one repeats) until the
    activity ends; ActivityPending once ``timeout_s`` of polling sleep has passed."""
    waited = 0.0
    for delay in _delays(poll_s):
        sleep(delay)
        waited += delay
        result = get_activity(client, activity_id)
        if result.done:
            return result
        if waited >= timeout_s:
            raise ActivityPending([activity_id], waited)
    raise AssertionError("unreachable")


def wait_for_activities(
    client: CCClient,
    activity_ids: Sequence[str],
    *,
    poll_s: Sequence[float] = POLL_S,
    timeout_s: float = 7200,
    sleep: Callable[[float], Any] = time.sleep,
) -> dict[str, ActivityResult]:
    """Wait for many activities with one call a round: GET /activities?limit=500 lists the
    newest ones with their status; ids not on that page are fetched one by one."""
    pending = list(dict.fromkeys(activity_ids))
    results: dict[str, ActivityResult] = {}
    waited = 0.0
    for delay in _delays(poll_s):
        if not pending:
            break
        sleep(delay)
        waited += delay
        page = client.request("GET", "/activities", params={"limit": 500}) or {}
        listed = {
            item["activity_id"]: item for item in page.get("activities") or [] if item.get("state")
        }
        for aid in pending:
            result = (
                ActivityResult.from_json(listed[aid])
                if aid in listed
                else get_activity(client, aid)
            )
            if result.done:
                results[aid] = result
        pending = [aid for aid in pending if aid not in results]
        if pending and waited >= timeout_s:
            raise ActivityPending(pending, waited)
    return {aid: results[aid] for aid in dict.fromkeys(activity_ids)}


def import_contacts(
    client: CCClient,
    rows: Iterable[dict],
    list_ids: Sequence[str],
    *,
    on_submitted: Callable[[str, list[dict]], Any] | None = None,
    **wait: Any,
) -> list[ActivityResult]:
    """Import ``rows`` into ``list_ids``: every chunk is submitted first (``on_submitted``
    gets each activity id and its chunk, e.g. to checkpoint), then all are awaited together."""
    ids = []
    for chunk in chunk_rows(rows, list_ids=list_ids):
        activity_id = submit_import(client, chunk, list_ids)
        ids.append(activity_id)
        if on_submitted is not None:
            on_submitted(activity_id, chunk)
    return list(wait_for_activities(client, ids, **wait).values()) if ids else []


def start_export(
    client: CCClient,
    list_ids: Sequence[str] | None = None,
    *,
    fields: Sequence[str] = ("contact_id", "email_address"),
    status: str | None = None,
) -> str:
    """POST /activities/contact_exports (all contacts, or those of up to 50 lists)."""
    body: dict[str, Any] = {"fields": list(fields)}
    if list_ids:
        body["list_ids"] = list(dict.fromkeys(list_ids))[:MAX_LISTS]
    if status:
        body["status"] = status
    return client.request("POST", "/activities/contact_exports", json=body)["activity_id"]


def iter_export(client: CCClient, result: ActivityResult) -> Iterator[dict[str, str]]:
    """The rows of a completed export's CSV as dicts keyed by field name, streamed."""
    href = result.results_href or f"/contact_exports/{result.activity_id}"
    reader = csv.reader(_csv_lines(client, href))
    header = [h.strip().lower().replace(" ", "_") for h in next(reader, [])]
    for values in reader:
        if values:
            yield dict(zip(header, values, strict=False))


def iter_contact_ids(
    client: CCClient, list_ids: Sequence[str] | None = None, **wait: Any
) -> Iterator[tuple[str, str]]:
    """``(email lower-cased, contact_id)`` of the account's contacts (or of ``list_ids``),
    streamed: 1 export call + polling + 1 download, whatever the size."""
    activity_id = start_export(client, list_ids)
    result = wait_for_activities(client, [activity_id], **wait)[activity_id]
    if not result.succeeded:
        raise CCError(0, "export.failed", f"contact export {activity_id} ended {result.state}")
    for row in iter_export(client, result):
        email = (row.get("email_address") or row.get("email") or "").strip().lower()
        if email and row.get("contact_id"):
            yield email, row["contact_id"]


def export_contact_ids(
    client: CCClient,
    list_ids: Sequence[str] | None = None,
    emails: Iterable[str] | None = None,
    **wait: Any,
) -> dict[str, str]:
    """``{email (lower-cased): contact_id}`` of the account's contacts (or of ``list_ids``),
    only for ``emails`` when given: 1 export call + polling + 1 download."""
    wanted = {e.strip().lower() for e in emails} if emails is not None else None
    return {
        email: cid
        for email, cid in iter_contact_ids(client, list_ids, **wait)
        if wanted is None or email in wanted
    }


def _csv_lines(client: CCClient, path: str) -> Iterator[str]:
    """GET a CSV through the client's session, limiter and retry rules, line by line; a
    download cut off midway is fetched again and resumes after the lines already given."""
    url = client.url_for(path)
    token = client._token()
    given = attempt = 0
    refreshed = False
    while True:
        client.limiter.acquire()
        client.calls += 1
        throttled = False
        try:
            resp = client.session.get(
                url,
                headers={"Authorization": f"Bearer {token}", "Accept": "text/csv"},
                timeout=client.timeout,
                stream=True,
            )
            if resp.status_code < 400:
                with resp:
                    resp.encoding = "utf-8"
                    seen = 0
                    for line in resp.iter_lines(decode_unicode=True):
                        if not line:
                            continue
                        seen += 1
                        if seen > given:
                            given += 1
                            yield line
                return
            body = resp.content
            resp.close()
            if resp.status_code == 401:
                token = client._unauthorized(token, refreshed)
                refreshed = True
                continue
            err = CCError.from_response(resp.status_code, body)
            if isinstance(err, QuotaExceeded):
                client.limiter.exhaust()
                raise err
            if not isinstance(err, Throttled) and resp.status_code < 500:
                raise err
            throttled = isinstance(err, Throttled)
            last = f"HTTP {resp.status_code}"
        except TRANSIENT as exc:
            last = type(exc).__name__
        if attempt >= client.max_retries:
            raise CCUnavailable(f"GET {path} failed {attempt + 1} times (last: {last})")
        client._sleep(max(client._delay(attempt), 1.0 if throttled else 0.0))
        attempt += 1
