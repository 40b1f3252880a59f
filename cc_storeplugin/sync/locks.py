"""A per-connection Redis lock, so two workers never sync one connection at the same time.

The lock lives in the queues' Redis (shared by every worker) and expires after ``ttl_s`` so a
killed worker cannot hold it forever; a long job calls ``refresh()`` between steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from redis.exceptions import LockError

from cc_storeplugin.queueing import queues

DEFAULT_TTL_S = 2 * 3600
KEY = "cc_storeplugin:lock:connection:{}"


class AlreadyRunning(RuntimeError):
    """Another worker holds this connection's sync lock; nothing was done."""

    def __init__(self, connection_id: int) -> None:
        super().__init__(f"a sync of connection {connection_id} is already running")
        self.connection_id = connection_id


class ConnectionLock:
    """A held lock: ``refresh()`` pushes its expiry back to ``ttl_s`` from now."""

    def __init__(self, lock, ttl_s: int) -> None:  # noqa: ANN001 - a redis Lock
        self._lock, self.ttl_s = lock, ttl_s

    def refresh(self) -> None:
        """Keep holding the lock for another ``ttl_s`` (raises LockError if it was lost)."""
        self._lock.reacquire()

    def release(self) -> None:
        with suppress(LockError):  # expired meanwhile: nothing left to release
            self._lock.release()


@contextmanager
def connection_lock(connection_id: int, ttl_s: int = DEFAULT_TTL_S) -> Iterator[ConnectionLock]:
    """Hold connection ``connection_id``'s sync lock for the ``with`` block.

    Raises :class:`AlreadyRunning` at once (no waiting, no work) when another worker holds it.
    """
    lock = queues.connection.lock(KEY.format(connection_id), timeout=ttl_s, blocking=False)
    if not lock.acquire(blocking=False):
        raise AlreadyRunning(connection_id)
    held = ConnectionLock(lock, ttl_s)
    try:
        yield held
    finally:
        held.release()


def is_locked(connection_id: int) -> bool:
    """True while some worker holds the connection's sync lock."""
    return bool(queues.connection.exists(KEY.format(connection_id)))
