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

    if app.config.get("DB_ASYNC_COMMIT"):
        _commit_asynchronously(app)

    import cc_storeplugin.models  # noqa: F401  (registers every table on the metadata)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    secretbox.init_app(app)
    queues.init_app(app)

    from cc_storeplugin.web import register_web

    register_web(app)
    return app


def _commit_asynchronously(app: Flask) -> None:
    """Workers: PostgreSQL sessions with ``synchronous_commit=off``.

    A job commits its data and its checkpoint together, so a database crash can only take
    back the last fraction of a second of both: the job resumes from the earlier checkpoint
    and nothing is lost or doubled. The web process keeps synchronous commits (an
    acknowledged Kibo event must be on disk).
    """
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    connect_args["options"] = f"{connect_args.get('options', '')} -c synchronous_commit=off"
    options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
