"""The OpenAPI/Swagger loader the sandbox tests validate response bodies with."""

from __future__ import annotations

import pytest
from jsonschema import ValidationError

from tests.sandbox.openapi import (
    load_spec,
    match_path,
    operations,
    request_validator,
    response_validator,
    schema_validator,
)

MAGENTO = "magento-admin-2.4.9.yaml"
CC = "constantcontact-v3-swagger-3.0.172.yaml"
KIBO_CUSTOMER = "kibo-openapi_customer.json"
KIBO_APPDEV = "kibo-openapi_appdevelopement.json"
KIBO_WEBHOOKS = "kibo-webhooks.json"


def magento_search_body() -> dict:
    return {
        "items": [
            {
                "id": 1,
                "group_id": 1,
                "email": "a@example.com",
                "firstname": "Ann",
                "lastname": "Lee",
                "store_id": 1,
                "website_id": 1,
                "created_at": "2024-01-01 10:00:00",
                "extension_attributes": {"is_subscribed": True},
                "addresses": [],
            }
        ],
        "search_criteria": {"filter_groups": [], "page_size": 20, "current_page": 1},
        "total_count": 1,
    }


def test_magento_customer_search_valid_and_wrong_types():
    check = response_validator(MAGENTO, "/V1/customers/search", "GET", 200)
    check(magento_search_body())
    bad = magento_search_body()
    bad["total_count"] = "1"
    with pytest.raises(ValidationError):
        check(bad)
    bad = magento_search_body()
    bad["items"][0]["id"] = "1"  # nested through $ref into customer-data-customer-interface
    with pytest.raises(ValidationError):
        check(bad)
    bad = magento_search_body()
    del bad["items"][0]["email"]  # required
    with pytest.raises(ValidationError):
        check(bad)


def test_concrete_paths_match_templates():
    assert match_path(MAGENTO, "/rest/default/V1/customers/search") == "/V1/customers/search"
    assert match_path(MAGENTO, "/rest/V1/customers/search") == "/V1/customers/search"
    assert match_path(MAGENTO, "/rest/all/V1/carts/5/totals") == "/V1/carts/{cartId}/totals"
    assert match_path(CC, "/v3/contacts/8a1c") == "/contacts/{contact_id}"
    assert match_path(KIBO_CUSTOMER, "/api/commerce/customer/accounts/1001") == (
        "/commerce/customer/accounts/{accountId}"
    )
    with pytest.raises(KeyError):
        match_path(CC, "/v3/no-such-thing")


def test_magento_error_body_and_default_response():
    check = response_validator(MAGENTO, "/V1/customers/search", "get", 401)
    check({"message": "The consumer isn't authorized to access %resources."})
    with pytest.raises(ValidationError):
        check({"error": "nope"})  # "message" is required
    # 404 is not listed: the operation's "default" response applies.
    response_validator(MAGENTO, "/V1/customers/search", "get", 404)({"message": "x"})


def test_constant_contact_contacts_collection():
    check = response_validator(CC, "/contacts", "get", 200)
    body = {
        "contacts": [
            {
                "contact_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                "email_address": {"address": "a@example.com", "permission_to_send": "implicit"},
                "first_name": "Ann",
                "update_source": "Account",
                "list_memberships": ["07936f78-662a-11eb-af0a-fa163e56c9b0"],
            }
        ],
        "contacts_count": 1,
        "_links": {"next": {"href": "/v3/contacts?cursor=abc"}},
    }
    check(body)
    with pytest.raises(ValidationError):
        check({**body, "contacts_count": "1"})
    with pytest.raises(ValidationError):
        check({**body, "contacts": [{**body["contacts"][0], "list_memberships": "x"}]})


def test_kibo_nullable_fields_and_types():
    check = response_validator(KIBO_CUSTOMER, "/commerce/customer/accounts", "GET", 200)
    account = {
        "id": 1001,
        "emailAddress": "a@example.com",
        "firstName": None,  # nullable in the description
        "lastName": "Lee",
        "acceptsMarketing": True,
        "isAnonymous": False,
    }
    body = {"startIndex": 0, "pageSize": 20, "pageCount": 1, "totalCount": 1, "items": [account]}
    check(body)
    check({**body, "items": None})
    with pytest.raises(ValidationError):
        check({**body, "totalCount": "1"})
    with pytest.raises(ValidationError):
        check({**body, "items": [{**account, "acceptsMarketing": "yes"}]})
    with pytest.raises(ValidationError):
        check({**body, "items": [{**account, "id": None}]})  # id comes via allOf, not nullable


def test_kibo_auth_ticket_and_request_bodies():
    check = response_validator(KIBO_APPDEV, "/platform/applications/authtickets", "post", 200)
    ticket = {
        "accessToken": "abc",
        "accessTokenExpiration": "2026-01-01T00:00:00Z",
        "refreshToken": "def",
        "refreshTokenExpiration": "2026-01-02T00:00:00Z",
    }
    check(ticket)
    with pytest.raises(ValidationError):
        check({**ticket, "accessToken": 5})
    ask = request_validator(KIBO_APPDEV, "/platform/applications/authtickets", "post")
    ask({"applicationId": "t.app.1.0.0.Release", "sharedSecret": "s"})
    with pytest.raises(ValidationError):
        ask({"applicationId": 1})
    event = request_validator(KIBO_WEBHOOKS, "/ApplicationEvents/ApplicationInstalled", "post")
    event({"eventId": "e1", "topic": "application.installed", "entityId": "x", "isTest": False})
    with pytest.raises(ValidationError):
        event({"topic": "application.disabled"})  # enum


def test_named_schemas_and_operations():
    schema_validator(MAGENTO, "error-response")({"message": "m"})
    with pytest.raises(ValidationError):
        schema_validator(CC, "Contacts")({"contacts": {}})
    with pytest.raises(KeyError):
        schema_validator(CC, "NoSuchThing")
    ops = operations(CC)
    assert ("POST", "/activities/contacts_json_import") in ops
    assert ("GET", "/contacts") in ops


def test_specs_are_parsed_once():
    assert load_spec(MAGENTO) is load_spec(MAGENTO)
    assert response_validator(CC, "/contacts", "get", 200) is response_validator(
        CC, "/contacts", "get", 200
    )
