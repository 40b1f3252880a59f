"""Customers of a connection and their segment transition log (JSON API)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_customers", __name__, url_prefix="/api/v1")

OPENAPI_PATHS: dict = {}
