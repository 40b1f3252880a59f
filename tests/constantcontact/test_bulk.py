"""Bulk imports, activity polling and exports against the CC sandbox over loopback."""

from __future__ import annotations

import json

import pytest
import requests

from cc_storeplugin.constantcontact import bulk, lists
from cc_storeplugin.constantcontact.bulk import MAX_BYTES, MAX_ROWS, body_size, chunk_rows

from .test_lists import NO_WAIT, list_emails, signed_in

LIST_IDS = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(50)]


@pytest.fixture
def cc(sqlite_url):
    with signed_in(sqlite_url, rate_per_s=None) as env:
        yield env


def rows(n: int, name_len: int = 0, start: int = 0):
    for i in range(start, start + n):
        name = ("N" * name_len) or None
        yield bulk.import_row(f"c{i}@example.com", name, name)


def test_100001_rows_make_three_chunks_of_at_most_40000_while_streaming() -> None:
    pulled = [0]

    def source():
        for row in rows(100_001):
            pulled[0] += 1
            yield row

    sizes = []
    for chunk in chunk_rows(source(), list_ids=LIST_IDS[:5]):
        assert pulled[0] <= sum(sizes) + len(chunk) + 1  # one chunk held, no read-ahead
        assert body_size(chunk, LIST_IDS[:5]) <= MAX_BYTES
        sizes.append(len(chunk))
    assert sizes == [40_000, 40_000, 20_001]


def test_long_names_make_more_chunks_bounded_by_bytes() -> None:
    chunks = list(chunk_rows(rows(100_001, name_len=60)))
    assert all(len(c) <= MAX_ROWS for c in chunks)
    assert all(body_size(c, LIST_IDS) <= MAX_BYTES for c in chunks)  # worst case: 50 lists
    assert len(chunks) > 3 and sum(map(len, chunks)) == 100_001
    # each chunk is full: one more row would have crossed the byte bound
    first, second = chunks[0], chunks[1]
    assert body_size([*first, second[0]], LIST_IDS) > MAX_BYTES


def test_a_small_byte_bound_is_met_exactly() -> None:
    small = [bulk.import_row(f"p{i:03d}@example.com") for i in range(100)]
    wrapper = len(json.dumps({"import_data": [], "list_ids": ["x"]}))
    limit = wrapper + 3 * len(json.dumps(small[0])) + 4  # three rows and two separators
    chunks = list(chunk_rows(small, max_bytes=limit, list_ids=["x"]))
    assert all(len(c) == 3 for c in chunks[:-1]) and len(chunks[-1]) == 1
    assert all(body_size(c, ["x"]) <= limit for c in chunks)
    with pytest.raises(ValueError):
        list(chunk_rows(small, max_bytes=wrapper + 5, list_ids=["x"]))


def test_import_row_truncates_names_to_ccs_limits_and_omits_blanks() -> None:
    row = bulk.import_row("a@example.com", "F" * 80, "  ")
    assert row == {"email": "a@example.com", "first_name": "F" * 50}
    assert bulk.import_row("b@example.com", " Ann ", "Lee") == {
        "email": "b@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
    }


def test_45000_contacts_into_two_lists_with_exact_counts(cc) -> None:
    url, client, _ = cc
    all_id = lists.find_or_create_list(client, "Magento – All Customers")
    repeat_id = lists.find_or_create_list(client, "Magento – Repeat Customers")
    data = list(rows(45_000, name_len=8))
    bad = ["bad-address-1", "also bad@example.com", "x@y"]
    data[10:10] = [{"email": e} for e in bad]
    submitted = []
    results = bulk.import_contacts(
        client, data, [all_id, repeat_id], on_submitted=lambda a, c: submitted.append((a, len(c)))
    )
    assert [n for _a, n in submitted] == [40_000, 5_003]
    assert [r.activity_id for r in results] == [a for a, _n in submitted]
    assert all(r.state == "completed" and r.percent_done == 100 for r in results)
    assert sum(r.items_total_count for r in results) == 45_003
    assert sum(r.error_count for r in results) == 3
    assert sum(r.person_count for r in results) == 45_000
    expected = {f"c{i}@example.com" for i in range(45_000)}
    assert list_emails(url, all_id) == expected
    assert list_emails(url, repeat_id) == expected
    assert lists.list_member_counts(client, [all_id, repeat_id]) == {
        all_id: 45_000,
        repeat_id: 45_000,
    }
    flagged = [e for r in results for e in r.errors]
    assert len(flagged) == 3 and all(e["message"] for e in flagged)


