"""Magento URLs and OAuth 1.0a HMAC-SHA256 request signing (specs/magento.md §1.5, §1.6, §5).

``store_base_url`` (from the Callback POST) is a prefix: it may carry ``index.php/`` and a
store-code segment, with or without a trailing slash. Token endpoints hang directly off it;
REST lives at ``<host>[/<subdir>][/index.php]/rest/<store_code>/V1/`` (§2.1), so a trailing
store-code segment is dropped for REST (see :func:`rest_root`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import requests

SIGNATURE_METHOD = "HMAC-SHA256"
FORM = "application/x-www-form-urlencoded"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def rfc3986(value: Any) -> str:
    """Percent-encode everything but unreserved characters (PHP ``rawurlencode``; never '+')."""
    return quote(str(value), safe="~")


def encode_query(pairs: Iterable[tuple[str, Any]]) -> str:
    """RFC 3986 query string; brackets too, as requests (urllib3) would re-encode them anyway."""
    return "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in pairs)


def join_store_url(store_base_url: str, path: str) -> str:
    """``store_base_url`` + ``path`` with exactly one slash between them."""
    return store_base_url.strip().rstrip("/") + "/" + path.lstrip("/")


def rest_root(store_base_url: str, strip_codes: Iterable[str] = ()) -> str:
    """Prefix (ending in "/") under which ``rest/<code>/V1`` lives.

    A last path segment that is one of ``strip_codes`` is a store-code segment
    (``web/url/use_store``) and is dropped; ``index.php/`` and any other path (a Magento
    installed in a subdirectory) are kept.
    """
    parts = urlsplit(store_base_url.strip())
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[-1] != "index.php" and segments[-1] in set(strip_codes):
        segments.pop()
    path = "/" + "".join(s + "/" for s in segments)
    return f"{parts.scheme}://{parts.netloc}{path}"


def store_segment(store_base_url: str) -> str | None:
    """The last path segment of ``store_base_url`` other than ``index.php`` (None if none)."""
    segments = [s for s in urlsplit(store_base_url.strip()).path.split("/") if s]
    return segments[-1] if segments and segments[-1] != "index.php" else None


def base_string_uri(url: str) -> str:
    """scheme://host[:port]/path of the URL sent: lower-case scheme/host, default port dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{parts.port}"
    return f"{scheme}://{host}{parts.path or '/'}"


def signature_base_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 §3.4.1 base string over the decoded parameter pairs."""
    encoded = sorted((rfc3986(k), rfc3986(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in encoded)
    return "&".join((method.upper(), rfc3986(base_string_uri(url)), rfc3986(normalized)))


def hmac_sha256(base_string: str, consumer_secret: str, token_secret: str | None) -> str:
    """base64(HMAC-SHA256) with key ``rawurlencode(consumer)&rawurlencode(token)``."""
    key = f"{rfc3986(consumer_secret)}&{rfc3986(token_secret or '')}"
    digest = hmac.new(key.encode(), base_string.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def new_nonce() -> str:
    """32 random lowercase hex characters (Magento stores nonces per consumer and refuses reuse)."""
    return secrets.token_hex(16)


class MagentoOAuth1(requests.auth.AuthBase):
    """Signs each prepared request (its final ``url`` and form body) with an OAuth header."""

    def __init__(
        self,
        consumer_key: str,
        consumer_secret: str,
        token: str | None = None,
        token_secret: str | None = None,
        verifier: str | None = None,
        *,
        nonce: Callable[[], str] = new_nonce,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.token = token
        self.token_secret = token_secret
        self.verifier = verifier
        self._nonce = nonce
        self._clock = clock

    def __repr__(self) -> str:
        return f"MagentoOAuth1(consumer_key={self.consumer_key!r}, token={bool(self.token)})"

    def oauth_params(self) -> dict[str, str]:
        """The protocol parameters of one request (fresh nonce and timestamp)."""
        params = {
            "oauth_consumer_key": self.consumer_key,
            "oauth_nonce": self._nonce(),
            "oauth_signature_method": SIGNATURE_METHOD,
            "oauth_timestamp": str(int(self._clock())),
            "oauth_version": "1.0",
        }
        if self.token:
            params["oauth_token"] = self.token
        if self.verifier:
            params["oauth_verifier"] = self.verifier
        return params

    def authorization(self, method: str, url: str, form_body: str | bytes | None = None) -> str:
        """The ``Authorization: OAuth ...`` value for ``method url`` (+ form-encoded body)."""
        oauth = self.oauth_params()
        pairs = list(oauth.items())
        pairs += parse_qsl(urlsplit(url).query, keep_blank_values=True)
        if form_body:
            text = form_body.decode() if isinstance(form_body, bytes) else form_body
            pairs += parse_qsl(text, keep_blank_values=True)
        base = signature_base_string(method, url, pairs)
        oauth["oauth_signature"] = hmac_sha256(base, self.consumer_secret, self.token_secret)
        return "OAuth " + ", ".join(f'{k}="{rfc3986(v)}"' for k, v in oauth.items())

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        ctype = r.headers.get("Content-Type", "")
        form = r.body if ctype.split(";")[0].strip().lower() == FORM else None
        if form is not None and not isinstance(form, str | bytes):
            raise TypeError("streamed form bodies cannot be signed")
        r.headers["Authorization"] = self.authorization(r.method or "GET", r.url or "", form)
        return r
