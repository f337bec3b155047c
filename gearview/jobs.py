"""Progress reporting and cancellation shared by every long-running job.

A job is a plain function taking a `progress` callback and a `CancelToken`;
the CLI drives it with a terminal bar, the GUI on a worker thread. Jobs call
`token.check()` between steps so cancelling never leaves half-done work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from gearview.errors import Cancelled


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """Default callback for callers that do not show progress."""


class CancelToken:
    """Set from any thread; checked by the job between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True if cancelled meanwhile."""
        return self._event.wait(timeout)
