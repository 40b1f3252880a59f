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


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