def test_a_self_unsubscribed_contact_is_not_re_added(cc) -> None:
    url, client, _ = cc
    first = lists.find_or_create_list(client, "All")
    second = lists.find_or_create_list(client, "Recent")
    emails = ["ann@example.com", "bob@example.com", "cy@example.com"]
    [done] = bulk.import_contacts(client, [bulk.import_row(e) for e in emails], [first])
    assert done.cannot_add_to_list_count == 0
    resp = requests.post(
        url + "/_sandbox/unsubscribe", json={"email": "bob@example.com"}, timeout=10
    )
    assert resp.ok

    [again] = bulk.import_contacts(
        client, [bulk.import_row(e, "Name") for e in emails], [first, second]
    )
    assert again.succeeded and again.cannot_add_to_list_count == 1
    assert list_emails(url, first) == list_emails(url, second) == {emails[0], emails[2]}
    assert any(e.get("email") == "bob@example.com" for e in again.errors)
    contact = client.request("GET", "/contacts", params={"email": "bob@example.com"})
    assert contact["contacts"][0]["email_address"]["permission_to_send"] == "unsubscribed"


def test_100000_contacts_into_five_lists_take_a_handful_of_calls(cc) -> None:
    url, client, _ = cc
    names = ["All", "First-time", "Repeat", "Recent", "Lapsed"]
    list_ids = [lists.find_or_create_list(client, f"Magento – {n}") for n in names]
    results = bulk.import_contacts(client, rows(100_000, name_len=6), list_ids)
    assert all(r.succeeded for r in results) and len(results) == 3
    # 5 lookups + 5 creations + 3 imports + 1 status poll for all three activities
    assert client.calls == 14, client.calls
    for list_id in list_ids:
        assert len(list_emails(url, list_id)) == 100_000


def test_full_chunks_of_the_longest_rows_are_never_cut_by_the_4_mb_limit(sqlite_url) -> None:
    with signed_in(sqlite_url, rate_per_s=None, oversize="reject") as (url, client, _):
        list_id = lists.find_or_create_list(client, "Wide")
        wide = [
            bulk.import_row(f"{i:06d}".rjust(38, "w") + "@example.com", "F" * 50, "L" * 50)
            for i in range(30_000)
        ]
        assert len(wide[0]["email"]) == 50
        chunks = list(chunk_rows(wide, list_ids=[list_id]))
        assert len(chunks) == 2 and body_size(chunks[0], [list_id]) > MAX_BYTES - 500
        results = bulk.import_contacts(client, wide, [list_id])
        assert [r.items_total_count for r in results] == [len(c) for c in chunks]
        assert all(r.succeeded and r.error_count == 0 for r in results)
        assert len(list_emails(url, list_id)) == 30_000


def test_wait_polls_at_growing_intervals_until_done(sqlite_url) -> None:
    with signed_in(sqlite_url, rate_per_s=None, import_delay_s=30) as (url, client, _):
        list_id = lists.find_or_create_list(client, "Slow")
        activity_id = bulk.submit_import(client, list(rows(10)), [list_id])
        slept: list[float] = []

        def sleep(s: float) -> None:  # sandbox time moves, no real waiting
            slept.append(s)
            requests.post(url + "/_sandbox/clock", json={"advance_s": s}, timeout=10)

        before = client.calls
        with pytest.raises(bulk.ActivityPending) as info:
            bulk.wait_for_activity(client, activity_id, timeout_s=5, sleep=sleep)
        assert info.value.activity_ids == [activity_id] and slept == [1, 2, 3]
        result = bulk.wait_for_activity(client, activity_id, sleep=sleep)
        assert result.state == "completed" and result.items_total_count == 10
        # 6 s passed, then 1+2+3+5+8+13 more: done once 30 s are behind it
        assert slept[3:] == [1, 2, 3, 5, 8, 13] and client.calls == before + 3 + 6


