"""CC sandbox /v3/contacts: CRUD, 409, sign_up_form, filters and cursor paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from .test_constantcontact_support import (
    FakeClock,
    api,
    check,
    check_error,
    import_rows,
    make_list,
    members,
    running,
)


@pytest.fixture
def env() -> Iterator[tuple[requests.Session, FakeClock]]:
    clock = FakeClock()
    with running(clock=clock) as srv:
        yield api(srv.url), clock


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_create_get_update_delete(env) -> None:
    s, _clock = env
    lid = make_list(s, "Customers")
    body = {
        "email_address": {"address": "Ann@Example.com", "permission_to_send": "implicit"},
        "first_name": "Ann",
        "create_source": "Account",
        "list_memberships": [lid],
    }
    created = check(s.post(s.base + "/contacts", json=body), "/contacts", "post", 201)
    cid = created["contact_id"]
    assert created["email_address"]["address"] == "Ann@Example.com"
    assert created["email_address"]["opt_in_source"] == "Account"
    assert created["create_source"] == "Account" and created["list_memberships"] == [lid]
    dup = dict(body, email_address={"address": "ann@example.com"})
    check_error(s.post(s.base + "/contacts", json=dup), 409, "contacts.api.conflict")
    check_error(s.post(s.base + "/contacts", json={"first_name": "x"}), 400)
    check_error(s.post(s.base + "/contacts", data="x", headers={"Content-Type": "text/plain"}), 415)
    got = check(
        s.get(f"{s.base}/contacts/{cid}", params={"include": "list_memberships"}),
        "/contacts/{contact_id}",
        "get",
        200,
    )
    assert got["list_memberships"] == [lid] and got["first_name"] == "Ann"
    put = {
        "email_address": {"address": "ann@example.com"},
        "last_name": "Lee",
        "update_source": "Account",
    }
    updated = check(
        s.put(f"{s.base}/contacts/{cid}", json=put), "/contacts/{contact_id}", "put", 200
    )
    assert "first_name" not in updated and updated["last_name"] == "Lee"  # full replace
    assert members(s, lid) == ["ann@example.com"]  # omitted list_memberships left alone
    assert s.delete(f"{s.base}/contacts/{cid}").status_code == 204
    listed = check(s.get(s.base + "/contacts"), "/contacts", "get", 200)
    assert listed["contacts"] == []
    deleted = check(
        s.get(s.base + "/contacts", params={"status": "deleted"}), "/contacts", "get", 200
    )
    assert [c["contact_id"] for c in deleted["contacts"]] == [cid]
    assert deleted["contacts"][0]["deleted_at"]
    check_error(s.get(s.base + "/contacts/00000000-0000-4000-8000-000000000000"), 404)


def test_sign_up_form_creates_then_updates_and_appends_lists(env) -> None:
    s, _clock = env
    l1, l2 = make_list(s, "One"), make_list(s, "Two")
    path = "/contacts/sign_up_form"
    resp = s.post(
        s.base + path,
        json={"email_address": "bo@example.com", "first_name": "Bo", "list_memberships": [l1]},
    )
    first = check(resp, path, "post", 201)
    assert first["action"] == "created"
    resp = s.post(
        s.base + path,
        json={"email_address": "BO@example.com", "last_name": "Ek", "list_memberships": [l2]},
    )
    second = check(resp, path, "post", 200)
    assert second == {"contact_id": first["contact_id"], "action": "updated"}
    got = s.get(
        f"{s.base}/contacts/{first['contact_id']}", params={"include": "list_memberships"}
    ).json()
    assert sorted(got["list_memberships"]) == sorted([l1, l2])
    assert got["first_name"] == "Bo" and got["last_name"] == "Ek"  # partial update
    assert got["email_address"]["permission_to_send"] == "explicit"
    assert got["email_address"]["opt_in_source"] == "Contact"
    check_error(s.post(s.base + path, json={"email_address": "x@example.com"}), 400)


def test_unsubscribe_control_and_optout_after_filter(env) -> None:
    s, clock = env
    lid = make_list(s, "All")
    import_rows(s, [{"email": f"u{i}@example.com"} for i in range(5)], [lid])
    t_before = clock.t
    clock.t += 3600
    resp = requests.post(
        s.root + "/_sandbox/unsubscribe", json={"email": "U3@example.com"}, timeout=10
    )
    assert resp.status_code == 200
    assert "u3@example.com" not in members(s, lid)
    params = {"status": "unsubscribed", "optout_after": _iso(t_before), "limit": 500}
    body = check(s.get(s.base + "/contacts", params=params), "/contacts", "get", 200)
    [c] = body["contacts"]
    email = c["email_address"]
    assert email["address"] == "u3@example.com"
    assert email["permission_to_send"] == "unsubscribed" and email["opt_out_source"] == "Contact"
    assert email["opt_out_date"] == _iso(clock.t) and c["updated_at"] == _iso(clock.t)
    later = {"status": "unsubscribed", "optout_after": _iso(clock.t + 1)}
    assert s.get(s.base + "/contacts", params=later).json()["contacts"] == []
    # the account cannot opt a self-unsubscribed contact back in
    put = {
        "email_address": {"address": "u3@example.com", "permission_to_send": "implicit"},
        "update_source": "Account",
    }
    check_error(s.put(f"{s.base}/contacts/{c['contact_id']}", json=put), 400)


def test_cursor_paging_with_updated_after_and_count(env) -> None:
    s, clock = env
    lid = make_list(s, "All")
    import_rows(s, [{"email": f"p{i:03d}@example.com"} for i in range(120)], [lid])
    mark = clock.t
    clock.t += 60
    import_rows(
        s, [{"email": f"p{i:03d}@example.com", "first_name": "N"} for i in range(0, 120, 3)], [lid]
    )
    params = {
        "updated_after": _iso(mark),
        "limit": 7,
        "include_count": "true",
        "include": "list_memberships",
    }
    resp = s.get(s.base + "/contacts", params=params)
    seen: list[str] = []
    while True:
        body = check(resp, "/contacts", "get", 200)
        assert body["contacts_count"] == 40
        seen += [c["email_address"]["address"] for c in body["contacts"]]
        assert all(c["list_memberships"] == [lid] for c in body["contacts"])
        nxt = body.get("_links", {}).get("next", {}).get("href")
        if not nxt:
            break
        assert nxt.startswith("/v3/contacts?cursor=")
        resp = s.get(s.root + nxt)
    assert seen == [f"p{i:03d}@example.com" for i in range(0, 120, 3)]
    check_error(s.get(s.base + "/contacts", params={"limit": 501}), 400)
    check_error(s.get(s.base + "/contacts", params={"status": "bogus"}), 400)
    one = s.get(s.base + "/contacts", params={"email": "P007@example.com"}).json()
    assert [c["email_address"]["address"] for c in one["contacts"]] == ["p007@example.com"]
    by_list = s.get(s.base + "/contacts", params={"lists": lid, "include_count": "true"}).json()
    assert by_list["contacts_count"] == 120
