"""Settings come from the environment in one place and tests can override any of them."""

import pytest
from cryptography.fernet import Fernet

from cc_storeplugin import config
from cc_storeplugin.app import create_app


def test_environment_names_from_the_design_are_read():
    env = {
        "DATABASE_URL": "postgres://u@db.example:5432/cc",
        "REDIS_URL": "redis://cache:6379/2",
        "PUBLIC_BASE_URL": "https://plugin.example/",
        "CC_API_BASE_URL": "http://127.0.0.1:9000/v3/",
        "KIBO_APPLICATION_ID": "acme.cc.1.0.0.Release",
    }
    s = config.from_env(env)
    assert s["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example:5432/cc"
    assert s["REDIS_URL"] == "redis://cache:6379/2"
    assert s["PUBLIC_BASE_URL"] == "https://plugin.example"
    assert s["CC_API_BASE_URL"] == "http://127.0.0.1:9000/v3"
    assert s["CC_AUTH_BASE_URL"] == config.DEFAULT_CC_AUTH_BASE_URL
    assert s["KIBO_APPLICATION_ID"] == "acme.cc.1.0.0.Release"


def test_defaults_are_embedded_sqlite_and_no_redis(tmp_path):
    s = config.from_env({"CC_INSTANCE_DIR": str(tmp_path)})
    assert s["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'cc_storeplugin.sqlite'}"
    assert s["REDIS_URL"] is None
    assert s["CC_API_BASE_URL"] == "https://api.cc.email/v3"


def test_overrides_win_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://from-env.example")
    app = create_app(
        {
            "TESTING": True,
            "PUBLIC_BASE_URL": "https://override.example",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}",
            "REDIS_URL": None,
        }
    )
    assert app.config["PUBLIC_BASE_URL"] == "https://override.example"


def test_production_without_encryption_key_refuses_to_start(monkeypatch, tmp_path):
    monkeypatch.delenv("ENCRYPTION_KEY", raising=False)
    monkeypatch.setenv("SECRET_KEY", "s")
    monkeypatch.setenv("CC_INSTANCE_DIR", str(tmp_path))
    with pytest.raises(config.ConfigError, match="ENCRYPTION_KEY not set"):
        create_app()


def test_a_malformed_encryption_key_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="ENCRYPTION_KEY must be a urlsafe base64 Fernet key"):
        create_app(
            {
                "ENCRYPTION_KEY": "not-a-key",
                "SECRET_KEY": "s",
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}",
            }
        )


def test_local_secrets_are_generated_once_and_kept(tmp_path):
    first = config.ensure_local_secrets(tmp_path)
    second = config.ensure_local_secrets(tmp_path)
    assert first == second
    Fernet(first["ENCRYPTION_KEY"])  # a valid key
    assert oct((tmp_path / "encryption.key").stat().st_mode)[-3:] == "600"


def test_creating_an_app_does_not_touch_the_database(tmp_path):
    db_file = tmp_path / "never.sqlite"
    create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_file}"})
    assert not db_file.exists()


def test_over_https_the_session_cookie_works_inside_kibo_admins_frame():
    https = config.from_env({"PUBLIC_BASE_URL": "https://plugin.example.com"})
    local = config.from_env({"PUBLIC_BASE_URL": "http://127.0.0.1:5000"})
    assert (https["SESSION_COOKIE_SAMESITE"], https["SESSION_COOKIE_SECURE"]) == ("None", True)
    assert local["SESSION_COOKIE_SAMESITE"] == "Lax" and "SESSION_COOKIE_SECURE" not in local


@pytest.mark.postgres
def test_workers_commit_asynchronously_and_the_web_app_does_not(pg_database_url, tmp_path):
    from sqlalchemy import text

    from cc_storeplugin.extensions import db

    def setting(**extra):
        app = create_app({"SQLALCHEMY_DATABASE_URI": pg_database_url, "TESTING": True, **extra})
        with app.app_context():
            value = db.session.scalar(text("SHOW synchronous_commit"))
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()
        return value

    assert setting(DB_ASYNC_COMMIT=True) == "off"
    assert setting() == "on"
