"""CC sandbox bulk activities: JSON import lifecycle and limits, memberships, exports."""

from __future__ import annotations

import csv
import io
import json

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
    wait,
)

IMPORT = "/activities/contacts_json_import"


def test_import_lifecycle_counts_invalid_and_self_unsubscribed() -> None:
    clock = FakeClock()
    with running(clock=clock, import_delay_s=10) as srv:
        s = api(srv.url)
        lid = make_list(s, "All")
        import_rows_now = [{"email": "gone@example.com"}, {"email": "keep@example.com"}]
        clock_import = s.post(
            s.base + IMPORT, json={"import_data": import_rows_now, "list_ids": [lid]}
        )
        aid = check(clock_import, IMPORT, "post", 201)["activity_id"]
        clock.t += 11
        wait(s, aid)
        requests.post(
            srv.url + "/_sandbox/unsubscribe", json={"email": "gone@example.com"}, timeout=10
        )
        rows = [
            {"email": "new@example.com", "first_name": "New"},
            {"email": "not-an-email"},
            {"first_name": "no email"},
            {"email": "GONE@example.com"},
            {"email": "keep@example.com", "last_name": "K"},
        ]
        resp = s.post(s.base + IMPORT, json={"import_data": rows, "list_ids": [lid]})
        created = check(resp, IMPORT, "post", 201)
        assert created["state"] == "initialized"
        assert created["_links"]["self"]["href"] == f"/v3/activities/{created['activity_id']}"
        url = f"{s.base}/activities/{created['activity_id']}"
        clock.t += 6
        mid = check(s.get(url), "/activities/{activity_id}", "get", 200)
        assert mid["state"] == "processing"
        assert members(s, lid) == ["keep@example.com"]  # not applied before completion
        clock.t += 5
        done = check(s.get(url), "/activities/{activity_id}", "get", 200)
        assert done["state"] == "completed" and done["percent_done"] == 100
        st = done["status"]
        assert st["items_total_count"] == 5 and st["items_completed_count"] == 5
        assert st["error_count"] == 2 and st["correctable_count"] == 2
        assert st["cannot_add_to_list_count"] == 1 and st["person_count"] == 2
        assert any("not-an-email" in e for e in done["activity_errors"])
        assert members(s, lid) == ["keep@example.com", "new@example.com"]
        gone = s.get(s.base + "/contacts", params={"email": "gone@example.com"}).json()
        assert gone["contacts"][0]["email_address"]["permission_to_send"] == "unsubscribed"
        new = s.get(s.base + "/contacts", params={"email": "new@example.com"}).json()
        email = new["contacts"][0]["email_address"]
        assert email["permission_to_send"] == "implicit" and email["opt_in_source"] == "Account"
        listing = check(
            s.get(s.base + "/activities", params={"limit": 1}), "/activities", "get", 200
        )
        assert [a["activity_id"] for a in listing["activities"]] == [created["activity_id"]]
        assert listing["_links"]["next"]["href"].startswith("/v3/activities?cursor=")


def test_import_row_and_size_limits() -> None:
    with running() as srv:
        s = api(srv.url)
        lid = make_list(s, "Big")
        too_many = [{"email": f"r{i}@example.com"} for i in range(40_001)]
        check_error(s.post(s.base + IMPORT, json={"import_data": too_many, "list_ids": [lid]}), 400)
        done = import_rows(s, too_many[:40_000], [lid])
        assert done["status"]["items_total_count"] == 40_000
        assert done["status"]["person_count"] == 40_000
        check_error(s.post(s.base + IMPORT, json={"import_data": too_many[:3]}), 400)
        check_error(
            s.post(s.base + IMPORT, json={"import_data": too_many[:3], "list_ids": [lid] * 51}), 400
        )
        # past 4 MB the data is dropped (swagger); only the rows inside 4 MB are imported
        pad = "x" * 40
        rows = [
            {"email": f"s{i}@example.com", "first_name": pad, "last_name": pad}
            for i in range(40_000)
        ]
        body = json.dumps({"import_data": rows, "list_ids": [lid]})
        assert len(body) > 4 * 1024 * 1024
        resp = s.post(s.base + IMPORT, data=body, headers={"Content-Type": "application/json"})
        kept = check(resp, IMPORT, "post", 201)["status"]["items_total_count"]
        end, expected = len('{"import_data": ['), 0
        for row in rows:
            end += len(json.dumps(row)) + (2 if expected else 0)
            if end > 4 * 1024 * 1024:
                break
            expected += 1
        assert kept == expected and 20_000 < kept < 40_000
        done = wait(s, resp.json()["activity_id"])
        assert done["status"]["person_count"] == kept
        last = s.get(s.base + "/contacts", params={"email": f"s{kept - 1}@example.com"})
        dropped = s.get(s.base + "/contacts", params={"email": f"s{kept}@example.com"})
        assert len(last.json()["contacts"]) == 1 and dropped.json()["contacts"] == []
    with running(oversize="reject") as srv:
        s = api(srv.url)
        lid = make_list(s, "Big")
        resp = s.post(
            s.base + IMPORT,
            data=json.dumps({"import_data": rows, "list_ids": [lid]}),
            headers={"Content-Type": "application/json"},
        )
        check_error(resp, 400)


