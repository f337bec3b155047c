"""The station: the one engine object that owns what a running gearview holds open.

Home folder, configuration, the cache (files + index), the embedded DICOM
server, the persistent job queue, the retention monitor and the decoder
processes belong to a `Station` (the model napari's Qt-free ViewerModel and
Anki's Collection are: the GUI observes it, the CLI drives it, tests build
on it). The GUI's `MainWindow(station)` and every CLI command start from
one; closing it stops the services in the right order. It never imports Qt.

Lifecycle: `Station.load()` (home + config) -> `open()` (the cache) ->
`start_server()` (with the retention monitor) / `start_retention()` /
`jobs` / `decoder` as needed -> `close()`. What can be done on a damaged
index - `rebuild_index()`, `check_store()` - also works on a station that
is not open. Calls that touch disk or network block: the GUI makes them on
a worker thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from types import TracebackType

from gearview import events
from gearview.config import Config, load_config, save_config
from gearview.edit.corrections import open_cache
from gearview.errors import GearviewError, IndexCorruptError, StoreError
from gearview.home import Home
from gearview.imaging.isolate import IsolatedDecoder
from gearview.jobqueue import JobQueue
from gearview.jobs import CancelToken, ProgressCallback, no_progress
from gearview.lifecycle.monitor import RetentionMonitor
from gearview.net.server import Server, ServerState
from gearview.net.tasks import open_queue
from gearview.store import Cache
from gearview.store.check import CheckReport, RebuildReport, check_store, rebuild_index

log = logging.getLogger(__name__)

#: Worker processes for compressed frames (each holds a decoder and its memory cap).
DECODER_PROCESSES = 2


class Station:
    """Home, config, cache, server, job queue and decoder pool of one gearview station."""

    def __init__(self, home: Home, config: Config, bus: events.EventBus | None = None) -> None:
        self.home = home.ensure()
        self.config = config
        self.bus = bus or events.bus
        self._lock = threading.RLock()
        self._cache: Cache | None = None
        self._server: Server | None = None
        self._jobs: JobQueue | None = None
        self._decoder: IsolatedDecoder | None = None
        self._retention: RetentionMonitor | None = None
        #: Held while the retention monitor starts or stops (its first check can take a while).
        self._retention_lock = threading.Lock()

    @classmethod
    def load(cls, home: Home | None = None, bus: events.EventBus | None = None) -> Station:
        """The station of `home` ($GEARVIEW_HOME by default) with its config file.

        Raises ConfigError naming the key when the file is refused.
        """
        home = (home or Home.default()).ensure()
        return cls(home, load_config(home), bus)

    # ---- the cache --------------------------------------------------------

    def open(self) -> Station:
        """Open the cache (idempotent); raises StoreError / IndexCorruptError."""
        with self._lock:
            if self._cache is None:
                self._cache = open_cache(self.home, self.config, self.bus)
        return self

    @property
    def is_open(self) -> bool:
        return self._cache is not None

    @property
    def cache(self) -> Cache:
        cache = self._cache
        if cache is None:
            raise StoreError("the station is not open", hint="call Station.open() first")
        return cache

    @property
    def files_dir(self) -> Path:
        """The storage folder the cache uses (or will use once open)."""
        cache = self._cache
        return cache.files_dir if cache is not None else self.config.storage_dir(self.home)

    def check_index(self) -> None:
        """Read the index once so damage is found now, not in the middle of work.

        Raises IndexCorruptError (with the rebuild hint) when SQLite reports
        damage; the image files are never touched.
        """
        name = self.home.index_file.name
        try:
            conn = self.cache.conn
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            conn.execute("SELECT count(*) FROM study").fetchone()
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"the index {name} is damaged: {exc}") from None
        if result != "ok":
            raise IndexCorruptError(f"the index {name} is damaged: {result}")

    def rebuild_index(
        self, progress: ProgressCallback = no_progress, token: CancelToken | None = None
    ) -> tuple[RebuildReport, GearviewError | None]:
        """Recreate the index from the files, the server paused meanwhile (no file is deleted).

        Returns the report and the error that kept the server from restarting
        afterwards (None when it restarted or was not running).
        """
        server = self._server
        if server is not None:
            server.stop()
        retention = self._pause_retention()  # no purge plan on a half-built index
        try:
            report = rebuild_index(self.home, self.files_dir, progress=progress, token=token)
        finally:
            if self._cache is not None:
                self._cache.index.close_all()  # every thread reconnects to the new file
            if retention:
                self.start_retention()
            restart_error = _start(server)
        return report, restart_error

    def check_store(
        self,
        verify: bool = True,
        progress: ProgressCallback = no_progress,
        token: CancelToken | None = None,
    ) -> CheckReport:
        """Compare the index with the files (`gearview store check`); works on a damaged index."""
        return check_store(self.home, self.files_dir, verify=verify, progress=progress, token=token)

    # ---- the embedded server ----------------------------------------------------

    @property
    def server(self) -> Server | None:
        """The embedded server once `start_server` was called (running or not)."""
        return self._server

    @property
    def server_state(self) -> ServerState | None:
        server = self._server
        return server.state if server is not None else None

    def start_server(self) -> ServerState:
        """Listen with the current config; raises NetworkError (with a hint) when that fails.

        The retention monitor starts first, so the store gate is in place
        before the first association (it keeps running if listening fails).
        """
        self.start_retention()
        with self._lock:
            if self._server is None:
                self._server = Server(self.home, self.config, self.cache, self.bus)
            server = self._server
        server.start()
        return server.state

    def stop_server(self) -> None:
        """Stop listening and end open associations (the server can be started again)."""
        server = self._server
        if server is not None:
            server.stop()

    def apply_config(self, config: Config) -> GearviewError | None:
        """Save `config`; restart the server only when its own settings changed.

        A save failure raises and applies nothing. Other changes (nodes,
        client timeouts, media) reach the running server without a restart,
        so associations in progress go on. Returns the error that kept the
        server from restarting, if any. A new storage folder is only used once
        the station is opened again.
        """
        save_config(self.home, config)
        restart = self.config.server_differs(config)
        self.config = config
        if self._retention is not None:
            self._retention.recheck()  # new limits count now, not at the next hourly check
        server = self._server
        if server is None:
            return None
        if not restart:
            server.config = config
            return None
        try:
            server.restart(config)
        except GearviewError as exc:
            return exc
        return None

    # ---- retention --------------------------------------------------------------

    @property
    def retention(self) -> RetentionMonitor:
        """The retention policy and store gate of the cache (runs once started)."""
        with self._lock:
            if self._retention is None:
                self._retention = RetentionMonitor(self.cache, lambda: self.config, self.jobs,
                                                   self.bus)
            return self._retention

    def start_retention(self) -> None:
        """Apply the retention policy in the background: after received studies, imports and
        hourly (idempotent; blocks for the first check). `start_server` does it too."""
        with self._retention_lock:
            self.retention.start()

    def _pause_retention(self) -> bool:
        """Stop the monitor if it runs; returns whether it did."""
        with self._retention_lock:
            monitor = self._retention
            if monitor is None or not monitor.running:
                return False
            monitor.stop()
            return True

    # ---- jobs and decoding -------------------------------------------------------

    @property
    def jobs(self) -> JobQueue:
        """The persistent retrieve/send queue (runners use the current config)."""
        with self._lock:
            if self._jobs is None:
                self._jobs = open_queue(self.home, lambda: self.config, self.cache)
            return self._jobs

    def start_jobs(self) -> None:
        """Run queued jobs on the queue's own thread (the GUI does; the CLI runs one job
        in the foreground with `jobs.run`). Jobs a quit interrupted resume now."""
        self.jobs.start()

    @property
    def decoder(self) -> IsolatedDecoder:
        """The worker processes compressed frames are decoded in (started on first use)."""
        with self._lock:
            if self._decoder is None:
                self._decoder = IsolatedDecoder(workers=DECODER_PROCESSES)
            return self._decoder

    # ---- shutdown ----------------------------------------------------------------

    def close(self) -> None:
        """Stop jobs (interrupted ones resume at the next start), the server, the retention
        monitor and the decoder processes, then close the cache (idempotent)."""
        with self._lock:
            jobs, self._jobs = self._jobs, None
            server, self._server = self._server, None
            retention, self._retention = self._retention, None
            decoder, self._decoder = self._decoder, None
            cache, self._cache = self._cache, None
        if jobs is not None:
            jobs.stop()
        if server is not None:
            try:
                server.stop()
            except Exception:
                log.exception("stopping the DICOM server failed")
        if retention is not None:
            with self._retention_lock:
                retention.stop()
        if decoder is not None:
            decoder.close()
        if cache is not None:
            cache.close()

    def __enter__(self) -> Station:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _start(server: Server | None) -> GearviewError | None:
    if server is None:
        return None
    try:
        server.start()
    except GearviewError as exc:
        return exc
    return None
