"""The index keeps one connection per live thread: none outlives the thread that opened it."""

from __future__ import annotations

import os
import threading

import pytest


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


def test_connections_of_finished_threads_are_closed(cache):
    before = _open_fds()
    for _ in range(50):
        worker = threading.Thread(target=lambda: cache.studies())
        worker.start()
        worker.join()
    assert cache.index.open_count() == 1  # this thread's
    assert _open_fds() <= before + 1


def test_close_all_closes_the_connections_of_other_live_threads(cache):
    started, stop = threading.Event(), threading.Event()

    def reader() -> None:
        cache.studies()
        started.set()
        stop.wait(10)

    worker = threading.Thread(target=reader)
    worker.start()
    started.wait(10)
    assert cache.index.open_count() == 2
    cache.index.close_all()
    assert cache.index.open_count() == 0
    stop.set()
    worker.join()
