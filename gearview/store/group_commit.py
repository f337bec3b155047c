"""Group commit: spool files of concurrent receivers moved into place and indexed together.

Every instance must be renamed into place, its directory fsynced and its
index row committed (one more fsync) before it is acknowledged, all under
the cache's write lock so an edit never sees a study half-published. With
several associations the threads queued on that lock and paid those syncs
one after the other. Here whoever takes the lock publishes every instance
waiting at that moment: one directory fsync per directory and one index
commit for the whole group. A single receiver works exactly as before.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gearview.errors import StoreError
from gearview.store.atomic import fsync_dir, place
from gearview.store.index import Transaction, upsert_instance
from gearview.store.records import InstanceInfo

WHAT = "the instance"


@dataclass
class Publication:
    """One spool file on its way in, and what publishing it found."""

    spool: Path
    target: Path
    relpath: str
    size: int
    info: InstanceInfo
    source_ae: str
    study_new: bool = False
    previous: sqlite3.Row | None = None
    error: StoreError | None = None
    done: bool = field(default=False, repr=False)


class GroupCommit:
    """Publishes `Publication`s under `lock`, batching the ones that wait together."""

    def __init__(self, lock: threading.Lock, conn: Callable[[], sqlite3.Connection]) -> None:
        self._lock = lock
        self._conn = conn
        self._queue: list[Publication] = []
        self._queue_lock = threading.Lock()

    def publish(self, item: Publication) -> None:
        """Return once `item` is in place and indexed; raises StoreError with nothing stored."""
        with self._queue_lock:
            self._queue.append(item)
        with self._lock:
            if not item.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._publish_locked(batch)
        if item.error is not None:
            raise item.error

    def _publish_locked(self, batch: list[Publication]) -> None:
        placed = []
        had_file = {}
        for item in batch:
            had_file[id(item)] = item.target.exists()
            try:
                place(item.spool, item.target, WHAT)
                placed.append(item)
            except StoreError as exc:
                item.error = exc
        for folder in {item.target.parent for item in placed}:
            fsync_dir(folder)
        self._index(placed)
        for item in placed:
            if item.error is not None and not had_file[id(item)]:
                item.target.unlink(missing_ok=True)
        for item in batch:
            item.done = True

    def _index(self, placed: list[Publication]) -> None:
        """One transaction; a row that fails is rolled back alone (savepoint)."""
        if not placed:
            return
        conn = self._conn()
        try:
            with Transaction(conn):
                for item in placed:
                    conn.execute("SAVEPOINT publication")
                    try:
                        item.study_new, item.previous = upsert_instance(
                            conn, item.info, item.relpath, item.size, item.source_ae)
                    except (StoreError, sqlite3.DatabaseError) as exc:
                        conn.execute("ROLLBACK TO publication")
                        item.error = StoreError(f"could not index the instance: {exc}")
                    conn.execute("RELEASE publication")
        except (StoreError, sqlite3.DatabaseError) as exc:
            for item in placed:
                if item.error is None:
                    item.error = StoreError(f"could not index the instance: {exc}")
