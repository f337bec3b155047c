"""The viewer's decoding threads: a QThreadPool with priorities, results on the GUI thread.

Unlike the generic `WorkerPool`, a frame the user asked for jumps the queue
ahead of read-ahead decoding (priority), which is what keeps scrolling
through compressed series responsive on two cores.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

PRIORITY_VIEW = 10
PRIORITY_PREFETCH = 0


class _Task(QRunnable):
    def __init__(self, pool: DecodePool, task_id: int, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._pool = pool
        self._task_id = task_id
        self._fn = fn

    def run(self) -> None:
        try:
            value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the GUI thread
            self._pool.finished.emit(self._task_id, None, exc)
        else:
            self._pool.finished.emit(self._task_id, value, None)


class DecodePool(QObject):
    """Run callables on worker threads; `on_result` / `on_error` run on the GUI thread."""

    finished = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None, threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(threads, 1))
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Callable | None, Callable | None]] = {}
        self._closed = False
        self.finished.connect(self._deliver)

    @property
    def active(self) -> int:
        return len(self._callbacks)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_result: Callable | None = None,
        on_error: Callable | None = None,
        priority: int = PRIORITY_VIEW,
    ) -> int:
        if self._closed:
            return 0
        task_id = next(self._ids)
        if on_result is not None or on_error is not None:
            self._callbacks[task_id] = (on_result, on_error)
        self._pool.start(_Task(self, task_id, lambda: fn(*args)), priority)
        return task_id

    def _deliver(self, task_id: int, value: object, error: object) -> None:
        on_result, on_error = self._callbacks.pop(task_id, (None, None))
        if self._closed:
            return
        if error is None:
            if on_result is not None:
                on_result(value)
        elif on_error is not None:
            on_error(error)
        else:
            log.debug("background decode failed: %s", error)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Drop queued work, wait for running tasks, forget callbacks."""
        self._closed = True
        self._pool.clear()
        done = self._pool.waitForDone(timeout_ms)
        self._callbacks.clear()
        return done
