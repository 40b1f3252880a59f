"""manifests/kibo_app.json subscribes to the right topics and points at real routes."""

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "kibo_app.json"
WEBHOOKS = Path("/work/shared/specs/openapi/kibo-webhooks.json")
BASE = "https://plugin.example"


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def _url(name: str) -> dict:
    return next(u for u in _manifest()["urls"] if u["name"] == name)


def _route(app, entry: dict) -> str:
    url = entry["url"].format(PUBLIC_BASE_URL=BASE)
    endpoint, _ = app.url_map.bind("plugin.example").match(
        urlsplit(url).path, method=entry["method"]
    )
    return endpoint


def test_the_manifest_subscribes_to_lifecycle_customer_order_and_cart_topics():
    events = _manifest()["events_handler"]["events"]
    assert events == [
        "application.installed",
        "application.upgraded",
        "application.enabled",
        "application.disabled",
        "application.uninstalled",
        "customeraccount.created",
        "customeraccount.updated",
        "customeraccount.deleted",
        "order.closed",
        "cart.created",
        "cart.updated",
        "cart.deleted",
    ]


@pytest.mark.skipif(not WEBHOOKS.exists(), reason="specs/openapi not present")
def test_every_subscribed_topic_is_spelled_as_in_the_kibo_webhooks_spec():
    spec = WEBHOOKS.read_text()
    for topic in _manifest()["events_handler"]["events"]:
        assert f'"{topic}"' in spec, topic


def test_the_event_endpoint_is_the_kibo_events_route(app):
    manifest = _manifest()
    assert manifest["events_handler"]["endpoint"] == _url("event_endpoint")["url"]
    assert _route(app, _url("event_endpoint")) == "kibo_events.receive"


def test_the_configuration_url_is_listed():
    manifest = _manifest()
    assert manifest["application"]["config_url"] == "{PUBLIC_BASE_URL}/kibo/config"
    assert _url("config_url")["url"] == manifest["application"]["config_url"]


def test_the_configuration_url_maps_to_a_real_route(app):
    entry = _url("config_url")
    assert entry["method"] == "POST"  # Kibo Admin opens it with a signed form POST
    assert _route(app, entry) == "kibo_config.launch"
    assert _route(app, {**entry, "method": "GET"}) == "kibo_config.page"


def test_every_other_manifest_url_maps_to_a_real_route(app):
    for entry in _manifest()["urls"]:
        if entry["name"] != "config_url":
            assert _route(app, entry), entry
