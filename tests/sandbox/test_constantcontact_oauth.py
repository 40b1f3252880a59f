"""CC sandbox OAuth2: authorization code + PKCE, single-use codes, rotating refresh tokens."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import requests

from .openapi import schema_validator
from .test_constantcontact_support import (
    AUTH,
    REDIRECT,
    SPEC,
    FakeClock,
    get_code,
    login,
    pkce_pair,
    running,
    token_request,
)


def _claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_code_flow_with_pkce_returns_okta_token_json() -> None:
    with running() as srv:
        tokens = login(srv.url)
        assert tokens["token_type"] == "Bearer"
        assert tokens["expires_in"] == 86400
        assert set(tokens["scope"].split()) >= {"contact_data", "offline_access"}
        assert tokens["refresh_token"]
        claims = _claims(tokens["access_token"])
        assert claims["cid"] == "sandbox-client" and claims["exp"] - claims["iat"] == 86400
        resp = requests.get(
            srv.url + "/v3/account/summary",
            timeout=10,
            headers={"Authorization": "Bearer " + tokens["access_token"]},
        )
        assert resp.status_code == 200 and resp.json()["encoded_account_id"]


def test_wrong_verifier_and_code_reuse_are_rejected() -> None:
    with running() as srv:
        verifier, challenge = pkce_pair()
        code = get_code(srv.url, challenge)
        bad = token_request(
            srv.url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier[:-1] + "x",
        )
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
        ok = token_request(
            srv.url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier,
        )
        assert ok.status_code == 200
        again = token_request(
            srv.url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier,
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_redirect_uri_mismatch_and_bad_client_secret() -> None:
    with running() as srv:
        verifier, challenge = pkce_pair()
        code = get_code(srv.url, challenge)
        resp = token_request(
            srv.url,
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT + "x",
            code_verifier=verifier,
        )
        assert resp.json()["error"] == "invalid_grant"
        resp = requests.post(
            srv.url + AUTH + "/token",
            auth=("sandbox-client", "nope"),
            data={"grant_type": "authorization_code", "code": code},
            timeout=10,
        )
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


def test_authorize_rejects_unknown_redirect_and_reports_errors_on_redirect() -> None:
    with running() as srv:
        resp = requests.get(
            srv.url + AUTH + "/authorize",
            timeout=10,
            allow_redirects=False,
            params={
                "client_id": "sandbox-client",
                "response_type": "code",
                "redirect_uri": "https://evil.example/cb",
                "scope": "x",
            },
        )
        assert resp.status_code == 400
        resp = requests.get(
            srv.url + AUTH + "/authorize",
            timeout=10,
            allow_redirects=False,
            params={
                "client_id": "sandbox-client",
                "response_type": "token",
                "redirect_uri": REDIRECT,
                "scope": "contact_data",
                "state": "s",
            },
        )
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
        assert query["error"] == ["unsupported_response_type"] and query["state"] == ["s"]


def test_auto_approve_redirects_at_once() -> None:
    with running(auto_approve=True) as srv:
        resp = requests.get(
            srv.url + AUTH + "/authorize",
            timeout=10,
            allow_redirects=False,
            params={
                "client_id": "sandbox-client",
                "response_type": "code",
                "redirect_uri": REDIRECT,
                "scope": "contact_data",
                "state": "abc",
            },
        )
        assert resp.status_code == 302
        assert "code=" in resp.headers["Location"] and "state=abc" in resp.headers["Location"]


def test_refresh_rotation_and_reuse_revokes_the_grant() -> None:
    with running() as srv:
        first = login(srv.url)
        r1 = token_request(
            srv.url, grant_type="refresh_token", refresh_token=first["refresh_token"]
        )
        assert r1.status_code == 200
        second = r1.json()
        assert second["refresh_token"] != first["refresh_token"]
        reuse = token_request(
            srv.url, grant_type="refresh_token", refresh_token=first["refresh_token"]
        )
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        # reuse detection revokes the whole family, including the newest tokens
        after = token_request(
            srv.url, grant_type="refresh_token", refresh_token=second["refresh_token"]
        )
        assert after.json()["error"] == "invalid_grant"
        resp = requests.get(
            srv.url + "/v3/contacts",
            timeout=10,
            headers={"Authorization": "Bearer " + second["access_token"]},
        )
        assert resp.status_code == 401


def test_no_offline_access_means_no_refresh_token() -> None:
    with running() as srv:
        tokens = login(srv.url, scope="contact_data")
        assert "refresh_token" not in tokens


def test_access_token_expiry_gives_cc_401_object() -> None:
    clock = FakeClock()
    with running(clock=clock, access_token_ttl_s=60) as srv:
        tokens = login(srv.url)
        headers = {"Authorization": "Bearer " + tokens["access_token"]}
        assert requests.get(srv.url + "/v3/contacts", headers=headers, timeout=10).ok
        clock.t += 61
        resp = requests.get(srv.url + "/v3/contacts", headers=headers, timeout=10)
        assert resp.status_code == 401
        assert resp.json() == {"error_key": "unauthorized", "error_message": "Unauthorized"}
        schema_validator(SPEC, "AuthorizationErrorSchema")(resp.json())
        fresh = token_request(
            srv.url, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
        ).json()
        resp = requests.get(
            srv.url + "/v3/contacts",
            timeout=10,
            headers={"Authorization": "Bearer " + fresh["access_token"]},
        )
        assert resp.status_code == 200


def test_control_clock_and_revoke() -> None:
    with running(access_token_ttl_s=100) as srv:
        tokens = login(srv.url)
        headers = {"Authorization": "Bearer " + tokens["access_token"]}
        requests.post(srv.url + "/_sandbox/clock", json={"advance_s": 101}, timeout=10)
        assert (
            requests.get(srv.url + "/v3/contacts", headers=headers, timeout=10).status_code == 401
        )
        tokens = login(srv.url)
        requests.post(srv.url + "/_sandbox/revoke", json={}, timeout=10)
        resp = requests.get(
            srv.url + "/v3/contacts",
            timeout=10,
            headers={"Authorization": "Bearer " + tokens["access_token"]},
        )
        assert resp.status_code == 401
        resp = token_request(
            srv.url, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
        )
        assert resp.json()["error"] == "invalid_grant"


def test_missing_scope_is_403_array() -> None:
    with running() as srv:
        tokens = login(srv.url, scope="contact_data")
        resp = requests.get(
            srv.url + "/v3/emails",
            timeout=10,
            headers={"Authorization": "Bearer " + tokens["access_token"]},
        )
        assert resp.status_code == 403 and isinstance(resp.json(), list)


def test_public_client_must_use_pkce() -> None:
    with running() as srv:
        verifier, challenge = pkce_pair()
        code = get_code(srv.url, challenge)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": "sandbox-client",
            "code_verifier": verifier,
        }
        resp = requests.post(srv.url + AUTH + "/token", data=form, timeout=10)
        assert resp.status_code == 200 and resp.json()["access_token"]
        plain = get_code(srv.url, None)
        form.update(code=plain)
        form.pop("code_verifier")
        resp = requests.post(srv.url + AUTH + "/token", data=form, timeout=10)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
        # the confidential client (HTTP Basic) may skip PKCE
        plain = get_code(srv.url, None)
        resp = token_request(
            srv.url, grant_type="authorization_code", code=plain, redirect_uri=REDIRECT
        )
        assert resp.status_code == 200


def test_sign_in_email_picks_the_account_and_data_is_isolated() -> None:
    accounts = [
        {
            "encoded_account_id": "acct-one",
            "organization_name": "One",
            "contact_email": "one@example.com",
            "emails": [],
        },
        {
            "encoded_account_id": "acct-two",
            "organization_name": "Two",
            "contact_email": "two@example.com",
            "emails": [],
        },
    ]
    with running(accounts=accounts) as srv:
        tokens = {}
        for who in ("one", "two"):
            verifier, challenge = pkce_pair()
            params = {
                "client_id": "sandbox-client",
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "scope": "contact_data account_read",
                "state": who,
                "code_challenge": challenge,
            }
            page = requests.get(srv.url + AUTH + "/authorize", params=params, timeout=10)
            assert 'value="one@example.com"' in page.text  # prefilled with the first account
            form = dict(params, email=f"{who}@example.com", decision="allow")
            resp = requests.post(
                srv.url + AUTH + "/authorize", data=form, timeout=10, allow_redirects=False
            )
            code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
            tokens[who] = token_request(
                srv.url,
                grant_type="authorization_code",
                code=code,
                redirect_uri=REDIRECT,
                code_verifier=verifier,
            ).json()
        one = {"Authorization": "Bearer " + tokens["one"]["access_token"]}
        two = {"Authorization": "Bearer " + tokens["two"]["access_token"]}
        summary = requests.get(srv.url + "/v3/account/summary", headers=two, timeout=10).json()
        assert summary["encoded_account_id"] == "acct-two"
        made = requests.post(
            srv.url + "/v3/contact_lists", json={"name": "Mine"}, headers=one, timeout=10
        )
        assert made.status_code == 201
        assert (
            requests.post(
                srv.url + "/v3/contact_lists", json={"name": "Mine"}, headers=two, timeout=10
            ).status_code
            == 201
        )
        lid = made.json()["list_id"]
        assert (
            requests.get(f"{srv.url}/v3/contact_lists/{lid}", headers=two, timeout=10).status_code
            == 404
        )


def test_optional_token_endpoint_rate_limit() -> None:
    with running(token_rate_per_s=1) as srv:
        tokens = login(srv.url)
        resp = token_request(
            srv.url, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
        )
        assert resp.status_code == 429 and resp.json()["errorCode"] == "E0000047"
