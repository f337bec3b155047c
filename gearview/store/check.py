"""`store check` and `store rebuild`: the index is a cache of the files.

Check compares the index with `files/` (missing, orphan, unreadable files and
spool leftovers); rebuild recreates the index from the files alone. Neither
ever deletes an image file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gearview.errors import IndexCorruptError, InvalidDicomError
from gearview.home import Home
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.store.header import read_instance_info
from gearview.store.index import Transaction, connect, upsert_instance
from gearview.store.paths import SPOOL_DIR, SUFFIX

log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    indexed: int = 0
    files: int = 0
    missing: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    spool_leftovers: int = 0
    integrity: str = "ok"

    @property
    def clean(self) -> bool:
        return not (self.missing or self.orphans or self.unreadable) and self.integrity == "ok"


def iter_cache_files(files_dir: Path) -> Iterator[Path]:
    """Every instance file under the storage folder (spool and hidden folders skipped)."""
    for dirpath, dirnames, filenames in os.walk(files_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.endswith(SUFFIX):
                yield Path(dirpath) / name


def check_store(
    home: Home,
    files_dir: Path,
    *,
    verify: bool = True,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> CheckReport:
    """Compare index and files; with `verify`, parse every file too."""
    report = CheckReport()
    conn = connect(home.index_file)
    try:
        report.integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
        rows = conn.execute("SELECT path, sop_instance_uid FROM instance")
        indexed = {row[0]: row[1] for row in rows}
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"the index cannot be read: {exc}") from None
    finally:
        conn.close()
    report.indexed = len(indexed)
    report.spool_leftovers = len(list((files_dir / SPOOL_DIR).glob("*.part")))
    on_disk = set()
    for path in iter_cache_files(files_dir):
        on_disk.add(path.relative_to(files_dir).as_posix())
    report.files = len(on_disk)
    report.missing = sorted(set(indexed) - on_disk)
    report.orphans = sorted(on_disk - set(indexed))
    if verify:
        present = sorted(on_disk & set(indexed))
        for done, rel in enumerate(present, 1):
            if token:
                token.check()
            try:
                info = read_instance_info(files_dir / rel)
                if info.sop_instance_uid != indexed[rel]:
                    report.unreadable.append(
                        (rel, "file holds another SOP Instance UID than the index says")
                    )
            except InvalidDicomError as exc:
                report.unreadable.append((rel, str(exc)))
            if done % 100 == 0 or done == len(present):
                progress(Progress(done, len(present), "verifying files"))
    return report


@dataclass
class RebuildReport:
    indexed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    moved_aside: str = ""
    spool_cleared: int = 0


def _fresh_index_path(home: Home) -> tuple[Path, str]:
    """Keep a damaged index for inspection instead of deleting it."""
    moved = ""
    index = home.index_file
    try:
        conn = connect(index)
        ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        conn.close()
    except (IndexCorruptError, sqlite3.DatabaseError):
        ok = False
    if not ok and index.exists():
        aside = index.with_name(f"{index.name}.damaged-{int(time.time())}")
        os.replace(index, aside)
        for suffix in ("-wal", "-shm"):
            Path(str(index) + suffix).unlink(missing_ok=True)
        moved = aside.name
    return index, moved


def rebuild_index(
    home: Home,
    files_dir: Path,
    *,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> RebuildReport:
    """Recreate every index row from the files, in one transaction."""
    report = RebuildReport()
    index, report.moved_aside = _fresh_index_path(home)
    for leftover in (files_dir / SPOOL_DIR).glob("*.part"):
        leftover.unlink(missing_ok=True)
        report.spool_cleared += 1
    paths = sorted(iter_cache_files(files_dir))
    conn = connect(index)
    try:
        with Transaction(conn):
            for table in ("instance", "series", "study", "patient"):
                conn.execute(f"DELETE FROM {table}")
            for done, path in enumerate(paths, 1):
                if token:
                    token.check()
                rel = path.relative_to(files_dir).as_posix()
                try:
                    info = read_instance_info(path)
                except InvalidDicomError as exc:
                    report.skipped.append((rel, str(exc)))
                    continue
                stat = path.stat()
                upsert_instance(conn, info, rel, stat.st_size, "", received_at=stat.st_mtime)
                report.indexed += 1
                if done % 100 == 0 or done == len(paths):
                    progress(Progress(done, len(paths), "indexing files"))
    finally:
        conn.close()
    return report