def test_injected_429s_and_5xx_lose_nothing(cc) -> None:
    url, client, _ = cc
    client.backoff_s = 0.05
    faults = {"p429": 0.15, "p5xx": 0.15, "pdrop": 0.05, "seed": 7}
    assert requests.post(url + "/_sandbox/faults", json=faults, timeout=10).ok
    list_ids = [lists.find_or_create_list(client, n) for n in ("All", "Recent")]
    ids = []
    for chunk in chunk_rows(rows(6_000), max_rows=1_000):
        ids.append(bulk.submit_import(client, chunk, list_ids))
    results = bulk.wait_for_activities(client, ids, poll_s=(0.2,))
    assert all(r.succeeded for r in results.values())
    requests.post(url + "/_sandbox/faults", json={"p429": 0, "p5xx": 0, "pdrop": 0}, timeout=10)
    expected = {f"c{i}@example.com" for i in range(6_000)}
    assert list_emails(url, list_ids[0]) == list_emails(url, list_ids[1]) == expected
    state = requests.get(url + "/_sandbox/state", timeout=10).json()
    assert state["contacts"]["total"] == 6_000  # no duplicates from retried imports
    assert [item["name"] for item in state["lists"]] == ["All", "Recent"]
    log = requests.get(url + "/_sandbox/log?limit=1000", timeout=10).json()["entries"]
    assert any(e["status"] == 429 for e in log) and any(e["status"] >= 500 for e in log)

    faults = {"p429": 0.2, "p5xx": 0.3, "seed": 3}
    assert requests.post(url + "/_sandbox/faults", json=faults, timeout=10).ok
    mapping = bulk.export_contact_ids(client, list_ids[:1], poll_s=(0.2,))
    assert set(mapping) == expected and len(set(mapping.values())) == 6_000


def test_export_maps_emails_to_contact_ids(cc) -> None:
    _, client, _ = cc
    list_id = lists.find_or_create_list(client, "All")
    other = lists.find_or_create_list(client, "Other")
    bulk.import_contacts(client, rows(1_200), [list_id])
    bulk.import_contacts(client, rows(5, start=5_000), [other])
    before = client.calls
    mapping = bulk.export_contact_ids(client, [list_id], **NO_WAIT)
    assert client.calls == before + 3  # export, one status poll, the CSV
    assert set(mapping) == {f"c{i}@example.com" for i in range(1_200)}
    sample = client.request("GET", "/contacts", params={"email": "c77@example.com"})
    assert mapping["c77@example.com"] == sample["contacts"][0]["contact_id"]
    some = bulk.export_contact_ids(
        client, emails=["C3@example.com", "c5001@example.com", "nobody@example.com"], **NO_WAIT
    )
    assert set(some) == {"c3@example.com", "c5001@example.com"}


def test_activity_errors_are_parsed_from_strings_and_objects() -> None:
    body = {
        "activity_id": "a1",
        "state": "completed",
        "percent_done": 100,
        "activity_errors": [
            "Row 3: invalid email address 'bad@@x.com'",
            {"message": "ann@example.com: contact has unsubscribed"},
            "Something else went wrong",
        ],
        "status": {"items_total_count": 5, "error_count": 1},
    }
    result = bulk.ActivityResult.from_json(body)
    assert result.cannot_add_to_list_count == 0 and result.error_count == 1 and result.done
    assert result.errors == [
        {"message": "Row 3: invalid email address 'bad@@x.com'", "email": "bad@@x.com"},
        {"message": "ann@example.com: contact has unsubscribed", "email": "ann@example.com"},
        {"message": "Something else went wrong"},
    ]
