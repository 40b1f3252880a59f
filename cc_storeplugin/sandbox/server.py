"""Run a WSGI app on a loopback port in a background thread (tests, benchmarks, demo)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from werkzeug.serving import BaseWSGIServer, make_server


@dataclass
class RunningServer:
    """A server started by :func:`serve_in_thread`; ``url`` has no trailing slash."""

    server: BaseWSGIServer
    thread: threading.Thread
    app: object = field(repr=False)

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_in_thread(app, port: int = 0, host: str = "127.0.0.1") -> RunningServer:
    """Serve ``app`` with a threaded werkzeug server; port 0 picks a free port."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"sandbox-{port}", daemon=True)
    thread.start()
    return RunningServer(server=server, thread=thread, app=app)
