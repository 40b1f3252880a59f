"""Email checks before anything is sent to Constant Contact (DESIGN invariant 5).

A bad address is quarantined with a short reason instead of being counted by CC as an
opaque ``error_count``. The rules are at least as strict as CC's JSON import:

- at most 50 characters (swagger ``JsonImportContact.email`` maxLength 50; CC's contact
  address limit is 80, but the bulk import is how the plugin adds contacts);
- ASCII only, in the local part and the domain: CC documents no support for
  internationalized (SMTPUTF8 / IDN) addresses, so "josé@example.com" and "用户@example.cn"
  are refused here rather than rejected, or silently mangled, by CC;
- one @, a dotted domain with a top-level domain of 2+ letters, no quoted local parts, no
  IP literals, and email-validator's syntax rules (no network lookups).

The returned address is trimmed and lower-cased: the mirror's contact key (DESIGN).
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 50
_SPACE = re.compile(r"\s")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*\Z")
"""RFC 5322 dot-atom: a plain ASCII local part, which email-validator accepts as it is."""


def check_email(email: str, max_length: int = MAX_LENGTH) -> tuple[str | None, str | None]:
    """``(normalized email, None)`` when CC will accept ``email``, else ``(None, reason)``."""
    if not isinstance(email, str):
        return None, "missing email"
    text = email.strip()
    reason = _quick_reason(text, max_length)
    if reason is not None:
        return None, reason
    local, domain = text.split("@")
    if _DOT_ATOM.match(local):
        ascii_domain, reason = _check_domain(domain.lower())
        if reason is not None:
            return None, reason
        return f"{local.lower()}@{ascii_domain}", None
    return _full_check(text)


@lru_cache(maxsize=4096)
def _check_domain(domain: str) -> tuple[str | None, str | None]:
    """email-validator's verdict on a domain; cached because a store's domains repeat."""
    address, reason = _full_check("a@" + domain)
    return (address.split("@", 1)[1] if address else None), reason


def _full_check(text: str) -> tuple[str | None, str | None]:
    try:
        info = validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            globally_deliverable=True,
        )
    except EmailNotValidError as exc:
        return None, _short(str(exc))
    return (info.ascii_email or info.normalized).lower(), None


def _quick_reason(text: str, max_length: int) -> str | None:
    """The common faults in plain words, cheaply, before the full syntax check."""
    if not text:
        return "empty"
    at = text.count("@")
    if at == 0:
        return "missing @"
    if at > 1:
        return "more than one @"
    if not text.isascii():
        return "non-ASCII characters (not accepted by Constant Contact)"
    if _SPACE.search(text):
        return "contains a space"
    local, domain = text.split("@")
    if not local:
        return "nothing before @"
    if not domain:
        return "nothing after @"
    if "." not in domain:
        return "domain has no dot"
    tld = domain.rsplit(".", 1)[1]
    if len(tld) < 2 or not (tld.isalpha() or (tld.startswith("xn--") and tld[4:].isalnum())):
        return "invalid top-level domain"
    if len(text) > max_length:
        return f"longer than {max_length} characters"
    return None


def _short(message: str) -> str:
    """email-validator's sentence, trimmed to a reason: no final period, at most 120 chars."""
    message = message.strip().rstrip(".")
    return message if len(message) <= 120 else message[:117] + "..."
