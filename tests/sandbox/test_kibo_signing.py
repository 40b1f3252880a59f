"""Kibo message hash: both published test vectors, verification rules, launcher signing."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest

from cc_storeplugin.sandbox.kibo.launcher import launch_html, launch_request
from cc_storeplugin.sandbox.kibo.signing import (
    format_http_date,
    is_fresh,
    kibo_hash,
    parse_kibo_date,
    verify_kibo_hash,
)

# Test vector 1 (Java CryptoTest.java): an app configuration form body.
V1_SECRET = "b2dc973d5dec4bd6aa325fa906a64aee"
V1_DATE = "Mon, 18 Aug 2014 21:07:21 GMT"
V1_BODY = (
    "x-vol-tenant-domain=t419.sandbox.mozu-qa.com&x-vol-return-url=https://t419.sandbox."
    "mozu-qa.com/Admin/s-1223/capability/edit/7d7fadf25e9f454eb6cc87df888395ea/#configure"
)
V1_HASH = "yJ+gMQm3FZzKfgySi+1jGYcUcSADVjr3x19BwKyFj9w="

# Test vector 2 (superpan/hapi-auth-mozu test/mozu.js): a captured event body.
V2_SECRET = "cb966f44cfc44e29a01049da98f99163"
V2_DATE = "Wed, 17 Sep 2014 03:07:13 GMT"
V2_BODY = (
    b'{"eventId":"aa8494c2-8640-47c0-96ca-a3a900336ca8","topic":"product.created",'
    b'"entityId":"5418fadf13dfa10b1b074cb1","timestamp":"2014-09-17T03:07:13.5655802Z",'
    b'"correlationId":"9902d7e03d9945918ee563f488435f16","isTest":false}'
)
V2_HASH = "tlV4+aE+4mxCji8jZ4PIKz30q18PtV11n0AT9PGd9vM="
V2_EPOCH = 1410923233  # the vector's Date as epoch seconds


def test_vector_1_config_body() -> None:
    assert kibo_hash(V1_SECRET, V1_DATE, V1_BODY) == V1_HASH


def test_vector_2_event_body_bytes_and_text() -> None:
    assert kibo_hash(V2_SECRET, V2_DATE, V2_BODY) == V2_HASH
    assert kibo_hash(V2_SECRET, V2_DATE, V2_BODY.decode()) == V2_HASH


def test_verify_accepts_vector_at_its_time_and_rejects_any_change() -> None:
    now = V2_EPOCH + 10
    assert verify_kibo_hash(V2_SECRET, V2_DATE, V2_BODY, V2_HASH, now=now)
    assert not verify_kibo_hash(V2_SECRET, V2_DATE, V2_BODY + b" ", V2_HASH, now=now)
    assert not verify_kibo_hash(V2_SECRET + "x", V2_DATE, V2_BODY, V2_HASH, now=now)
    assert not verify_kibo_hash(V2_SECRET, V2_DATE.replace("13 GMT", "14 GMT"), V2_BODY, V2_HASH)
    assert not verify_kibo_hash(V2_SECRET, V2_DATE, V2_BODY, V2_HASH[:-2] + "A=", now=now)
    assert not verify_kibo_hash(V2_SECRET, V2_DATE, V2_BODY, None, now=now)


def test_freshness_window_is_180_seconds() -> None:
    assert verify_kibo_hash(V2_SECRET, V2_DATE, V2_BODY, V2_HASH, now=V2_EPOCH + 180)
    assert not verify_kibo_hash(V2_SECRET, V2_DATE, V2_BODY, V2_HASH, now=V2_EPOCH + 181)
    assert is_fresh(V2_DATE, now=V2_EPOCH - 30)  # a clock behind the sender is fine
    assert not is_fresh("not a date", now=V2_EPOCH)


def test_raw_bytes_variant_does_not_match() -> None:
    """The inner digest is base64 *text*; hashing its raw bytes gives another value."""
    import base64
    import hashlib

    inner_raw = hashlib.sha256((V2_SECRET * 2).encode()).digest()
    wrong = base64.b64encode(hashlib.sha256(inner_raw + V2_DATE.encode() + V2_BODY).digest())
    assert wrong.decode() != V2_HASH


def test_dates_roundtrip() -> None:
    assert format_http_date(V2_EPOCH) == V2_DATE
    assert parse_kibo_date(V2_DATE).timestamp() == V2_EPOCH
    assert parse_kibo_date("2014-09-17T03:07:13z").timestamp() == V2_EPOCH
    assert parse_kibo_date("2014-09-17T03:07:13").timestamp() == V2_EPOCH  # naive = UTC


def _verify_config_post(url: str, encoded_body: str, secret: str, now: float) -> bool:
    """What ConfigurationAuth.IsRequestValid does with the request Kibo Admin sends."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    body = unquote_plus(encoded_body)
    return (
        verify_kibo_hash(secret, query["dt"], body, query["messageHash"], now=now)
        and f"t{query['tenantId']}." in body
    )


@pytest.mark.parametrize("config_url", ["https://plugin.example/kibo/config", "http://x/c?a=1"])
def test_launch_request_verifies_like_kibo_sdk(config_url: str) -> None:
    req = launch_request(
        config_url,
        V1_SECRET,
        419,
        "t419.sandbox.mozu-qa.com",
        1223,
        "ns.app.1.0.0.Release",
        now=V2_EPOCH,
    )
    assert req.url.startswith(config_url)
    assert req.dt == V2_DATE
    assert list(req.form) == ["x-vol-tenant-domain", "x-vol-return-url"]
    assert req.form["x-vol-return-url"].startswith("https://t419.sandbox.mozu-qa.com/Admin/s-1223/")
    assert _verify_config_post(req.url, req.encoded_body, V1_SECRET, now=V2_EPOCH + 5)
    assert not _verify_config_post(req.url, req.encoded_body, V1_SECRET + "x", now=V2_EPOCH)
    assert not _verify_config_post(req.url, req.encoded_body, V1_SECRET, now=V2_EPOCH + 500)
    tampered = req.encoded_body.replace("t419", "t420")
    assert not _verify_config_post(req.url, tampered, V1_SECRET, now=V2_EPOCH)


def test_launch_request_with_vector_1_date_and_body_gives_vector_1_hash() -> None:
    req = launch_request(
        "https://p/c", V1_SECRET, 419, "t419.sandbox.mozu-qa.com", 1223, "a", dt=V1_DATE
    )
    assert req.message_hash == kibo_hash(V1_SECRET, V1_DATE, req.signed_body)
    assert req.signed_body.startswith("x-vol-tenant-domain=t419.sandbox.mozu-qa.com&x-vol-ret")


def test_launch_html_posts_the_signed_form() -> None:
    req = launch_request("https://p/c", V1_SECRET, 419, "t419.sandbox.mozu-qa.com", 1223, "a")
    page = launch_html(req)
    assert 'method="post"' in page and "submit()" in page
    assert req.url.replace("&", "&amp;") in page
    assert 'name="x-vol-tenant-domain" value="t419.sandbox.mozu-qa.com"' in page
    assert "submit()" not in launch_html(req, auto_submit=False)
