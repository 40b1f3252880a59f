"""The Redis connection behind RQ: the real server from REDIS_URL, or an embedded stand-in.

With ``REDIS_URL`` unset (the demo, a laptop) the queues live in an in-process fakeredis
server owned by the app, and an :class:`EmbeddedWorker` thread runs the very same job
functions. Nothing is shared between processes in this mode: it is for one process only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis
from flask import Flask, current_app
from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

QUEUE_NAMES = ("imports", "sync", "default")


def _embedded_connection() -> redis.Redis:
    """A private in-process fakeredis server for one app, shared by its threads."""
    import fakeredis  # only the embedded mode needs it

    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@dataclass
class QueueState:
    """What ``init_app`` resolved: the connection and whether it is the embedded stand-in."""

    connection: redis.Redis
    embedded: bool


class Queues:
    """Flask extension giving the app's Redis connection and its named RQ queues."""

    def init_app(self, app: Flask) -> None:
        url = app.config.get("REDIS_URL")
        if url:
            conn = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
            state = QueueState(connection=conn, embedded=False)
        else:
            state = QueueState(connection=_embedded_connection(), embedded=True)
        app.extensions["cc_queues"] = state

    @property
    def state(self) -> QueueState:
        return current_app.extensions["cc_queues"]

    @property
    def connection(self) -> redis.Redis:
        return self.state.connection

    @property
    def embedded(self) -> bool:
        return self.state.embedded

    def get(self, name: str) -> Queue:
        if name not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {name!r}; queues are {', '.join(QUEUE_NAMES)}")
        return Queue(name, connection=self.connection, serializer=JSONSerializer)

    def all(self) -> list[Queue]:
        return [self.get(name) for name in QUEUE_NAMES]


queues = Queues()


class ThreadSafeWorker(SimpleWorker):
    """A SimpleWorker that can run outside the main thread (no signals, timer timeouts)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        """Signals belong to the main thread; the embedded runner stops through an event."""


class EmbeddedWorker:
    """Runs queued jobs in a background thread of this process (embedded mode only)."""

    def __init__(self, app: Flask, poll_s: float = 0.1) -> None:
        self.app = app
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cc-embedded-worker", daemon=True)

    def start(self) -> EmbeddedWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def drain(self) -> None:
        """Run every job that is due now (including due retries), then return."""
        with self.app.app_context():
            run_due_jobs()

    def _run(self) -> None:
        with self.app.app_context():
            while not self._stop.is_set():
                if not run_due_jobs():
                    time.sleep(self.poll_s)


def run_due_jobs() -> bool:
    """One burst over all queues after moving due scheduled jobs (retries) into them."""
    conn = queues.connection
    qs = queues.all()
    scheduler = RQScheduler(qs, connection=conn, serializer=JSONSerializer)
    if scheduler.acquire_locks():
        scheduler.enqueue_scheduled_jobs()
        scheduler.release_locks()
    worker = ThreadSafeWorker(qs, connection=conn, serializer=JSONSerializer)
    return worker.work(burst=True, logging_level="WARNING")
