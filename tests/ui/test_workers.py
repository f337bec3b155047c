"""Workers run off the GUI thread and call back on it; jobs report progress and cancel."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread

from gearview.errors import Cancelled, NotFoundError
from gearview.jobs import Progress
from gearview.ui.workers import PRIORITY_BACKGROUND, WorkerPool


@pytest.fixture
def pool(qtbot):
    p = WorkerPool()
    yield p
    p.shutdown()


def test_result_is_delivered_on_the_gui_thread(qtbot, pool):
    gui = threading.get_ident()
    ran_on: list[int] = []
    results: list[tuple[int, bool]] = []

    def work(x: int) -> int:
        ran_on.append(threading.get_ident())
        return x * 2

    pool.submit(
        work, 21, on_result=lambda v: results.append((v, QThread.currentThread() is pool.thread()))
    )
    qtbot.waitUntil(lambda: bool(results))
    assert results == [(42, True)]
    assert ran_on and ran_on[0] != gui
    assert pool.active == 0


def test_errors_reach_on_error(qtbot, pool):
    errors: list[BaseException] = []

    def fail() -> None:
        raise NotFoundError("no such study")

    pool.submit(fail, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors))
    assert isinstance(errors[0], NotFoundError)


def test_job_progress_and_cancel(qtbot, pool):
    started = threading.Event()
    progress_seen: list[Progress] = []
    errors: list[BaseException] = []

    def job(progress, token):
        progress(Progress(1, 10, "first"))
        started.set()
        while not token.wait(0.01):
            pass
        token.check()

    _, token = pool.submit_job(
        job,
        on_progress=progress_seen.append,
        on_error=errors.append,
        on_result=lambda _: pytest.fail("a cancelled job has no result"),
    )
    assert started.wait(5)
    qtbot.waitUntil(lambda: bool(progress_seen))
    token.cancel()
    qtbot.waitUntil(lambda: bool(errors))
    assert isinstance(errors[0], Cancelled)
    assert progress_seen[0].message == "first"


def test_progress_is_throttled_but_the_last_step_arrives(qtbot, pool):
    seen: list[Progress] = []
    done: list[object] = []

    def job(progress, token):
        for i in range(1, 5001):
            progress(Progress(i, 5000))
        return "ok"

    pool.submit_job(job, on_progress=seen.append, on_result=done.append)
    qtbot.waitUntil(lambda: bool(done))
    qtbot.wait(20)
    assert 1 <= len(seen) < 500
    assert seen[-1].done == 5000


def test_shutdown_refuses_new_work(qtbot):
    p = WorkerPool()
    assert p.shutdown()
    with pytest.raises(RuntimeError):
        p.submit(lambda: None)


def test_what_the_user_waits_for_starts_before_background_work(qtbot):
    p = WorkerPool(max_threads=1)
    release = threading.Event()
    order: list[str] = []
    p.submit(release.wait, 5)  # occupies the only thread
    p.submit(order.append, "read-ahead", priority=PRIORITY_BACKGROUND)
    p.submit(order.append, "frame on screen")
    release.set()
    qtbot.waitUntil(lambda: len(order) == 2)
    assert order == ["frame on screen", "read-ahead"]
    p.shutdown()


def test_shutdown_can_drop_work_that_has_not_started(qtbot):
    p = WorkerPool(max_threads=1)
    release = threading.Event()
    ran: list[int] = []
    p.submit(release.wait, 5)
    for i in range(5):
        p.submit(ran.append, i, priority=PRIORITY_BACKGROUND)
    threading.Timer(0.2, release.set).start()
    assert p.shutdown(drop_queued=True)
    assert ran == []


def test_pool_tasks_that_read_the_index_leave_no_connection_open(qtbot, cache):
    """Qt drops a pool thread's Python state after each task; its connection must go too."""
    import os

    pool_threads = 4

    def index_fds() -> int:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{fd}").startswith(str(cache.home.index_file))
            except OSError:
                pass  # the listing's own descriptor, closed by now
        return count

    pool = WorkerPool(max_threads=pool_threads)
    results: list[object] = []
    before = index_fds()
    for _ in range(80):
        pool.submit(cache.studies, on_result=results.append)
    qtbot.waitUntil(lambda: len(results) == 80, timeout=20_000)
    pool.shutdown()
    assert cache.index.open_count() == 1
    # SQLite keeps a closed connection's database descriptor while another connection of the
    # process holds a lock on the file, and reuses it for the next: one per pool thread at most.
    assert index_fds() <= before + pool_threads
