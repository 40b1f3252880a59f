"""A Kibo merchant in headless Chromium: Kibo Admin's launch form → Log in to Constant Contact
→ Allow → the five tabs: save settings, enable, Sync Contacts, see the run in Sync Logs."""

from __future__ import annotations

import time

import pytest

from cc_storeplugin.constantcontact.client import CCClient
from cc_storeplugin.constantcontact.lists import find_or_create_list
from cc_storeplugin.extensions import db
from cc_storeplugin.models import Merchant, StoreConnection
from cc_storeplugin.sync import kibo_settings
from tests.web.test_kibo_config import TENANT, system  # noqa: F401  (the running system)

pytestmark = pytest.mark.browser


def test_a_kibo_merchant_configures_the_app_in_a_real_browser(system, chromium, tmp_path):  # noqa: F811
    context = chromium.new_context()
    page = context.new_page()
    # Kibo Admin: System > Customization > Applications > Constant Contact > Configuration.
    page.goto(f"{system.kibo.url}/_sandbox/launch?url={system.plugin_url}/kibo/config")
    page.wait_for_selector("#cc-login")
    assert page.inner_text("#tenant-id") == str(TENANT)
    assert page.locator("#tab-settings.disabled").count() == 1  # nothing but Info before login

    page.click("#cc-login")
    page.click("#allow")  # Constant Contact's "Allow Access?" page
    page.wait_for_selector("#connected")
    with system.app.app_context():
        merchant = db.session.scalars(db.select(Merchant)).one()
        conn = db.session.scalars(db.select(StoreConnection)).one()
        assert (conn.external_id, conn.merchant_id) == (str(TENANT), merchant.id)
        find_or_create_list(CCClient(merchant.id), "Kibo Newsletter")  # an existing CC list

    # Settings: type-ahead over the account's lists, welcome email, From / ReplyTo, Save.
    page.click("#tab-settings")
    assert page.is_visible("#panel-settings") and not page.is_visible("#panel-info")
    page.fill("#list-name", "newsl")
    page.click("#list-suggestions button[data-name='Kibo Newsletter']")
    assert page.input_value("#list-name") == "Kibo Newsletter"
    page.check("#welcome-email")
    options = page.eval_on_selector_all("#from-email option", "els => els.map(e => e.value)")
    assert options == ["owner@sandbox-outfitters.example", "news@sandbox-outfitters.example"]
    page.select_option("#reply-to-email", "news@sandbox-outfitters.example")
    page.click("#save-settings")
    page.wait_for_selector("#saved")
    page.screenshot(path=str(tmp_path / "settings.png"))
    with system.app.app_context():
        saved = kibo_settings.load(db.session.get(StoreConnection, conn.id))
    assert (saved.list_name, saved.welcome_email, saved.reply_to_email) == (
        "Kibo Newsletter",
        True,
        "news@sandbox-outfitters.example",
    )

    # Info: Enable App.
    page.click("#tab-info")
    page.click("#enable-app")
    page.wait_for_selector("#disable-app")
    assert page.inner_text("#app-state") == "Enabled"

    # Events: a signed customer event from Kibo is queued, with its Object Id and next run.
    sender = system.kibo.app.extensions["kibo"].events
    sender.endpoint = f"{system.plugin_url}/kibo/events"
    sender.emit("customeraccount.updated", "1001", site_id=23456)
    assert sender.wait_idle(30)
    page.click("#tab-events")
    page.click("#refresh-events")
    page.wait_for_selector("#events td.object-id")
    assert page.inner_text("#events td.object-id") == "1001"
    assert page.inner_text("#next-run").endswith("UTC")

    # Sync: To Constant Contact → Sync Contacts; From Constant Contact lists the polls.
    page.click("#tab-sync")
    assert page.inner_text("#sync-list") == "Kibo Newsletter"
    assert page.is_visible("#from-cc")
    page.click("#sync-contacts")
    page.wait_for_selector("#panel-logs:not([hidden]) #runs")

    # Sync Logs: Refresh until the run is COMPLETE with its Total Contacts.
    deadline = time.monotonic() + 120
    while page.inner_text("#runs .run-status") != "COMPLETE":
        assert page.inner_text("#runs .run-status") == "RUNNING"
        assert time.monotonic() < deadline, "the sync did not complete"
        time.sleep(0.5)
        page.click("#refresh-logs")
        page.wait_for_selector("#runs")
    assert int(page.inner_text("#runs .total")) > 0
    assert page.inner_text("#runs .kind") == "Sync Contacts"
    page.screenshot(path=str(tmp_path / "sync-logs.png"))
    errors = page.locator("#runs .errors a")  # the generated store holds invalid addresses
    count = int(errors.inner_text())
    errors.click()
    page.wait_for_selector("#run-errors")
    assert count > 0 and page.locator("#run-errors .message").count() == count
    context.close()
