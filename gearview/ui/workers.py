"""Run engine calls off the GUI thread and hand their results back to it.

Every disk, database or network call the GUI makes goes through a
`WorkerPool`: the function runs on a `QThreadPool` thread, and its result,
error or progress comes back as a queued signal to a QObject that lives in
the GUI thread, so callbacks always run on the GUI thread. Jobs get a
`CancelToken` and a progress callback (the engine's job contract); progress
is throttled so a job that reports every instance cannot flood the event loop.
Tasks carry a priority: what the user is waiting for (the default) starts
before background work such as the viewer's read-ahead and thumbnails.

Written on `QThreadPool` rather than superqt's `thread_worker`: that one runs
on the global pool (no per-owner thread limit or shutdown) without
priorities, and a generator-based abort instead of the engine's CancelToken.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from gearview.errors import Cancelled
from gearview.jobs import CancelToken, Progress

log = logging.getLogger(__name__)

#: Minimum seconds between two progress signals of one job (the final one always goes).
PROGRESS_INTERVAL = 0.05
#: QThreadPool priorities: higher starts first among queued tasks.
PRIORITY_DEFAULT = 10
PRIORITY_BACKGROUND = 0

ResultCallback = Callable[[Any], None]
ErrorCallback = Callable[[BaseException], None]
ProgressSlot = Callable[[Progress], None]


@dataclass
class _Callbacks:
    on_result: ResultCallback | None
    on_error: ErrorCallback | None
    on_progress: ProgressSlot | None
    token: CancelToken | None


class _Task(QRunnable):
    """One call on a pool thread; reports through the pool's signals."""

    def __init__(self, pool: WorkerPool, task_id: int, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._pool = pool
        self._task_id = task_id
        self._fn = fn

    def run(self) -> None:
        try:
            value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - every failure is reported to the GUI
            self._pool.task_done.emit(self._task_id, None, exc)
        else:
            self._pool.task_done.emit(self._task_id, value, None)


class _ThrottledProgress:
    """The `progress` callback a job receives: forwards at most every PROGRESS_INTERVAL."""

    def __init__(self, pool: WorkerPool, task_id: int) -> None:
        self._pool = pool
        self._task_id = task_id
        self._last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        final = progress.total is not None and progress.done >= progress.total
        if not final and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        self._pool.task_progress.emit(self._task_id, progress)


class WorkerPool(QObject):
    """A thread pool whose callbacks run on the GUI thread (queued signals)."""

    task_done = Signal(int, object, object)
    task_progress = Signal(int, object)

    def __init__(self, parent: QObject | None = None, max_threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._ids = itertools.count(1)
        self._pending: dict[int, _Callbacks] = {}
        self._closed = False
        self.task_done.connect(self._deliver)
        self.task_progress.connect(self._deliver_progress)

    @property
    def active(self) -> int:
        """Tasks submitted whose result has not yet been delivered."""
        return len(self._pending)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
        priority: int = PRIORITY_DEFAULT,
    ) -> int:
        """Run `fn(*args)` on a pool thread; callbacks run on the GUI thread."""
        return self._start(
            lambda: fn(*args), _Callbacks(on_result, on_error, None, None), priority=priority
        )

    def submit_job(
        self,
        fn: Callable[[Callable[[Progress], None], CancelToken], Any],
        *,
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
        on_progress: ProgressSlot | None = None,
    ) -> tuple[int, CancelToken]:
        """Run a job `fn(progress, token)`; returns its id and the token that cancels it."""
        token = CancelToken()
        task_id = next(self._ids)
        progress = _ThrottledProgress(self, task_id)
        self._start(
            lambda: fn(progress, token),
            _Callbacks(on_result, on_error, on_progress, token),
            task_id,
        )
        return task_id, token

    def _start(
        self,
        call: Callable[[], Any],
        callbacks: _Callbacks,
        task_id: int | None = None,
        priority: int = PRIORITY_DEFAULT,
    ) -> int:
        if self._closed:
            raise RuntimeError("the worker pool is shut down")
        task_id = next(self._ids) if task_id is None else task_id
        self._pending[task_id] = callbacks
        self._pool.start(_Task(self, task_id, call), priority)
        return task_id

    def _deliver(self, task_id: int, value: object, error: object) -> None:
        callbacks = self._pending.pop(task_id, None)
        if callbacks is None:
            return
        if error is None:
            if callbacks.on_result is not None:
                callbacks.on_result(value)
        elif isinstance(error, Cancelled):
            log.info("task %d cancelled", task_id)
            if callbacks.on_error is not None:
                callbacks.on_error(error)
        elif callbacks.on_error is not None:
            callbacks.on_error(error)
        else:
            log.error("background task failed", exc_info=error)

    def _deliver_progress(self, task_id: int, progress: object) -> None:
        callbacks = self._pending.get(task_id)
        if callbacks is not None and callbacks.on_progress is not None:
            callbacks.on_progress(progress)

    def cancel_all(self) -> None:
        for callbacks in self._pending.values():
            if callbacks.token is not None:
                callbacks.token.cancel()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until every running task returned (tests and shutdown only)."""
        return self._pool.waitForDone(timeout_ms)

    def shutdown(self, timeout_ms: int = 10_000, drop_queued: bool = False) -> bool:
        """Cancel jobs, wait for the threads, and drop callbacks that have not run.

        With `drop_queued`, tasks that have not started are dropped instead of
        run (read-ahead nobody will look at).
        """
        self._closed = True
        self.cancel_all()
        if drop_queued:
            self._pool.clear()
        done = self._pool.waitForDone(timeout_ms)
        self._pending.clear()
        return done
