"""Fixtures for web tests: merchants, a signed-in test client."""

import pytest

from cc_storeplugin.extensions import db
from cc_storeplugin.models import Merchant
from tests.sandbox.conftest import store_factory  # noqa: F401  (generated stores)


def make_merchant(account: str = "acct-1", **fields) -> Merchant:
    merchant = Merchant(cc_account_id=account, name=f"Shop {account}", **fields)
    db.session.add(merchant)
    db.session.commit()
    return merchant


def sign_in(client, merchant: Merchant) -> str:
    """Put the merchant in the client's session; returns the session's CSRF token."""
    with client.session_transaction() as sess:
        sess["merchant_id"] = merchant.id
        sess["csrf_token"] = "test-csrf"
    return "test-csrf"


@pytest.fixture
def merchant(app):
    return make_merchant()


@pytest.fixture
def signed_in(client, merchant):
    sign_in(client, merchant)
    return client


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright (installed by `make test`)."""
    import os

    if not os.path.exists(CHROMIUM):
        if os.environ.get("CC_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{CHROMIUM} missing (CC_REQUIRE_SERVICES=1)")
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
