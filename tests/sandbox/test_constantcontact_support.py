"""Helpers shared by the Constant Contact sandbox tests (start, OAuth2 + PKCE, polling)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from cc_storeplugin.sandbox.constantcontact import create_app
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread

from .openapi import response_validator, schema_validator

SPEC = "constantcontact-v3-swagger-3.0.172.yaml"
REDIRECT = "http://127.0.0.1:8765/auth/constantcontact/callback"
SCOPE = "contact_data campaign_data account_read offline_access"
AUTH = "/oauth2/default/v1"


class FakeClock:
    """A settable epoch clock (2026-11-01T00:00:00Z to start)."""

    def __init__(self, t: float = 1_793_491_200.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@contextmanager
def running(**options: Any) -> Iterator[RunningServer]:
    """Serve a fresh CC sandbox; limits off and instant activities unless given."""
    options.setdefault("rate_per_s", None)
    options.setdefault("daily_quota", None)
    options.setdefault("import_delay_s", 0)
    server = serve_in_thread(create_app(**options))
    try:
        yield server
    finally:
        server.stop()


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def get_code(url: str, challenge: str | None, scope: str = SCOPE, state: str = "st4te") -> str:
    """Open the consent page, press Allow, and return the code from the redirect."""
    params = {
        "client_id": "sandbox-client",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": scope,
        "state": state,
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    page = requests.get(url + AUTH + "/authorize", params=params, timeout=10)
    assert page.status_code == 200 and 'id="allow"' in page.text
    form = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
    form["decision"] = "allow"
    resp = requests.post(url + AUTH + "/authorize", data=form, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["state"] == [state]
    return query["code"][0]


def token_request(url: str, **form: str) -> requests.Response:
    """POST the token endpoint with HTTP Basic client credentials."""
    return requests.post(
        url + AUTH + "/token", data=form, auth=("sandbox-client", "sandbox-secret"), timeout=10
    )


def login(url: str, scope: str = SCOPE) -> dict[str, Any]:
    """Full authorization-code + PKCE flow; returns the token JSON."""
    verifier, challenge = pkce_pair()
    code = get_code(url, challenge, scope)
    resp = token_request(
        url,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def api(url: str, scope: str = SCOPE) -> requests.Session:
    """A requests session authorised against the sandbox's /v3 API (``s.base``)."""
    tokens = login(url, scope)
    session = requests.Session()
    session.headers.update(
        Authorization="Bearer " + tokens["access_token"], Accept="application/json"
    )
    session.base = url + "/v3"  # type: ignore[attr-defined]
    session.root = url  # type: ignore[attr-defined]
    return session


def check(resp: requests.Response, path: str, method: str, status: int) -> Any:
    """Assert the status and validate the body against the swagger; returns the JSON."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    response_validator(SPEC, path, method, status)(body)
    return body


def check_error(resp: requests.Response, status: int, key: str | None = None) -> list[dict]:
    """Assert CC's array error body (APIErrorSchema) with ``status``."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    schema_validator(SPEC, "APIErrorSchema")(body)
    assert isinstance(body, list) and body and set(body[0]) == {"error_key", "error_message"}
    if key:
        assert body[0]["error_key"] == key
    return body


def make_list(s: requests.Session, name: str) -> str:
    """Create a contact list and return its list_id."""
    resp = s.post(s.base + "/contact_lists", json={"name": name})  # type: ignore[attr-defined]
    return check(resp, "/contact_lists", "post", 201)["list_id"]


def import_rows(s: requests.Session, rows: list[dict], list_ids: list[str]) -> dict:
    """Run a contacts_json_import to completion and return the final activity."""
    resp = s.post(
        s.base + "/activities/contacts_json_import",  # type: ignore[attr-defined]
        json={"import_data": rows, "list_ids": list_ids},
    )
    body = check(resp, "/activities/contacts_json_import", "post", 201)
    return wait(s, body["activity_id"])


def wait(s: requests.Session, activity_id: str) -> dict:
    """GET the activity until it is completed (instant activities: one or two calls)."""
    for _ in range(50):
        resp = s.get(f"{s.base}/activities/{activity_id}")  # type: ignore[attr-defined]
        body = check(resp, "/activities/{activity_id}", "get", 200)
        if body["state"] == "completed":
            return body
    raise AssertionError(f"activity {activity_id} never completed")


def members(s: requests.Session, list_id: str) -> list[str]:
    """Emails in a list, via the sandbox control endpoint."""
    resp = requests.get(f"{s.root}/_sandbox/lists/{list_id}/emails", timeout=10)  # type: ignore[attr-defined]
    return resp.json()["emails"]
