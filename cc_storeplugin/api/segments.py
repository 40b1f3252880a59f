"""Custom segments of a connection: CRUD and preview (JSON API)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_segments", __name__, url_prefix="/api/v1")

OPENAPI_PATHS: dict = {}
