"""CC contact lists: find or create by exact name, member counts, and bulk membership changes.

``GET /contact_lists?name=`` takes "the full name of the list" (swagger ``getLists``), so a
lookup is one call; names are still compared exactly here in case CC matches loosely.
Membership changes are bulk activities of at most 500 contact ids each (spec B4).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from .client import CCClient
from .errors import CCError

PAGE_LIMIT = 1000
"""The swagger's maximum page size for GET /contact_lists."""
MAX_IDS_PER_ACTIVITY = 500
MAX_LISTS_PER_ACTIVITY = 50


def find_list(client: CCClient, name: str) -> str | None:
    """The list_id of the active list named exactly ``name``, or None (one call)."""
    page = client.request(
        "GET", "/contact_lists", params={"name": name, "status": "active", "limit": PAGE_LIMIT}
    )
    for item in (page or {}).get("lists") or []:
        if item.get("name") == name and not item.get("deleted_at"):
            return item["list_id"]
    return None


def _scan_for_list(client: CCClient, name: str) -> str | None:
    """Page through every active list comparing names exactly (the 409 fallback)."""
    for item in client.paginate(
        "/contact_lists", {"status": "active", "limit": PAGE_LIMIT}, "lists"
    ):
        if item.get("name") == name and not item.get("deleted_at"):
            return item["list_id"]
    return None


def find_or_create_list(
    client: CCClient,
    name: str,
    description: str | None = None,
    *,
    sleep: Any = time.sleep,
) -> str:
    """The list_id of the list named ``name``, creating it if there is none.

    Two workers racing end with one list: the loser gets 409 and looks the winner's list up.
    A POST retried after a lost response also answers 409 and is resolved the same way.
    """
    found = find_list(client, name)
    if found:
        return found
    body: dict[str, Any] = {"name": name, "favorite": False}
    if description:
        body["description"] = description
    try:
        created = client.request("POST", "/contact_lists", json=body)
        return created["list_id"]
    except CCError as exc:
        if exc.status != 409:
            raise
        conflict = exc
    for delay in (0, 0.5, 1.0):  # the winner's list may take a moment to be listed
        if delay:
            sleep(delay)
        found = find_list(client, name) or _scan_for_list(client, name)
        if found:
            return found
    raise conflict


def list_member_counts(client: CCClient, list_ids: Sequence[str]) -> dict[str, int]:
    """``{list_id: membership_count}`` (all contacts, as CC counts them) for ``list_ids``.

    One call for a single list; otherwise one page of up to 1,000 lists (an account holds at
    most 1,000), so usually one call too. Lists CC no longer has are left out.
    """
    wanted = list(dict.fromkeys(list_ids))
    if not wanted:
        return {}
    if len(wanted) == 1:
        try:
            item = client.request(
                "GET",
                f"/contact_lists/{wanted[0]}",
                params={"include_membership_count": "all"},
            )
        except CCError as exc:
            if exc.status == 404:
                return {}
            raise
        return {item["list_id"]: int(item.get("membership_count") or 0)}
    counts: dict[str, int] = {}
    pending = set(wanted)
    for item in client.paginate(
        "/contact_lists",
        {"include_membership_count": "all", "status": "active", "limit": PAGE_LIMIT},
        "lists",
    ):
        if item.get("list_id") in pending:
            counts[item["list_id"]] = int(item.get("membership_count") or 0)
            pending.discard(item["list_id"])
            if not pending:
                break
    return counts


def _batches(ids: Sequence[str], size: int) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(str(i) for i in ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def _membership_activity(
    client: CCClient, kind: str, list_ids: Sequence[str] | str, contact_ids: Sequence[str]
) -> list[str]:
    targets = [list_ids] if isinstance(list_ids, str) else list(dict.fromkeys(list_ids))
    if not 1 <= len(targets) <= MAX_LISTS_PER_ACTIVITY:
        raise ValueError(f"a membership activity takes 1 to {MAX_LISTS_PER_ACTIVITY} lists")
    activity_ids = []
    for batch in _batches(contact_ids, MAX_IDS_PER_ACTIVITY):
        body = {"source": {"contact_ids": batch}, "list_ids": targets}
        activity = client.request("POST", f"/activities/{kind}", json=body)
        activity_ids.append(activity["activity_id"])
    return activity_ids


def remove_members(
    client: CCClient, list_id: str | Sequence[str], contact_ids: Sequence[str]
) -> list[str]:
    """Remove contacts from a list (or up to 50 lists at once), 500 ids a call.

    Returns the activity ids to wait for (``bulk.wait_for_activities``).
    """
    return _membership_activity(client, "remove_list_memberships", list_id, contact_ids)


def add_members(
    client: CCClient, list_ids: str | Sequence[str], contact_ids: Sequence[str]
) -> list[str]:
    """Add existing contacts (by CC id) to up to 50 lists, 500 ids a call; activity ids.

    Callers leave out contacts who unsubscribed (invariant 1); CC skips them as well.
    """
    return _membership_activity(client, "add_list_memberships", list_ids, contact_ids)
