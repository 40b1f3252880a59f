"""Magento sandbox OAuth 1.0a: token endpoints and REST signatures checked with oauthlib.

``Connected`` (also used by the other Magento test files) runs the whole handshake with an
independent OAuth implementation (oauthlib, HMAC-SHA256) and signs REST calls.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

import pytest
import requests
from flask import Flask, request
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256, Client

from cc_storeplugin.sandbox.magento import create_app
from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread

T0 = 1_800_000_000.0


class Clock:
    """Settable clock for the consumer window and timestamp checks."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Receiver:
    """A little Flask app playing our Callback URL; records every POST it gets."""

    server: RunningServer
    posts: list[dict] = field(default_factory=list)
    hits: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url + "/callback"


def make_receiver() -> Receiver:
    app = Flask("receiver")
    rec: Receiver

    @app.post("/callback")
    def callback():
        rec.posts.append({"form": request.form.to_dict(), "ctype": request.content_type})
        return "ok"

    @app.post("/redirecting")
    def redirecting():
        rec.posts.append({"form": request.form.to_dict(), "ctype": request.content_type})
        return "", 302, {"Location": "/landing"}

    @app.route("/landing", methods=["GET", "POST"])
    def landing():
        rec.hits.append("landing")
        return "landed"

    @app.post("/slow")
    def slow():
        threading.Event().wait(1.5)
        return "late"

    rec = Receiver(serve_in_thread(app))
    return rec


def fmt_query(pairs: list[tuple[str, str]]) -> str:
    """RFC 3986 query string (what a careful client sends and signs)."""
    return "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in pairs)


class Connected:
    """A sandbox + receiver with an activated integration and an access token."""

    def __init__(self, store, clock: Clock | None = None, exchange: bool = True, **opts) -> None:
        self.clock = clock or Clock()
        self.receiver = make_receiver()
        self.app = create_app(store=str(store), clock=self.clock, **opts)
        self.server = serve_in_thread(self.app)
        self.url = self.server.url
        body = {
            "name": "Constant Contact",
            "email": "dev@example.com",
            "endpoint": self.receiver.url,
            "identity_link_url": "https://cc.example/identity",
        }
        self.integration = requests.post(
            f"{self.url}/_sandbox/integrations", json=body, timeout=30
        ).json()
        self.activation = requests.post(
            f"{self.url}/_sandbox/integrations/{self.integration['id']}/activate", timeout=30
        ).json()
        self.creds = self.receiver.posts[-1]["form"]
        if exchange:
            self.exchange()

    def client(self, **kw) -> Client:
        kw.setdefault("signature_method", SIGNATURE_HMAC_SHA256)
        return Client(
            self.creds["oauth_consumer_key"],
            client_secret=self.creds["oauth_consumer_secret"],
            **kw,
        )

    def post_signed(self, path: str, client: Client, body: dict | None = None) -> requests.Response:
        url = self.creds["store_base_url"].rstrip("/") + path
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        uri, headers, data = client.sign(url, "POST", body=body, headers=headers)
        return requests.post(uri, headers=headers, data=data, timeout=30)

    def exchange(self) -> None:
        resp = self.post_signed("/oauth/token/request", self.client())
        assert resp.status_code == 200, resp.text
        req = dict(parse_qsl(resp.text))
        c = self.client(
            resource_owner_key=req["oauth_token"],
            resource_owner_secret=req["oauth_token_secret"],
            verifier=self.creds["oauth_verifier"],
        )
        resp = self.post_signed("/oauth/token/access", c)
        assert resp.status_code == 200, resp.text
        self.access = dict(parse_qsl(resp.text))

    def rest(
        self, method: str, path: str, params=None, json_body=None, token=None
    ) -> requests.Response:
        """Signed REST call; ``path`` like ``/rest/V1/customers/search``."""
        access = token or self.access
        c = self.client(
            resource_owner_key=access["oauth_token"],
            resource_owner_secret=access["oauth_token_secret"],
        )
        url = self.url + path
        if params:
            url += "?" + fmt_query(params if isinstance(params, list) else list(params.items()))
        headers = {"Content-Type": "application/json"} if json_body is not None else {}
        uri, headers, _ = c.sign(url, method, headers=headers)
        return requests.request(method, uri, headers=headers, json=json_body, timeout=30)

    def close(self) -> None:
        self.server.stop()
        self.receiver.server.stop()


