"""Magento's integration handshake, the plugin's side: URLs, callback validation, host checks.

Facts: specs/magento.md §1 (Callback POST fields, 32-char lowercase alphanumerics, the
Identity Link popup with ``oauth_consumer_key`` and ``success_call_back``) and §5.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates

TOKEN = validate.Regexp(r"^[a-z0-9]{32}$", error="must be 32 lowercase letters or digits")
INTEGRATION_NAME = "Constant Contact"
RESOURCES = (
    ("Magento_Customer::customer", "read customers"),
    ("Magento_Customer::manage", "update newsletter subscription (unsubscribe sync-back)"),
    ("Magento_Sales::actions_view", "read orders"),
    ("Magento_Cart::manage", "read carts (abandoned-cart reminders)"),
)


class CallbackForm(Schema):
    """The form Magento POSTs to the Callback URL when the admin clicks Activate / Allow."""

    class Meta:
        unknown = EXCLUDE

    oauth_consumer_key = fields.String(required=True, validate=TOKEN)
    oauth_consumer_secret = fields.String(required=True, validate=TOKEN)
    oauth_verifier = fields.String(required=True, validate=TOKEN)
    store_base_url = fields.String(required=True)

    @validates("store_base_url")
    def _url(self, value: str, **_: Any) -> None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError("must be an http(s) URL of the store, e.g. https://shop.example/")


def parse_callback(form: dict[str, str]) -> dict[str, str]:
    """Validated callback fields; raises ``ValidationError`` naming the bad fields."""
    data = CallbackForm().load(dict(form))
    data["store_base_url"] = data["store_base_url"].strip()
    return data


def first_error(err: ValidationError) -> tuple[str, str]:
    """(field, message) of the first problem, for a 400 that names the field."""
    field = sorted(err.messages)[0]
    msgs = err.messages[field]
    return field, msgs[0] if isinstance(msgs, list) else str(msgs)


def is_insecure(store_base_url: str) -> bool:
    """Magento labels http:// integrations "not secure"; we accept them with a warning."""
    return urlsplit(store_base_url).scheme == "http"


def same_store_host(success_call_back: str, store_base_url: str) -> bool:
    """``success_call_back`` must be on the store's own host (no open redirect)."""
    back, store = urlsplit(success_call_back), urlsplit(store_base_url)
    return (
        back.scheme in ("http", "https")
        and bool(back.hostname)
        and back.hostname == store.hostname
        and (back.port or _default_port(back.scheme)) == (store.port or _default_port(store.scheme))
    )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def selectable_stores(store_views: list[dict], websites: list[dict]) -> list[dict[str, Any]]:
    """Store views a merchant can pick (not the admin view), labelled with their website."""
    site_names = {w.get("id"): w.get("name") for w in websites}
    out = []
    for view in store_views:
        if view.get("code") == "admin" or view.get("id") == 0:
            continue
        out.append(
            {
                "code": view["code"],
                "name": view.get("name") or view["code"],
                "store_id": view.get("id"),
                "website_id": view.get("website_id"),
                "website": site_names.get(view.get("website_id"), ""),
            }
        )
    return out
