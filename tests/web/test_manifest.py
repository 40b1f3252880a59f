"""manifests/magento_integration.json describes routes that really exist."""

import json
from pathlib import Path
from urllib.parse import urlsplit

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "magento_integration.json"


def test_every_manifest_url_maps_to_a_real_route(app):
    manifest = json.loads(MANIFEST.read_text())
    adapter = app.url_map.bind("plugin.example")
    assert manifest["urls"], "the manifest lists its URLs"
    for entry in manifest["urls"]:
        url = entry["url"].format(PUBLIC_BASE_URL="https://plugin.example", connection_key="k3y")
        endpoint, _ = adapter.match(urlsplit(url).path, method=entry["method"])
        assert endpoint, entry
    integration = manifest["integration"]
    assert integration["callback_url"] == manifest["urls"][0]["url"]
    assert "?" not in integration["identity_link_url"]  # Magento appends its own query


def test_the_manifest_resources_are_the_ones_the_connection_page_asks_for(app):
    from cc_storeplugin.platforms.magento.handshake import RESOURCES

    manifest = json.loads(MANIFEST.read_text())
    assert manifest["resource_access"] == [r for r, _ in RESOURCES]