@pytest.fixture
def conn(store_factory) -> Iterator[Connected]:
    c = Connected(store_factory(customers=60), exchange=False)
    yield c
    c.close()


def problem(resp: requests.Response) -> str:
    return dict(parse_qsl(resp.text)).get("oauth_problem", "")


def test_oauthlib_signed_handshake_then_signed_rest(conn: Connected) -> None:
    conn.exchange()
    assert len(conn.access["oauth_token"]) == 32 and len(conn.access["oauth_token_secret"]) == 32
    resp = conn.rest("GET", "/rest/V1/store/storeViews")
    assert resp.status_code == 200
    assert any(v["code"] == "default" for v in resp.json())
    status = requests.get(f"{conn.url}/_sandbox/integrations/1", timeout=30).json()["status"]
    assert status == "active"
    with_realm = conn.client(
        realm="Magento",
        resource_owner_key=conn.access["oauth_token"],
        resource_owner_secret=conn.access["oauth_token_secret"],
    )
    uri, headers, _ = with_realm.sign(f"{conn.url}/rest/V1/store/websites", "GET")
    assert 'realm="Magento"' in headers["Authorization"]
    assert requests.get(uri, headers=headers, timeout=30).status_code == 200  # realm not signed


def _signed_request_token(conn: Connected, query: str = "", body: str | None = None):
    """A fresh (new nonce) signed request-token call, as (url, headers, data)."""
    url = conn.creds["store_base_url"] + "oauth/token/request" + (f"?{query}" if query else "")
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    return conn.client().sign(url, "POST", body=body, headers=headers)


def _flip(text: str, index: int) -> str:
    ch = text[index]
    return text[:index] + ("b" if ch != "b" else "c") + text[index + 1 :]


def _mutate_header(headers: dict, param: str) -> dict:
    auth = headers["Authorization"]
    start = auth.index(f'{param}="') + len(param) + 2
    return {**headers, "Authorization": _flip(auth, start)}


MUTATIONS = ["nonce", "timestamp", "signature", "path", "host", "query", "form"]


@pytest.mark.parametrize("what", MUTATIONS)
def test_any_single_byte_change_is_rejected(conn: Connected, what: str) -> None:
    body = "note=hello%20world" if what == "form" else None
    uri, headers, data = _signed_request_token(conn, query="lang=en&x=1", body=body)
    if what == "nonce":
        headers = _mutate_header(headers, "oauth_nonce")
    elif what == "timestamp":
        auth = headers["Authorization"]
        start = auth.index('oauth_timestamp="') + len('oauth_timestamp="') + 9
        digit = "1" if auth[start] != "1" else "2"
        headers = {**headers, "Authorization": auth[:start] + digit + auth[start + 1 :]}
    elif what == "signature":
        headers = _mutate_header(headers, "oauth_signature")
    elif what == "path":
        uri = uri.replace("/oauth/token/request", "/index.php/oauth/token/request")
    elif what == "host":
        uri = uri.replace("127.0.0.1", "localhost")
    elif what == "query":
        uri = uri.replace("lang=en", "lang=em")
    elif what == "form":
        data = data.replace("hello", "hellp")
    resp = requests.post(uri, headers=headers, data=data, timeout=30)
    assert resp.status_code == 401, resp.text
    assert problem(resp) == "The signature is invalid. Verify and try again."
    # the untouched request (fresh nonce) still passes: the rejection was the byte change
    uri, headers, data = _signed_request_token(conn, query="lang=en&x=1", body=body)
    ok = requests.post(uri, headers=headers, data=data, timeout=30)
    assert ok.status_code == 200, ok.text


def test_nonce_reuse_is_rejected(conn: Connected) -> None:
    uri, headers, data = _signed_request_token(conn)
    assert requests.post(uri, headers=headers, data=data, timeout=30).status_code == 200
    again = requests.post(uri, headers=headers, data=data, timeout=30)
    assert again.status_code == 401
    assert problem(again) == "The nonce is already being used by the consumer with ID 1"


def test_hmac_sha1_is_rejected(conn: Connected) -> None:
    resp = conn.post_signed(
        "/oauth/token/request", conn.client(signature_method=SIGNATURE_HMAC_SHA1)
    )
    assert resp.status_code == 400
    assert problem(resp) == "Signature method HMAC-SHA1 is not supported"


