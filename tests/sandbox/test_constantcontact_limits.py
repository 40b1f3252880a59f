"""CC sandbox rate limits (throttled vs quota_exceeded), injected faults, reports, account."""

from __future__ import annotations

import time

import requests

from .openapi import schema_validator
from .test_constantcontact_support import (
    SPEC,
    FakeClock,
    api,
    check,
    check_error,
    import_rows,
    make_list,
    running,
)

RATE_HEADERS = ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "ratelimit-limit")


def test_per_second_throttle_body_and_no_headers() -> None:
    with running(rate_per_s=4) as srv:
        s = api(srv.url)
        statuses = [s.get(s.base + "/contact_lists") for _ in range(6)]
        throttled = [r for r in statuses if r.status_code == 429]
        assert statuses[0].status_code == 200 and throttled
        assert throttled[0].json() == {
            "error_key": "throttled",
            "error_message": "Too Many Requests",
        }
        assert not any(h in throttled[0].headers for h in RATE_HEADERS)
        time.sleep(1.05)
        assert s.get(s.base + "/contact_lists").status_code == 200


def test_daily_quota_then_reset_at_midnight_utc() -> None:
    clock = FakeClock(1_793_527_200.0)  # 2026-11-01T10:00:00Z
    with running(daily_quota=5, clock=clock) as srv:
        s = api(srv.url)
        for _ in range(5):
            assert s.get(s.base + "/contact_lists").status_code == 200
        resp = s.get(s.base + "/contact_lists")
        assert resp.status_code == 429
        assert resp.json() == {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}
        schema_validator(SPEC, "AuthorizationErrorSchema")(resp.json())
        assert not any(h in resp.headers for h in RATE_HEADERS)
        state = requests.get(srv.url + "/_sandbox/state", timeout=10).json()
        assert state["quota_used_today"]["sandbox-client"] == 5
        clock.t += 14 * 3600 + 1  # just past 00:00 UTC
        assert s.get(s.base + "/contact_lists").status_code == 200


def test_quota_is_per_app_key_not_per_token() -> None:
    with running(daily_quota=3) as srv:
        first, second = api(srv.url), api(srv.url)
        assert first.get(first.base + "/contact_lists").ok
        assert second.get(second.base + "/contact_lists").ok
        assert first.get(first.base + "/contact_lists").ok
        assert second.get(second.base + "/contact_lists").status_code == 429


def test_injected_faults_use_cc_bodies() -> None:
    with running() as srv:
        s = api(srv.url)
        requests.post(srv.url + "/_sandbox/faults", json={"p429": 1.0}, timeout=10)
        resp = s.get(s.base + "/contacts")
        assert resp.status_code == 429 and resp.json()["error_key"] == "throttled"
        requests.post(srv.url + "/_sandbox/faults", json={"p429": 0.0, "p5xx": 1.0}, timeout=10)
        resp = s.get(s.base + "/contacts")
        assert resp.status_code >= 500
        check_error(resp, resp.status_code)
        stats = requests.get(srv.url + "/_sandbox/stats", timeout=10).json()
        assert stats["calls"]["GET /v3/contacts"] == 2
        assert stats["calls"]["POST /oauth2/default/v1/token"] == 1


def test_campaigns_summaries_and_sends_report() -> None:
    with running() as srv:
        s = api(srv.url)
        lid = make_list(s, "News")
        import_rows(s, [{"email": f"r{i}@example.com", "first_name": "R"} for i in range(7)], [lid])
        sent = requests.post(
            srv.url + "/_sandbox/send_campaign",
            json={"name": "Black Friday", "list_ids": [lid]},
            timeout=10,
        ).json()
        assert sent["sends"] == 7
        emails = check(s.get(s.base + "/emails", params={"limit": 50}), "/emails", "get", 200)
        assert "Black Friday" in [c["name"] for c in emails["campaigns"]]
        one = check(
            s.get(f"{s.base}/emails/{sent['campaign_id']}"), "/emails/{campaign_id}", "get", 200
        )
        assert one["campaign_activities"] == [
            {"campaign_activity_id": sent["campaign_activity_id"], "role": "primary_email"}
        ]
        path = "/reports/summary_reports/email_campaign_summaries"
        summ = check(s.get(s.base + path), path, "get", 200)
        mine = [
            x
            for x in summ["bulk_email_campaign_summaries"]
            if x["campaign_id"] == sent["campaign_id"]
        ]
        assert mine[0]["unique_counts"]["sends"] == 7
        sends_path = f"/reports/email_reports/{sent['campaign_activity_id']}/tracking/sends"
        resp, got = s.get(s.base + sends_path, params={"limit": 5}), []
        while True:
            body = check(resp, sends_path, "get", 200)
            got += [t["email_address"] for t in body["tracking_activities"]]
            assert all(
                t["tracking_activity_type"] == "em_sends" for t in body["tracking_activities"]
            )
            nxt = body.get("_links", {}).get("next", {}).get("href")
            if not nxt:
                break
            resp = s.get(srv.url + nxt)
        assert sorted(got) == sorted(f"r{i}@example.com" for i in range(7))


def test_account_summary_and_verified_emails() -> None:
    with running() as srv:
        s = api(srv.url)
        summary = check(s.get(s.base + "/account/summary"), "/account/summary", "get", 200)
        assert summary["organization_name"] and summary["encoded_account_id"]
        emails = check(s.get(s.base + "/account/emails"), "/account/emails", "get", 200)
        assert {e["confirm_status"] for e in emails} == {"CONFIRMED", "UNCONFIRMED"}
        confirmed = s.get(s.base + "/account/emails", params={"confirm_status": "CONFIRMED"})
        assert all(e["confirm_status"] == "CONFIRMED" for e in confirmed.json())
        assert len(confirmed.json()) == 2
        check_error(s.get(s.base + "/account/emails", params={"confirm_status": "maybe"}), 400)


def test_throttled_requests_do_not_use_quota() -> None:
    with running(rate_per_s=2, daily_quota=1000) as srv:
        s = api(srv.url)
        codes = [s.get(s.base + "/contact_lists").status_code for _ in range(5)]
        assert codes.count(200) == 2 and codes.count(429) == 3
        used = requests.get(srv.url + "/_sandbox/state", timeout=10).json()["quota_used_today"]
        assert used["sandbox-client"] == 2
