"""A scripted merchant: the Magento integration journey driven over HTTP, for the demo and tests.

It does what the merchant's browser and Magento's admin do, in order: sign in with
Constant Contact, click Connect Magento, paste the two URLs into a new integration,
Activate → Allow, select the store, Complete Integration.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from html import unescape
from urllib.parse import urljoin

import requests

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Handshake:
    connection_id: int
    consumer_key: str
    integration_id: int
    success_call_back: str
    final_url: str


def _value(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}" value="([^"]+)"', html)
    if not m:
        raise AssertionError(f"page has no #{element_id}")
    return unescape(m.group(1))


def _csrf(html: str) -> str:
    m = CSRF.search(html)
    if not m:
        raise AssertionError("page has no csrf_token")
    return m.group(1)


def sign_in(browser: requests.Session, plugin_url: str) -> None:
    """Sign in with Constant Contact (the sandbox's consent page: click Allow)."""
    resp = browser.get(f"{plugin_url}/auth/constantcontact/login", timeout=30)
    if 'id="allow"' in resp.text:  # the consent page: submit its form like a click on Allow
        action = re.search(r'<form[^>]*action="([^"]*)"', resp.text)
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', resp.text))
        target = urljoin(resp.url, unescape(action.group(1))) if action else resp.url
        form = {k: unescape(v) for k, v in fields.items()} | {"decision": "allow"}
        resp = browser.post(target, data=form, timeout=30)
    resp.raise_for_status()
    if "Sign out" not in resp.text:
        raise AssertionError(f"sign-in did not complete: {resp.url}")


def connect_magento(
    browser: requests.Session,
    plugin_url: str,
    magento_url: str,
    *,
    store_code: str | None = None,
    timeout_s: float = 60,
) -> Handshake:
    """Connect Magento through the plugin's pages and the Magento sandbox's admin."""
    home = browser.get(f"{plugin_url}/", timeout=30).text
    page = browser.post(
        f"{plugin_url}/connections/magento", data={"csrf_token": _csrf(home)}, timeout=30
    )
    page.raise_for_status()
    connection_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    callback_url, identity_url = (
        _value(page.text, "callback-url"),
        _value(page.text, "identity-link-url"),
    )
    admin = requests.post(
        f"{magento_url}/_sandbox/integrations",
        json={
            "name": "Constant Contact",
            "email": "owner@shop.example",
            "endpoint": callback_url,
            "identity_link_url": identity_url,
        },
        timeout=30,
    )
    admin.raise_for_status()
    integration_id = admin.json()["id"]
    activation = requests.post(
        f"{magento_url}/_sandbox/integrations/{integration_id}/activate", timeout=30
    ).json()
    if "error" in activation.get("callback_post", {}):
        raise AssertionError(f"Magento could not post to the Callback URL: {activation}")
    popup = browser.get(activation["popup_url"], timeout=30)
    fields = {
        "csrf_token": _csrf(popup.text),
        "step": "allow",
        "oauth_consumer_key": activation["oauth_consumer_key"],
        "success_call_back": activation["success_call_back"],
    }
    page = browser.post(popup.url, data=fields, timeout=30)
    deadline = time.monotonic() + timeout_s
    while 'id="complete"' not in page.text:
        if 'id="waiting"' not in page.text or time.monotonic() > deadline:
            raise AssertionError(
                f"the popup did not offer the store selection:\n{page.text[:2000]}"
            )
        time.sleep(0.2)
        refresh = re.search(r'url=([^"]+)"', page.text).group(1)
        page = browser.get(urljoin(page.url, unescape(refresh)), timeout=30)
    codes = re.findall(r'name="store_code" value="([^"]+)"', page.text)
    fields.update(step="complete", store_code=store_code or codes[0])
    done = browser.post(page.url, data=fields, timeout=30, allow_redirects=False)
    if done.status_code != 303:
        raise AssertionError(f"Complete Integration answered {done.status_code}: {done.text[:500]}")
    final = browser.get(done.headers["Location"], timeout=30)
    return Handshake(
        connection_id,
        activation["oauth_consumer_key"],
        integration_id,
        activation["success_call_back"],
        final.url,
    )
