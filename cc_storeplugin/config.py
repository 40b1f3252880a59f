"""All settings, read from the environment in one place and overridable by tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULT_CC_API_BASE_URL = "https://api.cc.email/v3"
DEFAULT_CC_AUTH_BASE_URL = "https://authz.constantcontact.com/oauth2/default/v1"


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


def instance_dir() -> Path:
    """Where local state lives (SQLite file, demo keys, outbox): $CC_INSTANCE_DIR or ./instance."""
    return Path(os.environ.get("CC_INSTANCE_DIR", "instance")).resolve()


def from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the settings dict from environment variables (names from DESIGN.md).

    Besides DESIGN's list: RUN_LOCK_TTL_S, DAILY_SYNC_HOUR_UTC, KIBO_EVENTS_INTERVAL_S and
    KIBO_UNSUBSCRIBES_INTERVAL_S (seconds between Kibo event flushes / CC unsubscribe polls,
    default 1800 each).
    """
    env = dict(os.environ if env is None else env)
    inst = Path(env.get("CC_INSTANCE_DIR", "instance")).resolve()
    public = env.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
    return {
        "INSTANCE_DIR": str(inst),
        "SQLALCHEMY_DATABASE_URI": normalize_database_url(
            env.get("DATABASE_URL") or f"sqlite:///{inst / 'cc_storeplugin.sqlite'}"
        ),
        "REDIS_URL": env.get("REDIS_URL") or None,
        "SECRET_KEY": env.get("SECRET_KEY") or None,
        "ENCRYPTION_KEY": env.get("ENCRYPTION_KEY") or None,
        "PUBLIC_BASE_URL": public,
        # Kibo Admin frames /kibo/config: over https the session cookie must be sent in a
        # third-party frame (SameSite=None requires Secure).
        **(
            {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": True}
            if public.startswith("https://")
            else {"SESSION_COOKIE_SAMESITE": "Lax"}
        ),
        "CC_API_BASE_URL": env.get("CC_API_BASE_URL", DEFAULT_CC_API_BASE_URL).rstrip("/"),
        "CC_AUTH_BASE_URL": env.get("CC_AUTH_BASE_URL", DEFAULT_CC_AUTH_BASE_URL).rstrip("/"),
        "CC_CLIENT_ID": env.get("CC_CLIENT_ID") or None,
        "CC_CLIENT_SECRET": env.get("CC_CLIENT_SECRET") or None,
        "SMTP_URL": env.get("SMTP_URL") or None,
        "KIBO_HOME_BASE_URL": env.get("KIBO_HOME_BASE_URL", "https://home.mozu.com").rstrip("/"),
        "KIBO_APPLICATION_ID": env.get("KIBO_APPLICATION_ID") or None,
        "KIBO_SHARED_SECRET": env.get("KIBO_SHARED_SECRET") or None,
        # An import attempt holds a lock on its run, extended at every checkpoint; it lapses
        # this long after a dead attempt's last checkpoint (RQ notices a dead worker later).
        "RUN_LOCK_TTL_S": int(env.get("RUN_LOCK_TTL_S", "600")),
        "DAILY_SYNC_HOUR_UTC": int(env.get("DAILY_SYNC_HOUR_UTC", "3")),
        # Kibo: seconds between event flushes and between unsubscribe polls (30 minutes by
        # default; as low as 60 for near-real-time). The cron tick runs at the smaller one.
        "KIBO_EVENTS_INTERVAL_S": int(env.get("KIBO_EVENTS_INTERVAL_S", "1800")),
        "KIBO_UNSUBSCRIBES_INTERVAL_S": int(env.get("KIBO_UNSUBSCRIBES_INTERVAL_S", "1800")),
        "SQLALCHEMY_TRACK_MODIFICATIONS": False,
    }


def normalize_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def check(settings: dict[str, Any]) -> None:
    """Refuse to start without the secrets production needs; tests and the demo supply their own."""
    if settings.get("TESTING") or settings.get("DEMO"):
        return
    missing = [name for name in ("ENCRYPTION_KEY", "SECRET_KEY") if not settings.get(name)]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not set. Generate an ENCRYPTION_KEY with `python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
            "and set SECRET_KEY to a long random string (or run `cc-storeplugin demo`, "
            "which generates both into instance/)."
        )


def ensure_local_secrets(inst: Path) -> dict[str, str]:
    """Read, or generate once, the demo's ENCRYPTION_KEY and SECRET_KEY under ``inst``."""
    import secrets

    from cryptography.fernet import Fernet

    inst.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, make in (
        ("ENCRYPTION_KEY", lambda: Fernet.generate_key().decode()),
        ("SECRET_KEY", lambda: secrets.token_urlsafe(48)),
    ):
        path = inst / name.lower().replace("_", ".")
        if not path.exists():
            path.write_text(make())
            path.chmod(0o600)
        out[name] = path.read_text().strip()
    return out
