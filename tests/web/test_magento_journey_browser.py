"""A merchant in headless Chromium: sign in → Connect Magento → Allow → select store → Complete."""

import pytest
import requests

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection
from tests.web.test_magento_journey import stack  # noqa: F401  (the running system)

pytestmark = pytest.mark.browser


def test_the_merchant_connects_magento_in_a_real_browser(stack, chromium, tmp_path):  # noqa: F811
    context = chromium.new_context()
    page = context.new_page()
    page.goto(stack.plugin_url + "/")
    page.click("#sign-in")
    page.click("#allow")  # Constant Contact's consent page
    page.wait_for_selector("#connect-magento")
    page.click("#connect-magento")
    callback_url = page.input_value("#callback-url")
    identity_url = page.input_value("#identity-link-url")
    assert page.inner_text("#integration-name") == "Constant Contact"
    assert "Magento_Sales::actions_view" in page.inner_text("#resources")
    page.click("button[data-copy='#callback-url']")
    page.wait_for_function(
        "document.querySelector(\"button[data-copy='#callback-url']\").textContent === 'Copied'"
    )

    # Magento's admin: Save & Activate posts to the Callback URL, then opens the popup.
    created = requests.post(
        f"{stack.magento.url}/_sandbox/integrations",
        json={
            "name": "Constant Contact",
            "endpoint": callback_url,
            "identity_link_url": identity_url,
        },
        timeout=30,
    ).json()
    activation = requests.post(
        f"{stack.magento.url}/_sandbox/integrations/{created['id']}/activate", timeout=30
    ).json()
    popup = context.new_page()
    popup.goto(activation["popup_url"])
    popup.click("#allow")
    popup.wait_for_selector("#complete", timeout=30_000)
    popup.click("#complete")
    popup.wait_for_url(activation["success_call_back"], timeout=30_000)
    popup.screenshot(path=str(tmp_path / "popup-done.png"))

    page.reload()
    assert page.inner_text("#status") == "importing"
    connection_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    with stack.app.app_context():
        assert db.session.get(StoreConnection, connection_id).status == "importing"
    context.close()