def test_consumer_window_expires_after_300s(conn: Connected) -> None:
    conn.clock.now += 301
    resp = conn.post_signed("/oauth/token/request", conn.client())
    assert resp.status_code == 401
    assert problem(resp) == "Consumer key has expired"
    conn.clock.now -= 2  # 299 s after the callback POST: still inside the window
    assert conn.post_signed("/oauth/token/request", conn.client()).status_code == 200


def test_future_timestamp_and_missing_header(conn: Connected) -> None:
    c = conn.client(timestamp=str(int(conn.clock.now) + 601))
    resp = conn.post_signed("/oauth/token/request", c)
    assert resp.status_code == 400
    assert problem(resp) == "Incorrect timestamp value in the oauth_timestamp parameter"
    bare = requests.post(conn.creds["store_base_url"] + "oauth/token/request", timeout=30)
    assert bare.status_code == 400
    assert '"oauth_consumer_key" is required' in problem(bare)


def test_verifier_must_match(conn: Connected) -> None:
    req = dict(parse_qsl(conn.post_signed("/oauth/token/request", conn.client()).text))
    wrong = _flip(conn.creds["oauth_verifier"], 0)
    c = conn.client(
        resource_owner_key=req["oauth_token"],
        resource_owner_secret=req["oauth_token_secret"],
        verifier=wrong,
    )
    resp = conn.post_signed("/oauth/token/access", c)
    assert resp.status_code == 401
    assert problem(resp) == "Token verifier and verifier token do not match"
    c = conn.client(
        resource_owner_key=req["oauth_token"],
        resource_owner_secret=req["oauth_token_secret"],
        verifier=conn.creds["oauth_verifier"],
    )
    assert conn.post_signed("/oauth/token/access", c).status_code == 200
    # the request token is spent now
    again = conn.post_signed("/oauth/token/access", c)
    assert again.status_code == 401
    assert problem(again) == "Specified token does not exist"


def test_request_token_only_once_per_verifier(conn: Connected) -> None:
    assert conn.post_signed("/oauth/token/request", conn.client()).status_code == 200
    resp = conn.post_signed("/oauth/token/request", conn.client())
    assert resp.status_code == 401
    assert "not a verifier token" in problem(resp)


def test_rest_signature_errors_are_json(conn: Connected) -> None:
    conn.exchange()
    bad = dict(conn.access, oauth_token_secret="x" * 32)
    resp = conn.rest(
        "GET", "/rest/V1/customers/search", {"searchCriteria[pageSize]": "1"}, token=bad
    )
    assert resp.status_code == 401
    assert resp.json() == {"message": "The signature is invalid. Verify and try again."}
    resp = requests.get(f"{conn.url}/rest/V1/orders?searchCriteria[pageSize]=1", timeout=30)
    assert resp.status_code == 401
    assert resp.json() == {
        "message": "The consumer isn't authorized to access %resources.",
        "parameters": {"resources": "Magento_Sales::actions_view"},
    }
    sha1 = conn.client(
        signature_method=SIGNATURE_HMAC_SHA1,
        resource_owner_key=conn.access["oauth_token"],
        resource_owner_secret=conn.access["oauth_token_secret"],
    )
    uri, headers, _ = sha1.sign(f"{conn.url}/rest/V1/store/websites", "GET")
    resp = requests.get(uri, headers=headers, timeout=30)
    assert resp.status_code == 400
    assert resp.json() == {
        "message": "Signature method %1 is not supported",
        "parameters": ["HMAC-SHA1"],
    }


def test_bearer_only_when_enabled(store_factory) -> None:
    store = store_factory(customers=20)
    for enabled in (False, True):
        c = Connected(store, bearer_tokens=enabled)
        try:
            auth = {"Authorization": f"Bearer {c.access['oauth_token']}"}
            resp = requests.get(f"{c.url}/rest/V1/store/websites", headers=auth, timeout=30)
            assert resp.status_code == (200 if enabled else 401)
        finally:
            c.close()


@pytest.mark.parametrize("style", ["index.php", "store_code", "index.php+store_code"])
def test_store_base_url_variants_serve_the_token_endpoints(store_factory, style: str) -> None:
    c = Connected(store_factory(customers=10), base_url_style=style)
    try:
        base = c.creds["store_base_url"]
        assert base.endswith("/")
        assert ("index.php/" in base) == ("index.php" in style)
        assert base.endswith("/default/") == ("store_code" in style)
        assert c.rest("GET", "/rest/default/V1/store/websites").status_code == 200
    finally:
        c.close()
