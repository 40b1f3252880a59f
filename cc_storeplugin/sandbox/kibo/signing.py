"""Kibo (Mozu) message hash: the HMAC-like SHA-256 that signs event deliveries
(``x-vol-hmac-sha256`` over ``Date`` + raw body) and the app configuration launch
(``messageHash`` over ``dt`` + URL-decoded form body).

Pure standard library, no Flask: the plugin's event intake imports this module too.
Algorithm (spec A1, checked against both published test vectors)::

    k   = base64(sha256(utf8(secret + secret)))          # the base64 *text* is used
    sig = base64(sha256(utf8(k) + utf8(date) + body))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

#: All three Kibo SDKs accept a Date this many seconds old (MozuConfig.EventTimeoutInSeconds).
MAX_AGE_S = 180


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def kibo_hash(shared_secret: str, date: str, body: str | bytes) -> str:
    """Return the base64 signature Kibo sends in ``x-vol-hmac-sha256`` / ``messageHash``.

    ``date`` is the header (or ``dt``) text exactly as sent; ``body`` is the raw request
    body bytes for events, or the URL-decoded form body for the configuration page.
    """
    inner = base64.b64encode(hashlib.sha256(_as_bytes(shared_secret + shared_secret)).digest())
    digest = hashlib.sha256(inner + _as_bytes(date) + _as_bytes(body)).digest()
    return base64.b64encode(digest).decode("ascii")


def format_http_date(when: datetime | float | None = None) -> str:
    """RFC 1123 date as Kibo puts in the ``Date`` header, e.g. ``Wed, 17 Sep 2014 03:07:13 GMT``."""
    if when is None:
        when = datetime.now(UTC)
    elif not isinstance(when, datetime):
        when = datetime.fromtimestamp(float(when), UTC)
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)


def parse_kibo_date(text: str) -> datetime | None:
    """Parse an RFC 1123 ``Date`` or an ISO-8601 ``dt``; naive values are UTC (as .NET does)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_fresh(date: str, now: float | None = None, max_age_s: float = MAX_AGE_S) -> bool:
    """``date`` parses and is at most ``max_age_s`` old (future dates pass, as in SDKs)."""
    parsed = parse_kibo_date(date)
    if parsed is None:
        return False
    current = datetime.now(UTC).timestamp() if now is None else float(now)
    return current - parsed.timestamp() <= max_age_s


def verify_kibo_hash(
    shared_secret: str,
    date: str,
    body: str | bytes,
    signature: str | None,
    now: float | None = None,
    max_age_s: float = MAX_AGE_S,
) -> bool:
    """Constant-time check of a Kibo signature plus the 180 s freshness window."""
    if not signature or not date:
        return False
    expected = kibo_hash(shared_secret, date, body)
    if not hmac.compare_digest(expected.encode("ascii"), _as_bytes(signature.strip())):
        return False
    return is_fresh(date, now=now, max_age_s=max_age_s)
