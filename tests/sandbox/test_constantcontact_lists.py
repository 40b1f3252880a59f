"""CC sandbox /v3/contact_lists: exact-name lookup, duplicates, the cap, counts, delete."""

from __future__ import annotations

import requests

from .test_constantcontact_support import (
    api,
    check,
    check_error,
    import_rows,
    make_list,
    running,
)


def test_exact_name_lookup_duplicate_and_counts() -> None:
    with running() as srv:
        s = api(srv.url)
        lid = make_list(s, "Magento – All Customers")
        make_list(s, "Magento – All Customers 2")
        check_error(
            s.post(s.base + "/contact_lists", json={"name": "Magento – All Customers"}),
            409,
            "contacts.api.conflict",
        )
        check_error(s.post(s.base + "/contact_lists", json={"favorite": True}), 400)
        import_rows(s, [{"email": "a@example.com"}, {"email": "b@example.com"}], [lid])
        requests.post(
            srv.url + "/_sandbox/unsubscribe", json={"email": "a@example.com"}, timeout=10
        )
        import_rows(s, [{"email": "c@example.com"}], [lid])
        params = {
            "name": "Magento – All Customers",
            "include_membership_count": "all",
            "include_count": "true",
        }
        body = check(s.get(s.base + "/contact_lists", params=params), "/contact_lists", "get", 200)
        assert [x["list_id"] for x in body["lists"]] == [lid] and body["lists_count"] == 1
        assert body["lists"][0]["membership_count"] == 2
        got = check(s.get(f"{s.base}/contact_lists/{lid}"), "/contact_lists/{list_id}", "get", 200)
        assert got["name"] == "Magento – All Customers" and "membership_count" not in got
        put = s.put(f"{s.base}/contact_lists/{lid}", json={"name": "Renamed", "favorite": True})
        assert check(put, "/contact_lists/{list_id}", "put", 200)["favorite"] is True
        resp = s.delete(f"{s.base}/contact_lists/{lid}")
        assert check(resp, "/contact_lists/{list_id}", "delete", 202)["activity_id"]
        check_error(s.get(f"{s.base}/contact_lists/{lid}"), 404)
        assert s.get(s.base + "/contact_lists", params={"name": "Renamed"}).json()["lists"] == []
        # the name is free again once the list is deleted
        make_list(s, "Renamed")


def test_list_cap_and_paging() -> None:
    with running(max_lists=12) as srv:
        s = api(srv.url)
        ids = [make_list(s, f"L{i:02d}") for i in range(12)]
        check_error(s.post(s.base + "/contact_lists", json={"name": "one too many"}), 400)
        seen, resp = [], s.get(s.base + "/contact_lists", params={"limit": 5})
        while True:
            body = check(resp, "/contact_lists", "get", 200)
            seen += [x["list_id"] for x in body["lists"]]
            nxt = body.get("_links", {}).get("next", {}).get("href")
            if not nxt:
                break
            resp = s.get(srv.url + nxt)
        assert seen == ids


def test_default_cap_is_1000_lists() -> None:
    with running() as srv:
        s = api(srv.url)
        sb = srv.app.extensions["cc_sandbox"]
        acc = sb.settings.accounts[0]["encoded_account_id"]
        with sb.store.tx() as conn:
            conn.executemany(
                "INSERT INTO lists (account, list_id, name, created_at, updated_at)"
                " VALUES (?,?,?,0,0)",
                [(acc, sb.store.new_id(), f"bulk {i}") for i in range(999)],
            )
        make_list(s, "number 1000")
        check_error(s.post(s.base + "/contact_lists", json={"name": "number 1001"}), 400)
