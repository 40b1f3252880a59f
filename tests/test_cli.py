"""The console script lists the contract's commands and never fakes a missing feature."""

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from cc_storeplugin.cli import main
from cc_storeplugin.extensions import db
from cc_storeplugin.models import Merchant, StoreConnection
from cc_storeplugin.sync.runs import create_run, set_progress

CONTRACT = ("demo", "serve", "worker", "cron", "db", "sandbox", "import", "status")


def test_help_lists_every_command_of_the_contract():
    exe = Path(sys.executable).with_name("cc-storeplugin")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert set(CONTRACT) <= listed
    sub = CliRunner().invoke(main, ["db", "--help"])
    assert "upgrade" in sub.output


def test_import_of_an_unknown_connection_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("ENCRYPTION_KEY", _key())
    monkeypatch.setenv("SECRET_KEY", "s")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'i.sqlite'}")
    CliRunner().invoke(main, ["db", "upgrade"])
    result = CliRunner().invoke(main, ["import", "7"])
    assert result.exit_code == 1
    assert "no connection 7" in result.output


def test_status_shows_connections_and_their_latest_run(app, monkeypatch):
    merchant = Merchant(cc_account_id="acct-9")
    conn = StoreConnection(merchant=merchant, platform="magento", status="importing")
    db.session.add(conn)
    db.session.commit()
    run = create_run("import", conn.id)
    set_progress(run.id, 300, 1200, phase="customers")
    monkeypatch.setenv("DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("ENCRYPTION_KEY", os.environ.get("ENCRYPTION_KEY") or _key())
    monkeypatch.setenv("SECRET_KEY", "s")
    result = CliRunner().invoke(main, ["status", str(conn.id)])
    assert result.exit_code == 0, result.output
    assert f"connection {conn.id} [magento] importing" in result.output
    assert "25% customers 300/1,200" in result.output
    missing = CliRunner().invoke(main, ["status", "999"])
    assert missing.exit_code == 1 and "no connection 999" in missing.output


def test_worker_without_redis_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("ENCRYPTION_KEY", _key())
    monkeypatch.setenv("SECRET_KEY", "s")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'w.sqlite'}")
    result = CliRunner().invoke(main, ["worker", "--burst"])
    assert result.exit_code == 2 and "REDIS_URL is not set" in result.output


def test_db_upgrade_migrates_an_empty_database(monkeypatch, tmp_path):
    monkeypatch.setenv("ENCRYPTION_KEY", _key())
    monkeypatch.setenv("SECRET_KEY", "s")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'up.sqlite'}")
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "database at head" in result.output
    import sqlite3

    tables = {
        r[0]
        for r in sqlite3.connect(tmp_path / "up.sqlite").execute(
            "SELECT name FROM sqlite_master WHERE type='table'"
        )
    }
    assert {"merchants", "customers", "sync_runs", "consent_events"} <= tables


def test_demo_performs_the_magento_handshake_against_the_sandboxes(tmp_path):
    exe = Path(sys.executable).with_name("cc-storeplugin")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["CC_INSTANCE_DIR"] = str(tmp_path / "instance")
    proc = subprocess.run(
        [str(exe), "demo", "--customers", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "signed in with Constant Contact" in proc.stdout
    assert ": active; store view" in proc.stdout
    assert "Magento – All Customers" in proc.stdout
    assert "Subject: Your Magento import is complete" in proc.stdout
    assert "healthz 200" in proc.stdout
    assert (tmp_path / "instance" / "encryption.key").exists()


def _key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
