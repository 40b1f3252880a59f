"""MagentoClient against `responses`: token exchange, retries, error mapping, paging, writes."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import pytest
import requests
import responses
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, Client

from cc_storeplugin.platforms.magento.client import MagentoClient
from cc_storeplugin.platforms.magento.errors import (
    MagentoConsumerExpired,
    MagentoError,
    MagentoProblem,
    MagentoUnauthorized,
    MagentoUnavailable,
    render_message,
)

BASE = "https://shop.example/index.php/"
REST = "https://shop.example/index.php/rest/default/V1/"
STORE_REST = "https://shop.example/index.php/rest/V1/"
CK, CS, AT, ATS = "c" * 32, "d" * 32, "a" * 32, "b" * 32
FORM = {"content_type": "text/html; charset=UTF-8"}


def header(call) -> dict[str, str]:
    raw = call.request.headers["Authorization"]
    assert raw.startswith("OAuth ")
    pairs = (p.strip().partition("=") for p in raw[6:].split(","))
    return {unquote(k): unquote(v.strip('"')) for k, _, v in pairs}


def assert_signed(call, secret: str, token_secret: str | None, **kw) -> None:
    """Recompute the signature of the request as sent with oauthlib."""
    sent = header(call)
    client = Client(CK, client_secret=secret, resource_owner_secret=token_secret,
                    signature_method=SIGNATURE_HMAC_SHA256, nonce=sent["oauth_nonce"],
                    timestamp=sent["oauth_timestamp"], **kw)  # fmt: skip
    _, signed, _ = client.sign(call.request.url, call.request.method)
    assert signed["Authorization"].split("oauth_signature=")[1].split(",")[0].strip('"') == (
        call.request.headers["Authorization"].split("oauth_signature=")[1].split(",")[0].strip('"')
    )


@pytest.fixture
def client() -> MagentoClient:
    c = MagentoClient(BASE, CK, CS, AT, ATS, backoff_s=0.01, max_retries=3)
    c.slept = []  # type: ignore[attr-defined]
    c._sleep = c.slept.append  # type: ignore[attr-defined]
    return c


# -- token exchange -------------------------------------------------------------------------


@responses.activate
def test_exchange_tokens_happy_path() -> None:
    responses.post(
        BASE + "oauth/token/request", body="oauth_token=rt&oauth_token_secret=rs", **FORM
    )
    responses.post(BASE + "oauth/token/access", body="oauth_token=at&oauth_token_secret=as", **FORM)
    client = MagentoClient(BASE, CK, CS)
    assert client.exchange_tokens("v" * 32) == ("at", "as")
    assert (client.access_token, client.access_token_secret) == ("at", "as")
    req, acc = responses.calls
    assert "oauth_token" not in header(req) and "oauth_verifier" not in header(req)
    assert header(acc)["oauth_token"] == "rt" and header(acc)["oauth_verifier"] == "v" * 32
    assert header(acc)["oauth_signature_method"] == "HMAC-SHA256"
    assert_signed(req, CS, None)
    assert_signed(acc, CS, "rs", resource_owner_key="rt", verifier="v" * 32)
    assert client.calls == 2


@responses.activate
def test_expired_consumer_maps_to_consumer_expired() -> None:
    responses.post(BASE + "oauth/token/request", status=401,
                   body="oauth_problem=Consumer+key+has+expired", **FORM)  # fmt: skip
    with pytest.raises(MagentoConsumerExpired) as exc:
        MagentoClient(BASE, CK, CS).exchange_tokens("v" * 32)
    assert exc.value.status == 401 and exc.value.problem == "Consumer key has expired"
    assert len(responses.calls) == 1


@responses.activate
def test_400_oauth_problem_maps_to_problem_and_is_not_retried() -> None:
    responses.post(
        BASE + "oauth/token/request", body="oauth_token=rt&oauth_token_secret=rs", **FORM
    )
    problem = "oauth_problem=Token+verifier+and+verifier+token+do+not+match"
    responses.post(BASE + "oauth/token/access", status=400, body=problem, **FORM)
    with pytest.raises(MagentoProblem) as exc:
        MagentoClient(BASE, CK, CS).exchange_tokens("w" * 32)
    assert exc.value.status == 400
    assert exc.value.problem == "Token verifier and verifier token do not match"
    assert len(responses.calls) == 2


@responses.activate
def test_401_bad_signature_on_token_endpoint_is_unauthorized() -> None:
    problem = "oauth_problem=The+signature+is+invalid.+Verify+and+try+again."
    responses.post(BASE + "oauth/token/request", status=401, body=problem, **FORM)
    with pytest.raises(MagentoUnauthorized) as exc:
        MagentoClient(BASE, CK, "wrong").exchange_tokens("v" * 32)
    assert "signature is invalid" in exc.value.message
    assert not isinstance(exc.value, MagentoConsumerExpired)


# -- retries and errors ---------------------------------------------------------------------


@responses.activate
def test_retries_on_503_429_and_connection_error_then_succeeds(client: MagentoClient) -> None:
    url = STORE_REST + "store/websites"
    responses.get(url, status=503, json={"message": "Service Unavailable"})
    responses.get(
        url, status=429, json={"message": "Too Many Requests"}, headers={"Retry-After": "2"}
    )
    responses.get(url, body=requests.ConnectionError("connection reset"))
    responses.get(url, json=[{"id": 1, "code": "base", "name": "Main Website"}])
    assert client.websites() == [{"id": 1, "code": "base", "name": "Main Website"}]
    assert client.calls == 4
    assert len(client.slept) == 3 and client.slept[1] == 2.0  # Retry-After respected
    nonces = {header(c)["oauth_nonce"] for c in responses.calls[:3]}
    assert len(nonces) == 3  # each attempt is signed afresh


@responses.activate
def test_retries_exhausted_raise_unavailable(client: MagentoClient) -> None:
    responses.get(STORE_REST + "store/storeViews", status=502, body="<html>Bad Gateway</html>")
    with pytest.raises(MagentoUnavailable) as exc:
        client.store_views()
    assert exc.value.status == 502
    assert client.calls == 4  # 1 + max_retries


@responses.activate
def test_401_is_not_retried(client: MagentoClient) -> None:
    body = {"message": "The consumer isn't authorized to access %resources.",
            "parameters": {"resources": "Magento_Customer::customer"}}  # fmt: skip
    responses.get(REST + "customers/search", status=401, json=body)
    with pytest.raises(MagentoUnauthorized) as exc:
        client.search("customers/search", page_size=1, current_page=1)
    assert (
        exc.value.message == "The consumer isn't authorized to access Magento_Customer::customer."
    )
    assert client.calls == 1 and client.slept == []


@responses.activate
def test_rest_error_placeholders_are_substituted(client: MagentoClient) -> None:
    body = {"message": "No such entity with %fieldName = %fieldValue",
            "parameters": {"fieldName": "customerId", "fieldValue": 7}}  # fmt: skip
    responses.get(REST + "customers/7", status=404, json=body)
    with pytest.raises(MagentoError) as exc:
        client.get("customers/7")
    assert type(exc.value) is MagentoError and exc.value.status == 404
    assert exc.value.message == "No such entity with customerId = 7"
    assert client.calls == 1


def test_render_message_list_and_dict_parameters() -> None:
    assert (
        render_message("Signature method %1 is not supported", ["HMAC-SHA1"])
        == "Signature method HMAC-SHA1 is not supported"
    )
    assert render_message("%1 of %2, %10", list("abcdefghij")) == "a of b, j"
    assert render_message("Maximum SearchCriteria pageSize is %max", {"max": 300}).endswith("300")
    assert render_message("keep %unknown", {"x": 1}) == "keep %unknown"


@responses.activate
def test_400_is_not_retried(client: MagentoClient) -> None:
    body = {"message": "Maximum SearchCriteria pageSize is %max", "parameters": {"max": 300}}
    responses.get(REST + "orders", status=400, json=body)
    with pytest.raises(MagentoError, match="pageSize is 300"):
        client.search("orders", page_size=500, current_page=1)
    assert client.calls == 1


# -- searchCriteria and paging --------------------------------------------------------------


@responses.activate
def test_search_builds_search_criteria(client: MagentoClient) -> None:
    responses.get(REST + "orders", json={"items": [], "search_criteria": {}, "total_count": 0})
    client.search(
        "orders",
        filter_groups=[
            [{"field": "updated_at", "value": "2026-01-01 00:00:00", "condition_type": "gteq"}],
            [
                {"field": "state", "value": ["new", "complete"], "condition_type": "in"},
                {"field": "customer_email", "value": "%@x.com", "condition_type": "like"},
            ],
        ],  # fmt: skip
        sort_orders=[("updated_at", "asc"), ("entity_id", "ASC")],
        page_size=300,
        current_page=4,
    )
    sent = responses.calls[0].request.url
    raw = urlsplit(sent).query
    assert "+" not in raw and "%20" in raw and "%25%40x.com" in raw
    got = parse_qsl(raw)
    f = "searchCriteria[filter_groups]"
    assert got == [
        (f"{f}[0][filters][0][field]", "updated_at"),
        (f"{f}[0][filters][0][value]", "2026-01-01 00:00:00"),
        (f"{f}[0][filters][0][condition_type]", "gteq"),
        (f"{f}[1][filters][0][field]", "state"),
        (f"{f}[1][filters][0][value]", "new,complete"),
        (f"{f}[1][filters][0][condition_type]", "in"),
        (f"{f}[1][filters][1][field]", "customer_email"),
        (f"{f}[1][filters][1][value]", "%@x.com"),
        (f"{f}[1][filters][1][condition_type]", "like"),
        ("searchCriteria[sortOrders][0][field]", "updated_at"),
        ("searchCriteria[sortOrders][0][direction]", "ASC"),
        ("searchCriteria[sortOrders][1][field]", "entity_id"),
        ("searchCriteria[sortOrders][1][direction]", "ASC"),
        ("searchCriteria[pageSize]", "300"),
        ("searchCriteria[currentPage]", "4"),
    ]
    assert_signed(responses.calls[0], CS, ATS, resource_owner_key=AT)


def page_of(ids: list[int], total: int) -> dict:
    return {"items": [{"id": i} for i in ids], "search_criteria": {}, "total_count": total}


def register_pages(bodies: dict[int, dict]) -> None:
    def reply(request):
        page = int(parse_qs(urlsplit(request.url).query)["searchCriteria[currentPage]"][0])
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps(bodies.get(page, page_of([], 0))),
        )

    responses.add_callback(responses.GET, REST + "customers/search", callback=reply)


@responses.activate
def test_iter_pages_stops_on_total_count(client: MagentoClient) -> None:
    register_pages({1: page_of([1, 2], 5), 2: page_of([3, 4], 5), 3: page_of([5], 5),
                    4: page_of([9], 5)})  # fmt: skip
    pages = list(client.iter_pages("customers/search", page_size=2))
    assert [p for p, _ in pages] == [1, 2, 3]
    assert [i["id"] for _, b in pages for i in b["items"]] == [1, 2, 3, 4, 5]
    assert client.calls == 3
    first = dict(parse_qsl(urlsplit(responses.calls[0].request.url).query))
    assert first["searchCriteria[sortOrders][0][field]"] == "entity_id"
    assert first["searchCriteria[sortOrders][0][direction]"] == "ASC"


@responses.activate
def test_iter_pages_stops_on_empty_items(client: MagentoClient) -> None:
    register_pages({1: page_of([1, 2], 10), 2: page_of([3, 4], 10)})  # rows deleted meanwhile
    assert [p for p, _ in client.iter_pages("customers/search", page_size=2)] == [1, 2]
    assert client.calls == 3


@responses.activate
def test_iter_pages_stops_on_a_repeated_page(client: MagentoClient) -> None:
    # total_count grew during the run, and the store repeats its last page (≤2.3)
    register_pages({1: page_of([1, 2], 4), 2: page_of([3, 4], 6), 3: page_of([3, 4], 6),
                    4: page_of([3, 4], 6)})  # fmt: skip
    pages = list(client.iter_pages("customers/search", page_size=2))
    assert [p for p, _ in pages] == [1, 2]
    assert client.calls == 3


@responses.activate
def test_iter_pages_resumes_from_start_page(client: MagentoClient) -> None:
    register_pages({3: page_of([5, 6], 7), 4: page_of([7], 7)})
    assert [p for p, _ in client.iter_pages("customers/search", page_size=2, start_page=3)] == [
        3,
        4,
    ]


# -- store views and writes -----------------------------------------------------------------


@responses.activate
def test_store_endpoints(client: MagentoClient) -> None:
    views = [{"id": 1, "code": "default", "name": "Default Store View", "website_id": 1,
              "store_group_id": 1, "is_active": 1}]  # fmt: skip
    responses.get(STORE_REST + "store/storeViews", json=views)
    responses.get(STORE_REST + "store/storeGroups", json=[{"id": 1, "code": "main_website_store"}])
    assert client.store_views() == views
    assert client.store_groups()[0]["code"] == "main_website_store"


@responses.activate
def test_set_subscription_puts_the_whole_customer(client: MagentoClient) -> None:
    customer = {"id": 7, "email": "a@b.c", "firstname": "A", "lastname": "B", "website_id": 2,
                "addresses": [{"id": 3, "default_billing": True}],
                "extension_attributes": {"is_subscribed": True, "other": 1}}  # fmt: skip
    responses.get(REST + "customers/7", json=customer)
    saved = {**customer, "extension_attributes": {"is_subscribed": False, "other": 1}}
    responses.put(REST + "customers/7", json=saved)
    assert client.set_subscription(7, False) == saved
    put = responses.calls[1].request
    assert json.loads(put.body) == {"customer": saved}
    assert put.headers["Content-Type"] == "application/json"
    assert_signed(responses.calls[1], CS, ATS, resource_owner_key=AT)


@pytest.mark.parametrize(
    ("base", "code", "rest"),
    [
        ("https://shop.example", "default", "https://shop.example/rest/default/V1/x"),
        ("https://shop.example/default/", "default", "https://shop.example/rest/default/V1/x"),
        ("https://shop.example/index.php/en/", "en", "https://shop.example/index.php/rest/en/V1/x"),
        ("http://1.2.3.4:81/index.php/", "fr", "http://1.2.3.4:81/index.php/rest/fr/V1/x"),
    ],
)
def test_rest_url_from_store_base_url(base: str, code: str, rest: str) -> None:
    assert MagentoClient(base, CK, CS, store_code=code).rest_url("x") == rest


@responses.activate
def test_unknown_trailing_segment_falls_back_to_store_code_reading() -> None:
    client = MagentoClient("https://shop.example/fr/", CK, CS, AT, ATS)
    responses.get("https://shop.example/fr/rest/V1/store/websites", status=404,
                  body="<html>Not Found</html>", content_type="text/html")  # fmt: skip
    responses.get("https://shop.example/rest/V1/store/websites", json=[])
    assert client.websites() == [] and client.websites() == []
    assert client.calls == 3  # the probe happens once


@responses.activate
def test_subdirectory_install_is_kept() -> None:
    client = MagentoClient("https://host.example/shop/", CK, CS, AT, ATS)
    responses.get("https://host.example/shop/rest/V1/store/websites", json=[{"id": 1}])
    assert client.websites() == [{"id": 1}] and client.calls == 1


def test_rest_without_access_token_is_refused() -> None:
    with pytest.raises(MagentoError, match="access token"):
        MagentoClient(BASE, CK, CS).store_views()
