"""POST /oauth/token/request and /oauth/token/access (frontend routes under store_base_url).

Replies are form-encoded (``oauth_token=…&oauth_token_secret=…``); failures are
``oauth_problem=<message>`` with 401 (Oauth\\Exception) or 400 (OauthInputException).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask, Response, request
from werkzeug.routing import BaseConverter

from .oauth1 import OauthError, extract_params, request_url
from .state import STATUS_ACTIVE, state


class FrontBase(BaseConverter):
    """Optional ``index.php/`` and store-code segments before a frontend route."""

    regex = r"(?:index\.php/)?(?:[A-Za-z0-9_]+/)?"
    part_isolating = False


def _reply(body: dict, status: int = 200) -> Response:
    return Response(urlencode(body), status=status, content_type="text/html; charset=UTF-8")


def _known_prefix(base: str) -> bool:
    code = base.removeprefix("index.php/").rstrip("/")
    return code == "" or any(code == v["code"] for v in state().stores)


def token_request(base: str = "") -> Response:
    """Request token from the verifier token, within the consumer window."""
    if not _known_prefix(base):
        return Response("Not Found", status=404)
    st = state()
    url = request_url(request)
    try:
        t = st.oauth.request_token(extract_params(request, url), request.method, url)
    except OauthError as exc:
        return _reply({"oauth_problem": exc.rendered()}, exc.status)
    return _reply({"oauth_token": t.token, "oauth_token_secret": t.secret})


def token_access(base: str = "") -> Response:
    """Access token from the request token and oauth_verifier; activates the integration."""
    if not _known_prefix(base):
        return Response("Not Found", status=404)
    st = state()
    url = request_url(request)
    try:
        t = st.oauth.access_token(extract_params(request, url), request.method, url)
    except OauthError as exc:
        return _reply({"oauth_problem": exc.rendered()}, exc.status)
    for integ in st.integrations.values():
        if integ.consumer_id == t.consumer_id:
            integ.status = STATUS_ACTIVE
    return _reply({"oauth_token": t.token, "oauth_token_secret": t.secret})


def register(app: Flask) -> None:
    """Add the two token endpoints (POST only, like Magento's controllers)."""
    app.url_map.converters["mgfront"] = FrontBase
    app.add_url_rule(
        "/<mgfront:base>oauth/token/request", "mg_token_request", token_request, methods=["POST"]
    )
    app.add_url_rule(
        "/<mgfront:base>oauth/token/access", "mg_token_access", token_access, methods=["POST"]
    )
