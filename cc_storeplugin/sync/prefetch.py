"""Read ahead: pages are downloaded and mapped in a thread while the mirror writes the last.

The store's download and the database writes then overlap instead of alternating; the
queue is bounded, so memory holds at most ``depth`` pages. An error in the reader is
raised in the consumer at the point it happened.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(pages: Iterator[T], depth: int = 4) -> Iterator[T]:
    """Yield the items of ``pages`` produced by a background thread, ``depth`` ahead."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in pages:
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            box.put(exc)

    reader = threading.Thread(target=produce, name="cc-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = box.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=30)
