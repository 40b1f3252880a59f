"""Magento URL joining and OAuth 1.0a HMAC-SHA256 signing, checked against oauthlib."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
import responses
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, Client

from cc_storeplugin.platforms.magento.oauth1 import (
    MagentoOAuth1,
    encode_query,
    join_store_url,
    rest_root,
)

CK, CS = "k" * 32, "s" * 32
TOKEN, TOKEN_SECRET = "t" * 32, "u" * 32
NONCE, TS = "0123456789abcdef0123456789abcdef", 1_790_000_000


def header_params(auth_header: str) -> dict[str, str]:
    """Parse ``OAuth k="v", ...`` into a dict of decoded values."""
    assert auth_header.startswith("OAuth ")
    out = {}
    for part in auth_header[6:].split(","):
        name, _, value = part.strip().partition("=")
        out[unquote(name)] = unquote(value.strip('"'))
    return out


def oauthlib_signature(method: str, url: str, body=None, headers=None, **kw) -> str:
    """The signature an independent implementation computes for the same request."""
    client = Client(CK, client_secret=CS, signature_method=SIGNATURE_HMAC_SHA256,
                    nonce=NONCE, timestamp=str(TS), **kw)  # fmt: skip
    _, signed, _ = client.sign(url, method, body=body, headers=headers or {})
    return header_params(signed["Authorization"])["oauth_signature"]


def fixed_auth(**kw) -> MagentoOAuth1:
    return MagentoOAuth1(CK, CS, nonce=lambda: NONCE, clock=lambda: TS, **kw)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://shop.example/", "https://shop.example/oauth/token/request"),
        ("https://shop.example", "https://shop.example/oauth/token/request"),
        ("https://shop.example/index.php/", "https://shop.example/index.php/oauth/token/request"),
        ("https://shop.example/index.php", "https://shop.example/index.php/oauth/token/request"),
        ("https://shop.example/en/", "https://shop.example/en/oauth/token/request"),
        (
            "https://shop.example/index.php/en",
            "https://shop.example/index.php/en/oauth/token/request",
        ),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/oauth/token/request"),
        (" https://shop.example// ", "https://shop.example/oauth/token/request"),
    ],
)
def test_join_store_url_has_exactly_one_slash(base: str, expected: str) -> None:
    assert join_store_url(base, "oauth/token/request") == expected
    assert join_store_url(base, "/oauth/token/request") == expected


@pytest.mark.parametrize(
    ("base", "codes", "expected"),
    [
        ("https://shop.example/", {"default"}, "https://shop.example/"),
        ("https://shop.example", {"default"}, "https://shop.example/"),
        ("https://shop.example/index.php/", {"default"}, "https://shop.example/index.php/"),
        ("https://shop.example/default/", {"default"}, "https://shop.example/"),
        ("https://shop.example/index.php/en", {"en"}, "https://shop.example/index.php/"),
        ("https://shop.example/magento/", {"default"}, "https://shop.example/magento/"),
        ("https://shop.example/magento/en/", {"en"}, "https://shop.example/magento/"),
        ("http://127.0.0.1:8080/index.php/", {"index.php"}, "http://127.0.0.1:8080/index.php/"),
    ],
)
def test_rest_root_drops_only_a_store_code_segment(base: str, codes: set, expected: str) -> None:
    assert rest_root(base, codes) == expected


def test_encode_query_is_rfc3986_never_plus() -> None:
    q = encode_query([("searchCriteria[filter_groups][0][filters][0][value]", "a b+c%/é")])
    name = "searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bvalue%5D"
    assert q == name + "=a%20b%2Bc%25%2F%C3%A9"


SEARCH_PAIRS = [
    ("searchCriteria[filter_groups][0][filters][0][field]", "lastname"),
    ("searchCriteria[filter_groups][0][filters][0][value]", "O'Brien 100% Zoë"),
    ("searchCriteria[filter_groups][0][filters][0][condition_type]", "like"),
    ("searchCriteria[filter_groups][1][filters][0][field]", "email"),
    ("searchCriteria[filter_groups][1][filters][0][value]", "a+b@exa mple.com,日本"),
    ("searchCriteria[sortOrders][0][field]", "entity_id"),
    ("searchCriteria[pageSize]", "300"),
    ("searchCriteria[currentPage]", "2"),
]


def test_get_signature_equals_oauthlib_with_bracket_params() -> None:
    url = "https://Shop.Example:8443/index.php/rest/default/V1/customers/search?"
    url += encode_query(SEARCH_PAIRS)
    auth = fixed_auth(token=TOKEN, token_secret=TOKEN_SECRET)
    prepared = requests.Request("GET", url, auth=auth).prepare()
    ours = header_params(prepared.headers["Authorization"])
    assert ours["oauth_signature_method"] == "HMAC-SHA256"
    assert ours["oauth_token"] == TOKEN and ours["oauth_version"] == "1.0"
    expected = oauthlib_signature("GET", prepared.url, resource_owner_key=TOKEN,
                                  resource_owner_secret=TOKEN_SECRET)  # fmt: skip
    assert ours["oauth_signature"] == expected
    # the URL sent still carries the exact values we meant
    assert parse_qsl(urlsplit(prepared.url).query) == SEARCH_PAIRS


def test_form_post_signature_covers_the_body() -> None:
    url = "https://shop.example/oauth/token/access?x=1"
    body = {"note": "hello world", "sym": "a+b&c=d", "uni": "ß"}
    auth = fixed_auth(token=TOKEN, token_secret=TOKEN_SECRET, verifier="v" * 32)
    prepared = requests.Request("POST", url, data=body, auth=auth).prepare()
    ours = header_params(prepared.headers["Authorization"])
    assert ours["oauth_verifier"] == "v" * 32
    expected = oauthlib_signature(
        "POST", prepared.url, body=prepared.body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        resource_owner_key=TOKEN, resource_owner_secret=TOKEN_SECRET, verifier="v" * 32,
    )  # fmt: skip
    assert ours["oauth_signature"] == expected
    without_body = oauthlib_signature(
        "POST", prepared.url, resource_owner_key=TOKEN, resource_owner_secret=TOKEN_SECRET,
        verifier="v" * 32,
    )  # fmt: skip
    assert ours["oauth_signature"] != without_body


def test_json_body_is_not_signed() -> None:
    url = "https://shop.example/rest/default/V1/customers/5"
    auth = fixed_auth(token=TOKEN, token_secret=TOKEN_SECRET)
    prepared = requests.Request("PUT", url, json={"customer": {"a": "b=c"}}, auth=auth).prepare()
    expected = oauthlib_signature("PUT", url, resource_owner_key=TOKEN,
                                  resource_owner_secret=TOKEN_SECRET)  # fmt: skip
    assert header_params(prepared.headers["Authorization"])["oauth_signature"] == expected


def test_request_token_step_has_no_token_and_consumer_only_key() -> None:
    url = "http://127.0.0.1:5000/index.php/default/oauth/token/request"
    prepared = requests.Request("POST", url, auth=fixed_auth()).prepare()
    ours = header_params(prepared.headers["Authorization"])
    assert "oauth_token" not in ours and "oauth_verifier" not in ours
    assert ours["oauth_signature"] == oauthlib_signature("POST", url)


@responses.activate
def test_url_sent_is_the_url_signed_and_nonce_is_fresh() -> None:
    url = "https://shop.example/rest/default/V1/customers/search?" + encode_query(SEARCH_PAIRS)
    responses.add(responses.GET, url.split("?")[0], json={"items": []})
    auth = MagentoOAuth1(CK, CS, TOKEN, TOKEN_SECRET)
    session = requests.Session()
    session.get(url, auth=auth)
    session.get(url, auth=auth)
    nonces = []
    for call in responses.calls:
        sent = header_params(call.request.headers["Authorization"])
        nonces.append(sent["oauth_nonce"])
        client = Client(CK, client_secret=CS, resource_owner_key=TOKEN,
                        resource_owner_secret=TOKEN_SECRET, signature_method=SIGNATURE_HMAC_SHA256,
                        nonce=sent["oauth_nonce"], timestamp=sent["oauth_timestamp"])  # fmt: skip
        _, signed, _ = client.sign(call.request.url, "GET")
        assert header_params(signed["Authorization"])["oauth_signature"] == sent["oauth_signature"]
        assert call.request.url == url
    assert len(set(nonces)) == 2 and all(len(n) == 32 for n in nonces)


def test_repr_hides_secrets() -> None:
    auth = MagentoOAuth1(CK, CS, TOKEN, TOKEN_SECRET)
    assert CS not in repr(auth) and TOKEN_SECRET not in repr(auth)
