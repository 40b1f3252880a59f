"""The merchant's admin side of an integration, driven through ``/_sandbox/integrations``.

Activate/Reauthorize do what TokensExchange does: (re)create the verifier token, POST
oauth_consumer_key, oauth_consumer_secret, store_base_url and oauth_verifier to the Callback
URL synchronously (5 s timeout, no redirects followed, response status ignored), then hand
back the Identity Link popup URL ``<identity_link_url>?oauth_consumer_key=…&success_call_back=…``.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import requests
from flask import Flask, Response, jsonify, request

from .state import STATUS_ACTIVE, STATUS_INACTIVE, Integration, state

POST_FAILED = (
    "The attempt to post data to consumer failed due to an unexpected error. "
    "Please try again later."
)
SUCCESS_PATH = "/admin/admin/integration/loginSuccessCallback/key/<key>/"
SUCCESS_PAGE = (
    "<!doctype html><html><head><title>Integration activated</title></head><body>"
    "<p>Integration activated</p>"
    '<script>setTimeout("self.close()",1000);</script></body></html>'
)


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"message": message}), status


def _get(integration_id: int) -> Integration | None:
    return state().integrations.get(integration_id)


def _view(i: Integration) -> dict:
    c = state().oauth.consumers.get(i.consumer_id)
    return i.public(c.key if c else None)


def create_integration() -> tuple[Response, int]:
    """Save an integration (Name, Email, Callback URL, Identity Link URL, resource access)."""
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict) or not body.get("name"):
        return _error(400, '"name" is required')
    resources = body.get("resources", "all")
    st = state()
    with st.lock:
        consumer = st.oauth.create_consumer()
        i = Integration(
            id=len(st.integrations) + 1,
            name=str(body["name"]),
            email=str(body.get("email", "")),
            endpoint=str(body.get("endpoint") or ""),
            identity_link_url=str(body.get("identity_link_url") or ""),
            consumer_id=consumer.id,
            resources=None if resources in (None, "all") else list(resources),
        )
        st.integrations[i.id] = i
    return jsonify(_view(i)), 201


def list_integrations() -> Response:
    """All integrations with their status and callback POST outcomes."""
    return jsonify({"items": [_view(i) for i in state().integrations.values()]})


def show_integration(integration_id: int) -> Response | tuple[Response, int]:
    """One integration."""
    i = _get(integration_id)
    return jsonify(_view(i)) if i else _error(404, "This integration no longer exists.")


def delete_integration(integration_id: int) -> Response | tuple[Response, int]:
    """Delete the integration: its consumer and tokens go with it."""
    st = state()
    i = st.integrations.pop(integration_id, None)
    if i is None:
        return _error(404, "This integration no longer exists.")
    st.oauth.delete_consumer(i.consumer_id)
    return jsonify({"deleted": integration_id})


def _post_to_consumer(i: Integration, host_url: str) -> dict:
    """OauthService::postToConsumer; returns the recorded outcome."""
    st = state()
    consumer = st.oauth.consumers[i.consumer_id]
    token = st.oauth.create_verifier(consumer.id)
    form = {
        "oauth_consumer_key": consumer.key,
        "oauth_consumer_secret": consumer.secret,
        "store_base_url": st.store_base_url(host_url),
        "oauth_verifier": token.verifier,
    }
    outcome: dict = {"url": i.endpoint, "at": st.now_text(), "oauth_verifier": token.verifier}
    try:
        resp = requests.post(
            i.endpoint,
            data=form,
            timeout=st.callback_timeout_s,
            allow_redirects=False,
            headers={"User-Agent": "Laminas_Http_Client"},
        )
        outcome["status"] = resp.status_code
    except requests.RequestException as exc:
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    i.posts.append(outcome)
    return outcome


def _exchange(integration_id: int, reauthorize: bool) -> Response | tuple[Response, int]:
    st = state()
    i = _get(integration_id)
    if i is None:
        return _error(404, "This integration no longer exists.")
    if reauthorize != (i.status == STATUS_ACTIVE):
        verb = "reauthorize" if i.status == STATUS_ACTIVE else "activate"
        return _error(409, f"The grid offers '{verb}' for this integration.")
    consumer = st.oauth.consumers[i.consumer_id]
    if reauthorize:
        st.oauth.delete_token(consumer.id)
        i.status = STATUS_INACTIVE
    if not (i.endpoint and i.identity_link_url):
        token = st.oauth.create_access_directly(consumer.id)
        i.status = STATUS_ACTIVE
        return jsonify(
            {
                "integration_id": i.id,
                "token_exchange": False,
                "credentials": {
                    "consumer_key": consumer.key,
                    "consumer_secret": consumer.secret,
                    "access_token": token.token,
                    "access_token_secret": token.secret,
                },
            }
        )
    outcome = _post_to_consumer(i, request.host_url)
    if "error" in outcome:
        return jsonify(
            {"integration_id": i.id, "message": POST_FAILED, "callback_post": outcome}
        ), 502
    key = secrets.token_hex(32)
    host = (st.base_url or request.host_url).rstrip("/")
    success = f"{host}{SUCCESS_PATH.replace('<key>', key)}"
    query = urlencode({"oauth_consumer_key": consumer.key, "success_call_back": success})
    return jsonify(
        {
            "integration_id": i.id,
            "token_exchange": True,
            "oauth_consumer_key": consumer.key,
            "identity_link_url": i.identity_link_url,
            "popup_url": f"{i.identity_link_url}?{query}",
            "success_call_back": success,
            "callback_post": outcome,
        }
    )


def activate(integration_id: int) -> Response | tuple[Response, int]:
    """Activate → Allow."""
    return _exchange(integration_id, reauthorize=False)


def reauthorize(integration_id: int) -> Response | tuple[Response, int]:
    """Reauthorize: old access token deleted, same consumer re-POSTed with a new verifier."""
    return _exchange(integration_id, reauthorize=True)


def success_page(key: str) -> Response:
    """loginSuccessCallback: the popup lands here and closes itself."""
    return Response(SUCCESS_PAGE, mimetype="text/html")


def register(app: Flask) -> None:
    """Add the admin control endpoints and the success_call_back page."""
    r = app.add_url_rule
    r("/_sandbox/integrations", "mg_int_create", create_integration, methods=["POST"])
    r("/_sandbox/integrations", "mg_int_list", list_integrations, methods=["GET"])
    r("/_sandbox/integrations/<int:integration_id>", "mg_int_show", show_integration)
    r(
        "/_sandbox/integrations/<int:integration_id>",
        "mg_int_delete",
        delete_integration,
        methods=["DELETE"],
    )
    r(
        "/_sandbox/integrations/<int:integration_id>/activate",
        "mg_int_activate",
        activate,
        methods=["POST"],
    )
    r(
        "/_sandbox/integrations/<int:integration_id>/reauthorize",
        "mg_int_reauth",
        reauthorize,
        methods=["POST"],
    )
    r(SUCCESS_PATH, "mg_success", success_page)
