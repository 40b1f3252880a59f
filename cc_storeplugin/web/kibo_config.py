"""GET,POST /kibo/config: the configuration page Kibo Admin opens (five tabs)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("kibo_config", __name__, url_prefix="/kibo")
