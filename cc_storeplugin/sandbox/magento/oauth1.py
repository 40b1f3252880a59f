"""OAuth 1.0a as Magento verifies it: parameter extraction, HMAC-SHA256 signatures, and the
consumers / integration tokens / nonces it keeps (Framework/Oauth, Integration/Model/Oauth).

Parameters come from the ``Authorization: OAuth`` header (required), non-oauth form-body
fields (``application/x-www-form-urlencoded`` only) and non-oauth query fields. The base
string uses the URL as the server sees it (scheme, Host header with port, raw path).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_plus

from flask import Request

TOKEN_CHARS = string.ascii_lowercase + string.digits
LENGTH = 32
TIME_DEVIATION = 600
SUPPORTED_METHODS = ("HMAC-SHA256",)
_PROTOCOL = re.compile(r"oauth_[a-z_-]+")


def random_token(n: int = LENGTH) -> str:
    """Magento's Oauth helper string: lowercase letters and digits."""
    return "".join(secrets.choice(TOKEN_CHARS) for _ in range(n))


class OauthError(Exception):
    """Oauth\\Exception (401) or OauthInputException (400) with Magento's template."""

    def __init__(self, status: int, message: str, parameters: Any = None, errors=None) -> None:
        super().__init__(message)
        self.status, self.message, self.parameters, self.errors = (
            status,
            message,
            parameters,
            errors,
        )

    def rendered(self) -> str:
        """The message with placeholders substituted (what oauth_problem carries)."""
        if self.errors:
            return " ".join(OauthError(400, m, p).rendered() for m, p in self.errors)
        text, p = self.message, self.parameters
        if isinstance(p, dict):
            for k, v in p.items():
                text = text.replace(f"%{k}", str(v))
        elif isinstance(p, list):
            for i, v in enumerate(p, 1):
                text = text.replace(f"%{i}", str(v))
        return text

    def body(self) -> dict:
        """JSON error body for the REST API."""
        if self.errors:
            return {
                "message": "One or more input exceptions have occurred.",
                "errors": [{"message": m, "parameters": p} for m, p in self.errors],
            }
        out: dict[str, Any] = {"message": self.message}
        if self.parameters is not None:
            out["parameters"] = self.parameters
        return out


def rawurlencode(value: str) -> str:
    """PHP rawurlencode (RFC 3986)."""
    return quote(value, safe="-._~")


def request_url(req: Request) -> str:
    """scheme://Host/raw-path?raw-query as Magento computes it (getRequestUrl)."""
    env = req.environ
    raw = env.get("RAW_URI") or env.get("REQUEST_URI")
    if not raw:
        raw = quote(
            env.get("SCRIPT_NAME", "") + env.get("PATH_INFO", ""), safe="/:@!$&'()*+,;=-._~%"
        )
        if env.get("QUERY_STRING"):
            raw += "?" + env["QUERY_STRING"]
    host = env.get("HTTP_HOST") or f"{env.get('SERVER_NAME')}:{env.get('SERVER_PORT')}"
    return f"{req.scheme}://{host}{raw}"


def normalize_url(url: str) -> str:
    """Zend normaliseBaseSignatureUrl: lowercase scheme/host, default port and query dropped."""
    scheme, _, rest = url.partition("://")
    hostport, slash, path = rest.partition("/")
    path = (slash + path).split("?", 1)[0].split("#", 1)[0]
    scheme, hostport = scheme.lower(), hostport.lower()
    if (scheme == "http" and hostport.endswith(":80")) or (
        scheme == "https" and hostport.endswith(":443")
    ):
        hostport = hostport.rsplit(":", 1)[0]
    return f"{scheme}://{hostport}{path}"


def extract_params(req: Request, url: str) -> dict[str, str]:
    """Helper\\Request::_processRequest: header, form body and query parameters merged."""
    header = req.headers.get("Authorization", "")
    pos = header.lower().find("oauth ")
    if pos < 0:
        return {}
    params: dict[str, str] = {}
    for part in header[pos + 6 :].split(","):
        name, eq, value = part.strip().partition("=")
        if eq and _PROTOCOL.search(name):
            params[unquote(name)] = unquote(value.strip('"'))
    header_empty = not params
    ctype = req.headers.get("Content-Type", "")
    if ctype.startswith("application/x-www-form-urlencoded"):
        body = req.get_data(as_text=True)
        for name, value in parse_qsl(body, keep_blank_values=True):
            if not _PROTOCOL.search(name) or header_empty:
                params[name] = value
    query = url.split("?", 1)[1] if "?" in url else ""
    none_yet = not params
    for piece in query.split("&") if query else []:
        bits = piece.split("=")
        if len(bits) == 2 and not _PROTOCOL.search(bits[0]):
            params[unquote_plus(bits[0])] = unquote_plus(bits[1])
    if none_yet:
        for name, value in parse_qsl(query, keep_blank_values=True):
            if _PROTOCOL.search(name):
                params[name] = value
    return params


