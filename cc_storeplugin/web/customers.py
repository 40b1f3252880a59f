"""A customer's page in the dashboard: mirror facts, segments and the transition log."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("customers", __name__)