def test_add_and_remove_list_memberships() -> None:
    with running() as srv:
        s = api(srv.url)
        a, b = make_list(s, "A"), make_list(s, "B")
        import_rows(s, [{"email": f"m{i}@example.com"} for i in range(6)], [a])
        ids = {
            c["email_address"]["address"]: c["contact_id"]
            for c in s.get(s.base + "/contacts", params={"limit": 50}).json()["contacts"]
        }
        add = "/activities/add_list_memberships"
        resp = s.post(
            s.base + add,
            json={
                "source": {"contact_ids": [ids["m1@example.com"], ids["m2@example.com"]]},
                "list_ids": [b],
            },
        )
        act = wait(s, check(resp, add, "post", 201)["activity_id"])
        assert act["status"]["items_total_count"] == 2 and act["status"]["list_count"] == 1
        assert members(s, b) == ["m1@example.com", "m2@example.com"]
        resp = s.post(
            s.base + add,
            json={
                "source": {"list_ids": [a]},
                "list_ids": [b],
                "exclude": {"contact_ids": [ids["m5@example.com"]]},
            },
        )
        wait(s, resp.json()["activity_id"])
        assert len(members(s, b)) == 5
        remove = "/activities/remove_list_memberships"
        resp = s.post(
            s.base + remove,
            json={"source": {"contact_ids": [ids["m1@example.com"]]}, "list_ids": [a, b]},
        )
        wait(s, check(resp, remove, "post", 201)["activity_id"])
        assert "m1@example.com" not in members(s, a) + members(s, b)
        too_many = [f"00000000-0000-4000-8000-{i:012d}" for i in range(501)]
        check_error(
            s.post(s.base + remove, json={"source": {"contact_ids": too_many}, "list_ids": [a]}),
            400,
        )
        check_error(s.post(s.base + add, json={"source": {}, "list_ids": [a]}), 400)


def test_contact_export_csv() -> None:
    with running() as srv:
        s = api(srv.url)
        lid, other = make_list(s, "Ex"), make_list(s, "Other")
        import_rows(
            s, [{"email": f"e{i}@example.com", "first_name": f"F{i}"} for i in range(7)], [lid]
        )
        import_rows(s, [{"email": "elsewhere@example.com"}], [other])
        requests.post(
            srv.url + "/_sandbox/unsubscribe", json={"email": "e4@example.com"}, timeout=10
        )
        resp = s.post(
            s.base + "/activities/contact_exports",
            json={"list_ids": [lid], "fields": ["contact_id", "email_address", "first_name"]},
        )
        act = wait(s, check(resp, "/activities/contact_exports", "post", 201)["activity_id"])
        assert act["status"]["items_total_count"] == 6
        href = act["_links"]["results"]["href"]
        assert href == f"/v3/contact_exports/{act['activity_id']}"
        got = s.get(srv.url + href)
        assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(got.text)))
        assert [r["email_address"] for r in rows] == [
            f"e{i}@example.com" for i in range(7) if i != 4
        ]
        assert rows[0]["first_name"] == "F0" and len(rows[0]["contact_id"]) == 36
        resp = s.post(
            s.base + "/activities/contact_exports",
            json={"status": "unsubscribed", "fields": ["email_address", "email_optout_source"]},
        )
        act = wait(s, resp.json()["activity_id"])
        text = s.get(srv.url + act["_links"]["results"]["href"]).text
        assert text.splitlines() == ["email_address,email_optout_source", "e4@example.com,Contact"]
        check_error(s.post(s.base + "/activities/contact_exports", json={"fields": ["nope"]}), 400)
        check_error(s.get(s.base + "/contact_exports/00000000-0000-4000-8000-000000000000"), 404)


def test_account_opt_out_can_be_re_added_by_import() -> None:
    with running() as srv:
        s = api(srv.url)
        lid = make_list(s, "L")
        import_rows(s, [{"email": "acct@example.com"}], [lid])
        [c] = s.get(s.base + "/contacts").json()["contacts"]
        put = {
            "email_address": {"address": "acct@example.com", "permission_to_send": "unsubscribed"},
            "update_source": "Account",
        }
        body = check(
            s.put(f"{s.base}/contacts/{c['contact_id']}", json=put),
            "/contacts/{contact_id}",
            "put",
            200,
        )
        assert body["email_address"]["opt_out_source"] == "Account"
        assert members(s, lid) == []
        done = import_rows(s, [{"email": "acct@example.com"}], [lid])
        assert done["status"]["cannot_add_to_list_count"] == 0
        assert members(s, lid) == ["acct@example.com"]
        again = s.get(f"{s.base}/contacts/{c['contact_id']}").json()
        assert again["email_address"]["permission_to_send"] == "implicit"
