"""The retention policy while the station runs: checked after each received study and hourly.

`RetentionMonitor` runs on its own thread next to the SCP; the Station owns
it (`Station.retention`), starts it with the server (and the GUI on open)
and stops it when it closes. It measures the cache after an association that
stored instances closes, a few seconds after other new instances (an
import), and every hour; in `recycle` mode it then purges what the policy
allows (`retention.purge`). It is also the cache's store gate
(`Cache.admission`): while the cache is over a limit that purging cannot
fix - in `reject` mode, over a limit at all - a new instance is refused
with StorageFullError, which the SCP answers with A700 (out of resources).
The gate only reads numbers the monitor keeps (and the disk's free space),
so it costs the receive path one `statvfs`.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable

from gearview import events as ev
from gearview.config import Config
from gearview.errors import GearviewError, StorageFullError, describe_error
from gearview.jobqueue import JobQueue
from gearview.jobs import CancelToken
from gearview.lifecycle.retention import purge
from gearview.lifecycle.space import Limits, StorageState, Usage, level_of, measure
from gearview.store import Cache

log = logging.getLogger(__name__)
CHECK_INTERVAL = 3600.0
#: How often a full cache is measured again (a study sent meanwhile may be purged now).
FULL_RECHECK = 60.0
#: Quiet seconds after instances that no association brought (an import) before a check.
SETTLE = 5.0
REJECT = "reject"


class RetentionMonitor:
    """Applies the retention policy in the background and refuses stores when full."""

    def __init__(self, cache: Cache, config: Callable[[], Config], queue: JobQueue,
                 bus: ev.EventBus = ev.bus) -> None:
        self.cache = cache
        self.queue = queue
        self.bus = bus
        self._config = config
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Cancelled by `stop`: a purge in progress ends after the study it is deleting.
        self._token = CancelToken()
        self._measured = Usage(0, 0, 0)
        self._limits = Limits(0, 0)
        self._added = 0
        self._last_stored = 0.0
        self._full = False
        #: The state of the last check (None before the first).
        self.state: StorageState | None = None

    # ---- lifecycle -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Measure once (the gate needs numbers), then watch on a daemon thread."""
        if self._thread is not None:
            return
        self._token = CancelToken()
        self._check_logged()
        self.bus.bind(ev.INSTANCE_STORED, self._on_stored)
        self.bus.bind(ev.ASSOCIATION_CLOSED, self._on_association_closed)
        self.cache.admission = self.admit
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gv-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._token.cancel()
        self.cache.admission = None
        self.bus.unbind(ev.INSTANCE_STORED, self._on_stored)
        self.bus.unbind(ev.ASSOCIATION_CLOSED, self._on_association_closed)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ---- the store gate (receive threads) ----------------------------------------

    def admit(self) -> None:
        """Refuse a new instance while the cache is full (see the module docstring)."""
        with self._lock:
            limits, measured, added, full = self._limits, self._measured, self._added, self._full
        if not limits.any:
            return
        try:
            free = shutil.disk_usage(self.cache.files_dir).free
        except OSError:
            return  # the write itself reports what is wrong with the folder
        usage = Usage(measured.cache_bytes + added, free, measured.disk_bytes)
        if not limits.over(usage):
            return
        self._wake.set()  # measure (and in recycle mode purge) now
        if full or self._config().storage.when_full == REJECT:
            raise StorageFullError(
                f"the cache is full ({limits.crossed(usage)}); new instances are refused",
                hint="send studies on so they can be purged, or raise storage.max_size / "
                     "lower storage.min_free",
            )

    def recheck(self) -> None:
        """Check soon (the settings changed), not at the next scheduled time."""
        self._wake.set()

    def _on_stored(self, event: ev.Event) -> None:
        try:
            size = event.path.stat().st_size
        except OSError:
            size = 0
        with self._lock:
            self._added += size
            self._last_stored = time.monotonic()

    def _on_association_closed(self, event: ev.Event) -> None:
        if self._last_stored:
            self._wake.set()

    # ---- checks (monitor thread) ---------------------------------------------------

    def check(self) -> StorageState:
        """Measure, purge in `recycle` mode when over a limit, and update the gate."""
        config = self._config()
        with self._lock:
            self._added, self._last_stored = 0, 0.0
        usage = measure(self.cache)
        limits = Limits.of(config, usage.disk_bytes)
        if limits.over(usage) and config.storage.when_full != REJECT:
            try:
                purge(self.cache, config, self.queue, token=self._token)
            except GearviewError as exc:
                log.error("retention: purge failed: %s", describe_error(exc))
            usage = measure(self.cache)
        full = limits.over(usage)
        if full:
            log.warning("storage full (%s): new instances are refused", limits.crossed(usage))
        with self._lock:
            self._measured, self._limits, self._full = usage, limits, full
        self.state = StorageState(usage, limits, level_of(usage, limits))
        return self.state

    def _loop(self) -> None:
        while not self._stop.is_set():
            timeout = FULL_RECHECK if self._full else CHECK_INTERVAL
            if self._last_stored:
                timeout = min(timeout, SETTLE)
            woken = self._wake.wait(timeout)
            self._wake.clear()
            if self._stop.is_set():
                break
            quiet = time.monotonic() - self._last_stored >= SETTLE
            if woken or quiet or not self._last_stored:
                self._check_logged()
                self.cache.index.close_current()  # checks are rare: hold no connection idle

    def _check_logged(self) -> None:
        try:
            self.check()
        except Exception:  # a failed check must not stop the monitor
            log.exception("retention: the check failed")

