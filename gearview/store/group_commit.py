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

import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gearview.errors import StoreError
from gearview.store.atomic import fsync_dir, place
from gearview.store.conflicts import CACHED_COLUMNS
from gearview.store.index import Transaction, upsert_instance
from gearview.store.ledger import Conflict
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
    #: Replace a cached copy of this SOP Instance UID even when it is not the same instance.
    replace: bool = False
    study_new: bool = False
    previous: sqlite3.Row | None = None
    #: Keep a refused arrival under `.conflicts/` (a peer was told it is stored).
    keep_conflict: bool = True
    #: (cached path, same pixel data?) compared before the lock was taken.
    content: tuple[str, bool] | None = None
    #: Set when a cached copy was kept instead (the spool file was not published).
    conflict: Conflict | None = None
    error: StoreError | None = None
    done: bool = field(default=False, repr=False)


#: Decides what to do with an arrival whose SOP Instance UID is cached (the cached row's
#: `CACHED_COLUMNS`): returns the conflict, having disposed of its spool file, or None.
Admit = Callable[[Publication, sqlite3.Row], "Conflict | None"]


class GroupCommit:
    """Publishes `Publication`s under `lock`, batching the ones that wait together."""

    def __init__(self, lock: threading.Lock, conn: Callable[[], sqlite3.Connection],
                 admit: Admit) -> None:
        self._lock = lock
        self._conn = conn
        self._admit = admit
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

    def _cached(self, batch: list[Publication]) -> dict[str, sqlite3.Row]:
        uids = json.dumps([item.info.sop_instance_uid for item in batch if not item.replace])
        rows = self._conn().execute(
            f"SELECT {CACHED_COLUMNS} FROM instance WHERE sop_instance_uid IN "
            "(SELECT value FROM json_each(?))", (uids,))
        return {row["sop_instance_uid"]: row for row in rows}

    def _publish_locked(self, batch: list[Publication]) -> None:
        placed = []
        had_file = {}
        cached = self._cached(batch)
        for item in batch:
            row = cached.get(item.info.sop_instance_uid)
            if row is not None:
                try:
                    item.conflict = self._admit(item, row)
                except StoreError as exc:
                    item.error = exc
                if item.conflict is not None or item.error is not None:
                    continue
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
