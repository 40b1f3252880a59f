"""Read-ahead keeps order, bounds memory and surfaces the reader's errors."""

import threading

import pytest

from cc_storeplugin.sync.prefetch import prefetch


def test_items_come_in_order_and_all_of_them():
    assert list(prefetch(iter(range(1000)), depth=3)) == list(range(1000))


def test_the_reader_stays_at_most_depth_ahead():
    produced = []
    gate = threading.Event()

    def pages():
        for n in range(100):
            produced.append(n)
            yield n

    it = prefetch(pages(), depth=4)
    assert next(it) == 0
    gate.wait(0.3)
    assert len(produced) <= 1 + 4 + 1  # consumed + queued + one blocked in put
    it.close()


def test_an_error_in_the_reader_is_raised_where_it_happened():
    def pages():
        yield 1
        yield 2
        raise ConnectionError("store went away")

    it = prefetch(pages())
    assert [next(it), next(it)] == [1, 2]
    with pytest.raises(ConnectionError, match="store went away"):
        next(it)
