"""The whole system on loopback: CC and Magento sandboxes plus the plugin, for demo and tests.

The plugin runs with its embedded queue and an in-process worker thread unless a
``REDIS_URL`` is given in ``plugin_config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask

from cc_storeplugin.sandbox.server import RunningServer, serve_in_thread

CC_CLIENT_ID = "sandbox-client"
CC_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - the sandbox's published demo client


@dataclass
class Stack:
    """Running servers; ``stop()`` shuts everything down."""

    plugin: RunningServer
    cc: RunningServer
    magento: RunningServer
    app: Flask
    worker: Any = None
    extra: list[RunningServer] = field(default_factory=list)

    @property
    def plugin_url(self) -> str:
        return self.plugin.url

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        for server in (self.plugin, self.cc, self.magento, *self.extra):
            server.stop()


def start_stack(
    store_path: str | Path,
    plugin_config: dict[str, Any],
    *,
    cc_options: dict[str, Any] | None = None,
    magento_options: dict[str, Any] | None = None,
    start_worker: bool = True,
) -> Stack:
    """Start the CC sandbox, the Magento sandbox over ``store_path`` and the plugin."""
    from cc_storeplugin import sandbox  # noqa: F401  (package docstring lists the servers)
    from cc_storeplugin.app import create_app
    from cc_storeplugin.queueing import EmbeddedWorker
    from cc_storeplugin.sandbox.constantcontact import create_app as cc_app
    from cc_storeplugin.sandbox.magento import create_app as magento_app

    cc = serve_in_thread(cc_app(**(cc_options or {})))
    magento = serve_in_thread(magento_app(store=str(store_path), **(magento_options or {})))
    settings = {
        "CC_API_BASE_URL": f"{cc.url}/v3",
        "CC_AUTH_BASE_URL": f"{cc.url}/oauth2/default/v1",
        "CC_CLIENT_ID": CC_CLIENT_ID,
        "CC_CLIENT_SECRET": CC_CLIENT_SECRET,
        **plugin_config,
    }
    app = create_app(settings)
    plugin = serve_in_thread(app)
    app.config["PUBLIC_BASE_URL"] = plugin.url
    worker = None
    if start_worker and not app.config.get("REDIS_URL"):
        worker = EmbeddedWorker(app).start()
    return Stack(plugin=plugin, cc=cc, magento=magento, app=app, worker=worker)
