"""The Flask application factory: settings, extensions, blueprints; nothing else."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from cc_storeplugin import config as settings
from cc_storeplugin.extensions import db, migrate, queues, secretbox

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build an app from the environment, with ``config`` overriding any setting."""
    app = Flask(__name__, template_folder="web/templates", static_folder="web/static")
    app.config.update(settings.from_env())
    app.config.update(config or {})
    settings.check(app.config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)  # tests and demo only (see check)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.config["SQLALCHEMY_DATABASE_URI"][len("sqlite:///") :]).parent.mkdir(
            parents=True, exist_ok=True
        )

    import cc_storeplugin.models  # noqa: F401  (registers every table on the metadata)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    secretbox.init_app(app)
    queues.init_app(app)

    from cc_storeplugin.web import register_web

    register_web(app)
    return app
