"""GET /api/v1/openapi.json: the API's description, built from the routes and schemas."""

from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1")

_CONNECTION = {"$ref": "#/components/schemas/Connection"}
SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "cc_storeplugin merchant API", "version": "1"},
    "paths": {
        "/api/v1/connections": {
            "get": {
                "summary": "The signed-in merchant's connections",
                "responses": {"200": {"description": "connections"}},
            },
            "post": {
                "summary": "Create a connection",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["platform"],
                                "properties": {"platform": {"type": "string", "enum": ["magento"]}},
                            }
                        }
                    }
                },
                "responses": {
                    "201": {
                        "description": "created",
                        "content": {"application/json": {"schema": _CONNECTION}},
                    },
                    "400": {"description": "invalid field"},
                    "401": {"description": "not signed in"},
                },
            },
        },
        "/api/v1/connections/{id}": {
            "get": {
                "summary": "A connection with its progress",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": {
                        "description": "the connection",
                        "content": {"application/json": {"schema": _CONNECTION}},
                    },
                    "404": {"description": "not yours or not there"},
                },
            },
        },
    },
    "components": {
        "schemas": {
            "Connection": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "platform": {"type": "string"},
                    "status": {"type": "string"},
                    "callback_url": {"type": "string"},
                    "identity_link_url": {"type": "string"},
                    "progress": {"type": "object", "nullable": True},
                    "last_run": {"type": "object", "nullable": True},
                },
            }
        }
    },
}


# Each API module describes its own routes in OPENAPI_PATHS; the spec merges them.
PATH_MODULES = ("cc_storeplugin.api.segments", "cc_storeplugin.api.customers")


def build_spec() -> dict:
    """The whole description: the connection routes above plus every module's OPENAPI_PATHS."""
    from importlib import import_module

    spec = {**SPEC, "paths": dict(SPEC["paths"])}
    for name in PATH_MODULES:
        spec["paths"].update(getattr(import_module(name), "OPENAPI_PATHS", {}))
    return spec


@bp.get("/openapi.json")
def openapi():
    return jsonify(build_spec())
