"""check_email: what Constant Contact's import would accept, with a reason for the rest."""

from __future__ import annotations

import time

import pytest

from cc_storeplugin.constantcontact.emails import MAX_LENGTH, check_email


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("jane.doe@example.com", "jane.doe@example.com"),
        ("  Jane.Doe@Example.COM \n", "jane.doe@example.com"),
        ("a+tag@mail.example.co.uk", "a+tag@mail.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("x_y-z@sub-domain.example.org", "x_y-z@sub-domain.example.org"),
        ("user@xn--bcher-kva.de", "user@xn--bcher-kva.de"),
    ],
)
def test_valid_addresses_come_back_trimmed_and_lower_cased(raw: str, normalized: str) -> None:
    assert check_email(raw) == (normalized, None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("bob@", "nothing after @"),
        ("@example.com", "nothing before @"),
        ("a@b", "domain has no dot"),
        ("no-at-sign.example.com", "missing @"),
        ("x y@example.com", "contains a space"),
        ("jane@@example.com", "more than one @"),
        ("", "empty"),
        ("   ", "empty"),
        ("a@example.c", "invalid top-level domain"),
        ("a@1.2.3.4", "invalid top-level domain"),
    ],
)
def test_invalid_addresses_get_a_short_reason(raw: str, reason: str) -> None:
    assert check_email(raw) == (None, reason)


@pytest.mark.parametrize(
    "raw",
    [
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@-example.com",
        "a@exa_mple.com",
        '"quoted"@example.com',
        "a@example.invalid",
        "a(b)@example.com",
    ],
)
def test_subtler_syntax_errors_are_refused_with_email_validators_reason(raw: str) -> None:
    email, reason = check_email(raw)
    assert email is None
    assert reason and len(reason) <= 120 and not reason.endswith(".")


@pytest.mark.parametrize(
    "raw", ["josé@example.com", "用户@example.cn", "user@bücher.de", "ünï@ëxample.com"]
)
def test_internationalized_addresses_are_refused_as_cc_does_not_take_them(raw: str) -> None:
    assert check_email(raw) == (None, "non-ASCII characters (not accepted by Constant Contact)")


def test_length_limit_is_the_json_imports_50_characters() -> None:
    domain = "@example.com"
    at_limit = "a" * (MAX_LENGTH - len(domain)) + domain
    assert len(at_limit) == 50 and check_email(at_limit) == (at_limit, None)
    over = "a" + at_limit
    assert check_email(over) == (None, "longer than 50 characters")
    assert check_email(over, max_length=80) == (over, None)


def test_non_strings_are_missing() -> None:
    assert check_email(None) == (None, "missing email")  # type: ignore[arg-type]


def test_a_million_checks_take_seconds_not_minutes() -> None:
    emails = [f"customer.{i}@shop{i % 300}.example.com" for i in range(100_000)]
    start = time.perf_counter()
    valid = sum(1 for e in emails if check_email(e)[0])
    per_call_us = (time.perf_counter() - start) / len(emails) * 1e6
    assert valid == len(emails)
    assert per_call_us < 20, f"{per_call_us:.1f} µs per address"
