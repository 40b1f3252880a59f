"""Magento sandbox admin side: Activate / Reauthorize as TokensExchange does them."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests

from tests.sandbox.test_magento_oauth import Connected, make_receiver

FIELDS = {"oauth_consumer_key", "oauth_consumer_secret", "store_base_url", "oauth_verifier"}
TOKEN = re.compile(r"[a-z0-9]{32}")


def test_activation_posts_exact_form_fields_to_callback(store_factory) -> None:
    c = Connected(store_factory(customers=10), exchange=False)
    try:
        post = c.receiver.posts[0]
        assert post["ctype"] == "application/x-www-form-urlencoded"
        assert set(post["form"]) == FIELDS
        for name in ("oauth_consumer_key", "oauth_consumer_secret", "oauth_verifier"):
            assert TOKEN.fullmatch(post["form"][name]), name
        assert post["form"]["store_base_url"] == c.url + "/"
        act = c.activation
        assert act["callback_post"]["status"] == 200
        assert act["oauth_consumer_key"] == post["form"]["oauth_consumer_key"]
        popup = urlsplit(act["popup_url"])
        assert f"{popup.scheme}://{popup.netloc}{popup.path}" == "https://cc.example/identity"
        query = parse_qs(popup.query)
        assert query["oauth_consumer_key"] == [post["form"]["oauth_consumer_key"]]
        success = query["success_call_back"][0]
        assert success == act["success_call_back"]
        assert success.startswith(c.url + "/admin/admin/integration/loginSuccessCallback/key/")
        page = requests.get(success, timeout=30)
        assert page.status_code == 200 and "Integration activated" in page.text
        assert "self.close()" in page.text
    finally:
        c.close()


def test_redirects_are_not_followed_and_timeouts_fail_activation(store_factory) -> None:
    c = Connected(store_factory(customers=10), exchange=False, callback_timeout_s=0.5)
    rec = make_receiver()
    try:
        for endpoint, want in (("/redirecting", 302), ("/slow", None)):
            body = {
                "name": endpoint,
                "email": "a@example.com",
                "endpoint": rec.server.url + endpoint,
                "identity_link_url": "https://x/id",
            }
            integ = requests.post(f"{c.url}/_sandbox/integrations", json=body, timeout=30).json()
            resp = requests.post(
                f"{c.url}/_sandbox/integrations/{integ['id']}/activate", timeout=30
            )
            if want:
                assert resp.status_code == 200
                assert resp.json()["callback_post"]["status"] == want
            else:
                assert resp.status_code == 502
                assert resp.json()["message"].startswith("The attempt to post data to consumer")
                assert "Timeout" in resp.json()["callback_post"]["error"]
        assert rec.hits == []  # the 302 target was never requested
        assert len(rec.posts) == 1 and set(rec.posts[0]["form"]) == FIELDS
    finally:
        rec.server.stop()
        c.close()


def test_reauthorize_reposts_same_consumer_and_kills_old_token(store_factory) -> None:
    c = Connected(store_factory(customers=10))
    try:
        old = dict(c.access)
        first = c.creds
        assert c.rest("GET", "/rest/V1/store/websites").status_code == 200
        again = requests.post(f"{c.url}/_sandbox/integrations/1/activate", timeout=30)
        assert again.status_code == 409  # an active integration offers Reauthorize
        resp = requests.post(f"{c.url}/_sandbox/integrations/1/reauthorize", timeout=30)
        assert resp.status_code == 200
        second = c.receiver.posts[-1]["form"]
        assert second["oauth_consumer_key"] == first["oauth_consumer_key"]
        assert second["oauth_consumer_secret"] == first["oauth_consumer_secret"]
        assert second["oauth_verifier"] != first["oauth_verifier"]
        dead = c.rest("GET", "/rest/V1/store/websites", token=old)
        assert dead.status_code == 401
        assert dead.json() == {"message": "Specified token does not exist"}
        c.creds = second
        c.exchange()
        assert c.access["oauth_token"] != old["oauth_token"]
        assert c.rest("GET", "/rest/V1/store/websites").status_code == 200
    finally:
        c.close()


def test_without_urls_admin_gets_credentials_and_acl_applies(store_factory) -> None:
    c = Connected(store_factory(customers=10), exchange=False)
    try:
        body = {"name": "manual", "email": "m@example.com", "resources": ["Magento_Backend::store"]}
        integ = requests.post(f"{c.url}/_sandbox/integrations", json=body, timeout=30).json()
        resp = requests.post(
            f"{c.url}/_sandbox/integrations/{integ['id']}/activate", timeout=30
        ).json()
        assert resp["token_exchange"] is False
        creds = resp["credentials"]
        c.creds = {
            "oauth_consumer_key": creds["consumer_key"],
            "oauth_consumer_secret": creds["consumer_secret"],
        }
        token = {
            "oauth_token": creds["access_token"],
            "oauth_token_secret": creds["access_token_secret"],
        }
        assert c.rest("GET", "/rest/V1/store/websites", token=token).status_code == 200
        denied = c.rest("GET", "/rest/V1/customers/1", token=token)
        assert denied.status_code == 401
        assert denied.json()["parameters"] == {"resources": "Magento_Customer::customer"}
        gone = requests.delete(f"{c.url}/_sandbox/integrations/{integ['id']}", timeout=30)
        assert gone.status_code == 200
        after = c.rest("GET", "/rest/V1/store/websites", token=token)
        assert after.status_code == 401
    finally:
        c.close()
