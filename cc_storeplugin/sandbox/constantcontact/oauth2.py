"""CC's Okta-style OAuth2 server: authorization code (+ PKCE S256) and rotating refresh tokens.

``GET /oauth2/default/v1/authorize`` shows a consent page (button ``#allow``) and redirects with
``code`` and ``state``; ``POST /oauth2/default/v1/token`` takes HTTP Basic client credentials
(or a public client's ``client_id`` with PKCE) and returns Okta's token JSON. Refresh tokens
are single-use; presenting a used one is ``invalid_grant`` and revokes the whole grant family.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, redirect, request

from .consent import consent_page
from .context import Sandbox, sandbox

PREFIX = "/oauth2/default/v1"
SCOPES = {
    "contact_data",
    "campaign_data",
    "account_read",
    "account_update",
    "billing_data",
    "offline_access",
    "openid",
    "profile",
    "email",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    body = json.dumps({"error": error, "error_description": description})
    return Response(
        body,
        status=status,
        mimetype="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def redirect_allowed(client: dict[str, Any], uri: str) -> bool:
    """Registered redirect URI, or (when none are registered) any loopback http(s) URI."""
    allowed = client.get("redirect_uris")
    if allowed:
        return uri in allowed
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in LOOPBACK


def _jwt(sb: Sandbox, claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"kid": "sandbox", "alg": "HS256"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(sb.secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(sig)}"


def _issue(
    sb: Sandbox, client_id: str, account: str, scopes: list[str], family: str, public: bool
) -> dict[str, Any]:
    """Mint an access token (JWT) and, with offline_access, a new refresh token."""
    now = sb.now()
    ttl = int(sb.settings.access_token_ttl_s)
    acc = sb.account(account)
    claims = {
        "ver": 1,
        "jti": "AT." + secrets.token_urlsafe(16),
        "iss": request.host_url.rstrip("/") + "/oauth2/default",
        "aud": "https://api.cc.email/v3",
        "iat": int(now),
        "exp": int(now + ttl),
        "cid": client_id,
        "uid": acc["encoded_account_id"],
        "scp": scopes,
        "auth_time": int(now),
        "sub": acc.get("contact_email", ""),
        "platform_user_id": acc["encoded_account_id"],
    }
    token = _jwt(sb, claims)
    sb.access[token] = {
        "client_id": client_id,
        "account": account,
        "scopes": scopes,
        "exp": now + ttl,
        "family": family,
    }
    out: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": ttl,
        "access_token": token,
        "scope": " ".join(scopes),
    }
    if "offline_access" in scopes:
        rt = secrets.token_urlsafe(32)
        sb.refresh[rt] = {
            "client_id": client_id,
            "account": account,
            "scopes": scopes,
            "family": family,
            "used": False,
            "last_used": now,
            "public": public,
        }
        out["refresh_token"] = rt
    if "openid" in scopes:
        out["id_token"] = _jwt(
            sb,
            {
                "sub": acc.get("contact_email", ""),
                "aud": client_id,
                "iat": int(now),
                "exp": int(now + 3600),
                "iss": claims["iss"],
            },
        )
    return out


def lookup_access(sb: Sandbox, token: str) -> dict[str, Any] | None:
    """The grant behind a bearer token, or None if unknown, revoked or expired."""
    with sb.lock:
        rec = sb.access.get(token)
        if rec is None or rec["family"] in sb.revoked_families or sb.now() >= rec["exp"]:
            return None
        return rec


def revoke_account(sb: Sandbox, account: str | None) -> int:
    """Revoke every grant family of ``account`` (None: all); returns how many."""
    with sb.lock:
        fams = {
            r["family"]
            for r in list(sb.access.values()) + list(sb.refresh.values())
            if account is None or r["account"] == account
        }
        sb.revoked_families |= fams
        return len(fams)


def _redirect_with(uri: str, params: dict[str, str]) -> Response:
    sep = "&" if urlsplit(uri).query else "?"
    return redirect(uri + sep + urlencode(params), code=302)


def authorize() -> Response:
    """Validate the request, then show the consent page (or approve at once)."""
    sb = sandbox()
    args = {
        k: v
        for k, v in (request.form if request.method == "POST" else request.args).items()
        if k not in ("email", "decision")
    }
    client = sb.settings.clients.get(args.get("client_id", ""))
    redirect_uri = args.get("redirect_uri", "")
    if client is None:
        return Response(
            "<h1>400 invalid_client</h1><p>Invalid value for 'client_id' parameter.</p>",
            status=400,
            mimetype="text/html",
        )
    if not redirect_allowed(client, redirect_uri):
        return Response(
            "<h1>400 invalid_request</h1><p>The 'redirect_uri' parameter must be a "
            "Login redirect URI in the client app settings.</p>",
            status=400,
            mimetype="text/html",
        )
    state = args.get("state", "")
    err = _check_authorize(args)
    if err:
        return _redirect_with(
            redirect_uri, {"error": err[0], "error_description": err[1], "state": state}
        )
    accounts = sb.settings.accounts
    if request.method == "GET" and not sb.settings.auto_approve:
        return Response(
            consent_page(args, accounts[0].get("contact_email", "")), mimetype="text/html"
        )
    account = accounts[0]
    if request.method == "POST":
        if request.form.get("decision") == "deny":
            return _redirect_with(
                redirect_uri,
                {
                    "error": "access_denied",
                    "error_description": "The resource owner or authorization server "
                    "denied the request.",
                    "state": state,
                },
            )
        email = request.form.get("email", "").strip().lower()
        match = [a for a in accounts if a.get("contact_email", "").lower() == email]
        if email and not match:
            return Response(
                consent_page(args, email, "Sign in failed: unknown user."),
                status=200,
                mimetype="text/html",
            )
        account = match[0] if match else accounts[0]
    code = secrets.token_urlsafe(24)
    with sb.lock:
        sb.codes[code] = {
            "client_id": args["client_id"],
            "redirect_uri": redirect_uri,
            "account": account["encoded_account_id"],
            "scopes": args["scope"].split(),
            "exp": sb.now() + sb.settings.code_ttl_s,
            "challenge": args.get("code_challenge"),
            "used": False,
        }
    return _redirect_with(redirect_uri, {"code": code, "state": state})


def _check_authorize(args: dict[str, str]) -> tuple[str, str] | None:
    if args.get("response_type") != "code":
        return (
            "unsupported_response_type",
            "The response type is not supported by the authorization server.",
        )
    scopes = args.get("scope", "").split()
    if not scopes:
        return (
            "invalid_scope",
            "The authorization server resource does not have any configured"
            " default scopes, 'scope' must be provided.",
        )
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        return (
            "invalid_scope",
            f"One or more scopes are not configured for the authorization "
            f"server resource. Unknown: {' '.join(bad)}",
        )
    if args.get("code_challenge"):
        if args.get("code_challenge_method", "S256") != "S256":
            return ("invalid_request", "'code_challenge_method' must be 'S256'.")
        if not 43 <= len(args["code_challenge"]) <= 128:
            return ("invalid_request", "'code_challenge' is invalid.")
    return None


def _client_auth(sb: Sandbox) -> tuple[str | None, bool, Response | None]:
    """(client_id, public, error): HTTP Basic for confidential clients, body client_id else."""
    bad = _oauth_error(
        "invalid_client",
        "Client authentication failed. Either the client or the client credentials are invalid.",
        401,
    )
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        client = sb.settings.clients.get(auth.username or "")
        if client is None or not hmac.compare_digest(client["secret"], auth.password or ""):
            return None, False, bad
        return auth.username, False, None
    if "client_secret" in request.form:
        return (
            None,
            False,
            _oauth_error(
                "invalid_client",
                "Client authentication failed: client_secret_post is not allowed; use HTTP Basic.",
                401,
            ),
        )
    cid = request.form.get("client_id", "")
    if cid not in sb.settings.clients:
        return None, False, bad
    return cid, True, None


def token() -> Response:
    """Exchange an authorization code or a refresh token for tokens."""
    sb = sandbox()
    if request.mimetype != "application/x-www-form-urlencoded":
        return _oauth_error(
            "invalid_request", "Content-Type must be application/x-www-form-urlencoded."
        )
    client_id, public, err = _client_auth(sb)
    if err is not None:
        return err
    if sb.token_limiter is not None and sb.token_limiter.check(client_id or ""):
        body = {
            "errorCode": "E0000047",
            "errorSummary": "API call exceeded rate limit due to too many requests.",
            "errorLink": "E0000047",
            "errorId": secrets.token_hex(8),
            "errorCauses": [],
        }
        return Response(json.dumps(body), status=429, mimetype="application/json")
    grant = request.form.get("grant_type", "")
    with sb.lock:
        if grant == "authorization_code":
            return _code_grant(sb, client_id or "", public)
        if grant == "refresh_token":
            return _refresh_grant(sb, client_id or "", public)
    return _oauth_error(
        "unsupported_grant_type",
        "The authorization grant type is not supported by the authorization server.",
    )


def _code_grant(sb: Sandbox, client_id: str, public: bool) -> Response:
    rec = sb.codes.get(request.form.get("code", ""))
    invalid = _oauth_error("invalid_grant", "The authorization code is invalid or has expired.")
    if rec is None or rec["used"] or rec["client_id"] != client_id or sb.now() > rec["exp"]:
        return invalid
    if request.form.get("redirect_uri") != rec["redirect_uri"]:
        return _oauth_error(
            "invalid_grant",
            "The 'redirect_uri' does not match the redirection"
            " URI used in the authorization request.",
        )
    verifier = request.form.get("code_verifier")
    if rec["challenge"]:
        if not verifier:
            return _oauth_error(
                "invalid_request",
                "PKCE code verifier is required when the "
                "parameter code_challenge was included in the request.",
            )
        digest = _b64(hashlib.sha256(verifier.encode()).digest())
        if not hmac.compare_digest(digest, rec["challenge"]):
            return _oauth_error("invalid_grant", "PKCE verification failed.")
    elif public:
        return _oauth_error(
            "invalid_client", "Client authentication failed: a public client must use PKCE.", 401
        )
    rec["used"] = True
    family = secrets.token_hex(8)
    body = _issue(sb, client_id, rec["account"], rec["scopes"], family, public)
    return Response(
        json.dumps(body),
        mimetype="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _refresh_grant(sb: Sandbox, client_id: str, public: bool) -> Response:
    rt = request.form.get("refresh_token", "")
    rec = sb.refresh.get(rt)
    invalid = _oauth_error("invalid_grant", "The refresh token is invalid or expired.")
    if rec is None or rec["client_id"] != client_id or rec["family"] in sb.revoked_families:
        return invalid
    if public and not rec["public"]:
        return _oauth_error(
            "invalid_client",
            "Client authentication failed. Either the client "
            "or the client credentials are invalid.",
            401,
        )
    if rec["used"]:
        sb.revoked_families.add(rec["family"])  # reuse detected: the whole grant is revoked
        return invalid
    if sb.now() - rec["last_used"] > sb.settings.refresh_idle_ttl_s:
        return invalid
    scopes = rec["scopes"]
    asked = request.form.get("scope")
    if asked:
        wanted = asked.split()
        if not set(wanted) <= set(scopes):
            return _oauth_error(
                "invalid_scope", "The requested scope is invalid, unknown, or malformed."
            )
        scopes = wanted
    rec["used"] = True
    body = _issue(sb, client_id, rec["account"], scopes, rec["family"], rec["public"])
    return Response(
        json.dumps(body),
        mimetype="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def register(app: Flask) -> None:
    """Add the authorize and token endpoints under /oauth2/default/v1."""
    app.add_url_rule(f"{PREFIX}/authorize", "cc_authorize", authorize, methods=["GET", "POST"])
    app.add_url_rule(f"{PREFIX}/token", "cc_token", token, methods=["POST"])
