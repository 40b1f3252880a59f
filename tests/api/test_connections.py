"""The JSON API creates and shows connections for the signed-in merchant only."""

from cc_storeplugin.extensions import db
from cc_storeplugin.models import StoreConnection
from tests.web.conftest import make_merchant, sign_in


def test_create_a_magento_connection_returns_its_urls(signed_in):
    resp = signed_in.post("/api/v1/connections", json={"platform": "magento"})
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["platform"] == "magento" and body["status"] == "waiting_for_store"
    key = db.session.get(StoreConnection, body["id"]).key
    assert body["callback_url"] == f"http://127.0.0.1:5000/magento/connections/{key}/callback"
    assert body["identity_link_url"].endswith(f"/magento/connections/{key}/identity")


def test_a_bad_platform_is_400_naming_the_field_and_creates_nothing(signed_in):
    resp = signed_in.post("/api/v1/connections", json={"platform": "shopify"})
    assert resp.status_code == 400
    assert "platform" in resp.get_json()["fields"]
    assert db.session.query(StoreConnection).count() == 0


def test_signed_out_is_401(client, app):
    assert client.post("/api/v1/connections", json={"platform": "magento"}).status_code == 401


def test_another_merchants_connection_is_404(client, app):
    owner, other = make_merchant("acct-a"), make_merchant("acct-b")
    conn = StoreConnection(merchant=owner, platform="magento")
    db.session.add(conn)
    db.session.commit()
    sign_in(client, other)
    assert client.get(f"/api/v1/connections/{conn.id}").status_code == 404
    assert client.get(f"/connections/{conn.id}").status_code == 404
    sign_in(client, owner)
    body = client.get(f"/api/v1/connections/{conn.id}").get_json()
    assert body["id"] == conn.id and body["progress"] is None


def test_openapi_lists_the_connection_routes(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/connections" in spec["paths"]