def base_string(method: str, url: str, params: dict[str, str]) -> str:
    """RFC 5849 signature base string (Magento Helper/Signature/Hmac)."""
    pairs = sorted(
        (rawurlencode(k), rawurlencode(v)) for k, v in params.items() if k != "oauth_signature"
    )
    norm = "&".join(f"{k}={v}" for k, v in pairs)
    return "&".join((method.upper(), rawurlencode(normalize_url(url)), rawurlencode(norm)))


def sign(
    method: str, url: str, params: dict[str, str], consumer_secret: str, token_secret: str
) -> str:
    """base64(HMAC-SHA256(key, base string)) with key ``secret&token_secret``."""
    key = f"{rawurlencode(consumer_secret)}&{rawurlencode(token_secret or '')}"
    digest = hmac.new(key.encode(), base_string(method, url, params).encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


@dataclass
class Consumer:
    """oauth_consumer row."""

    id: int
    key: str
    secret: str
    created_at: float
    updated_at: float
    nonces: set[str] = field(default_factory=set)


@dataclass
class Token:
    """oauth_token row of an integration (one per consumer; its type moves forward)."""

    consumer_id: int
    type: str  # verifier | request | access
    token: str
    secret: str
    verifier: str
    revoked: bool = False


class OauthStore:
    """Consumers, tokens and nonces of one sandbox (in memory, thread-safe)."""

    def __init__(self, clock, consumer_window_s: float = 300) -> None:
        self.clock, self.window = clock, consumer_window_s
        self.lock = threading.RLock()
        self.consumers: dict[int, Consumer] = {}
        self.by_key: dict[str, Consumer] = {}
        self.tokens: dict[str, Token] = {}
        self.by_consumer: dict[int, Token] = {}

    def create_consumer(self) -> Consumer:
        """New consumer with a 32-char key and secret."""
        with self.lock:
            now = self.clock()
            c = Consumer(len(self.consumers) + 1, random_token(), random_token(), now, now)
            self.consumers[c.id] = c
            self.by_key[c.key] = c
            return c

    def delete_consumer(self, consumer_id: int) -> None:
        """Remove a consumer and its token (integration deleted)."""
        with self.lock:
            self.delete_token(consumer_id)
            c = self.consumers.pop(consumer_id, None)
            if c:
                self.by_key.pop(c.key, None)

    def delete_token(self, consumer_id: int) -> None:
        """OauthService::deleteIntegrationToken."""
        with self.lock:
            t = self.by_consumer.pop(consumer_id, None)
            if t:
                self.tokens.pop(t.token, None)

    def create_verifier(self, consumer_id: int) -> Token:
        """postToConsumer: fresh verifier token; consumer updated_at = now (starts the window)."""
        with self.lock:
            self.delete_token(consumer_id)
            t = Token(consumer_id, "verifier", random_token(), random_token(), random_token())
            self.tokens[t.token] = t
            self.by_consumer[consumer_id] = t
            self.consumers[consumer_id].updated_at = self.clock()
            return t

    def create_access_directly(self, consumer_id: int) -> Token:
        """Admin-side token creation when no Callback/Identity URL is set."""
        with self.lock:
            t = self.create_verifier(consumer_id)
            self._rekey(t, "access")
            return t

    def _rekey(self, t: Token, new_type: str) -> None:
        self.tokens.pop(t.token, None)
        t.type, t.token, t.secret = new_type, random_token(), random_token()
        self.tokens[t.token] = t

    # ---- validation (Framework\Oauth\Oauth) ---------------------------------------------
    def _protocol(self, p: dict[str, str], required: tuple[str, ...]) -> Consumer:
        if "oauth_version" in p and p["oauth_version"] != "1.0":
            raise OauthError(400, 'The "%1" Oauth version isn\'t supported.', [p["oauth_version"]])
        missing = [r for r in required if r not in p]
        if missing:
            tmpl = '"%fieldName" is required. Enter and try again.'
            raise OauthError(400, tmpl, errors=[(tmpl, {"fieldName": m}) for m in missing])
        if "oauth_token" in p and len(p["oauth_token"]) != LENGTH:
            raise OauthError(400, "The token length is invalid. Check the length and try again.")
        if p["oauth_signature_method"] not in SUPPORTED_METHODS:
            raise OauthError(
                400, "Signature method %1 is not supported", [p["oauth_signature_method"]]
            )
        consumer = self.consumer_by_key(p["oauth_consumer_key"])
        m = re.match(r"\s*\d+", p["oauth_timestamp"])
        ts = int(m.group()) if m else 0
        if ts <= 0 or ts > self.clock() + TIME_DEVIATION:
            raise OauthError(400, "Incorrect timestamp value in the oauth_timestamp parameter")
        if p["oauth_nonce"] in consumer.nonces:
            raise OauthError(
                401,
                "The nonce is already being used by the consumer with ID %1",
                [str(consumer.id)],
            )
        consumer.nonces.add(p["oauth_nonce"])
        return consumer

    def consumer_by_key(self, key: str) -> Consumer:
        """Provider::getConsumerByKey."""
        if len(key) != LENGTH:
            raise OauthError(401, "Consumer key is not the correct length")
        c = self.by_key.get(key)
        if c is None:
            raise OauthError(401, "A consumer having the specified key does not exist")
        return c

    def _token(self, value: str) -> Token:
        if len(value) != LENGTH:
            raise OauthError(401, "Token is not the correct length")
        t = self.tokens.get(value)
        if t is None:
            raise OauthError(401, "Specified token does not exist")
        return t

    @staticmethod
    def _check_signature(p, method, url, consumer: Consumer, token_secret: str = "") -> None:
        expected = sign(method, url, p, consumer.secret, token_secret)
        if not hmac.compare_digest(expected.encode(), p["oauth_signature"].encode()):
            raise OauthError(401, "The signature is invalid. Verify and try again.")

    def request_token(self, p: dict[str, str], method: str, url: str) -> Token:
        """POST /oauth/token/request."""
        req = (
            "oauth_consumer_key",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_nonce",
            "oauth_timestamp",
        )
        with self.lock:
            consumer = self._protocol(p, req)
            if not self.clock() - consumer.updated_at < self.window:
                raise OauthError(401, "Consumer key has expired")
            self._check_signature(p, method, url, consumer)
            t = self.by_consumer.get(consumer.id)
            if t is None:
                raise OauthError(401, "A token with consumer ID %1 does not exist", [consumer.id])
            if t.type != "verifier":
                raise OauthError(
                    401,
                    "Cannot create request token because consumer token is not a verifier token",
                )
            self._rekey(t, "request")
            return t

    def access_token(self, p: dict[str, str], method: str, url: str) -> Token:
        """POST /oauth/token/access."""
        req = (
            "oauth_consumer_key",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_nonce",
            "oauth_timestamp",
            "oauth_token",
            "oauth_verifier",
        )
        with self.lock:
            consumer = self._protocol(p, req)
            t = self._token(p["oauth_token"])
            if t.consumer_id != consumer.id:
                raise OauthError(401, "Request token is not associated with the specified consumer")
            if t.type != "request":
                raise OauthError(401, "Token is already being used")
            verifier = p["oauth_verifier"]
            if len(verifier) != LENGTH:
                raise OauthError(401, "Verifier is not the correct length")
            if not hmac.compare_digest(t.verifier.encode(), verifier.encode()):
                raise OauthError(401, "Token verifier and verifier token do not match")
            self._check_signature(p, method, url, consumer, t.secret)
            self._rekey(t, "access")
            return t

    def validate_access(self, p: dict[str, str], method: str, url: str) -> Consumer:
        """Every signed REST call (validateAccessTokenRequest)."""
        req = (
            "oauth_consumer_key",
            "oauth_signature",
            "oauth_signature_method",
            "oauth_nonce",
            "oauth_timestamp",
            "oauth_token",
        )
        with self.lock:
            consumer = self._protocol(p, req)
            t = self._token(p["oauth_token"])
            if t.consumer_id != consumer.id:
                raise OauthError(401, "Token is not associated with the specified consumer")
            if t.type != "access":
                raise OauthError(401, "Token is not an access token")
            if t.revoked:
                raise OauthError(401, "Access token has been revoked")
            secret = t.secret
        self._check_signature(p, method, url, consumer, secret)
        return consumer

    def bearer(self, value: str) -> Consumer | None:
        """Consumer of an access token used as a Bearer token, or None."""
        with self.lock:
            t = self.tokens.get(value)
            if t is None or t.type != "access" or t.revoked:
                return None
            return self.consumers.get(t.consumer_id)
