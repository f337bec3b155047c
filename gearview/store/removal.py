"""Removing whole studies from the cache: all or nothing, also across a crash.

A delete is the user's decision, so one that a crash interrupts is finished
on the next start, never rolled back, and no state in between is ever left:

1. `files/.trash/<id>/manifest.json` lists every instance of the studies
   (SOP Instance UID, path, file identity), written atomically: from here on
   the studies are going.
2. Each study folder (`paths.study_relpath`) is renamed into the trash folder
   in one step when it holds nothing but the study's files; other files are
   moved one by one.
3. One index transaction deletes the rows (and the series, study and patient
   rows left empty).
4. The trash folder is deleted.

A SIGKILL before 1 leaves the studies whole. After it, `recover` (run when a
Cache opens) repeats 2-4 for what is left: the studies are gone. A file that
changed after the manifest was written (the same instance received again) and
its row are left alone. An error while the process lives (a rename or the
index refused) puts the moved files back: nothing is deleted. `.trash` is a
hidden folder, so `store check` never counts what is in it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gearview.changes import Changes
from gearview.errors import NotFoundError, StoreError
from gearview.platform.locks import exclusive_lock, unlocked_folders
from gearview.store.atomic import atomic_write_bytes, fsync_dir, os_error_to_store_error
from gearview.store.index import Transaction, delete_instance, prune_empty
from gearview.store.paths import TRASH_DIR, study_relpath

if TYPE_CHECKING:
    from gearview.store.cache import Cache

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
LOCK = "lock"
WHAT = "the delete journal"


@dataclass
class _Entry:
    """One instance being removed, as the manifest records it."""

    sop_uid: str
    series_uid: str
    study_uid: str
    path: str
    #: (inode, size, mtime_ns) of the file when the delete started; None when it was missing.
    stat: list[int] | None


def trash_root(cache: Cache) -> Path:
    return cache.files_dir / TRASH_DIR


def _file_stat(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _entries(cache: Cache, study_uids: list[str]) -> list[_Entry]:
    entries = []
    for uid in study_uids:
        found = cache.instances(study_uid=uid)
        if not found:
            raise NotFoundError(f"no study {uid} in the local cache")
        for record in found:
            rel = record.path.relative_to(cache.files_dir).as_posix()
            entries.append(
                _Entry(record.sop_instance_uid, record.series_instance_uid,
                       record.study_instance_uid, rel,
                       _file_stat(record.path))
            )
    return entries


def _new_folder(cache: Cache) -> Path:
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now))
    folder = trash_root(cache) / f"{stamp}-{uuid.uuid4().hex[:12]}"
    try:
        folder.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        raise os_error_to_store_error(exc, WHAT) from exc
    return folder


class ChangedSinceError(StoreError):
    """An instance of the study arrived or changed after the time the caller vouched for."""

    hint = "it is kept: what changed has not been sent yet"


def _check_unchanged(cache: Cache, entries: list[_Entry], since: dict[str, float]) -> None:
    """Refuse when any instance was received, written or put in place after `since[study]`."""
    received = {r.sop_instance_uid: r.received_at
                for uid in since for r in cache.instances(study_uid=uid)}
    for entry in entries:
        limit = since.get(entry.study_uid)
        if limit is None:
            continue
        try:
            st = os.stat(cache.files_dir / entry.path)
            touched = max(st.st_mtime, st.st_ctime)
        except OSError:
            touched = float("inf")
        if max(touched, received.get(entry.sop_uid, float("inf"))) > limit:
            raise ChangedSinceError(f"study {entry.study_uid} changed since it was sent; "
                                    "nothing was deleted")


def remove_studies(cache: Cache, study_uids: Iterable[str],
                   unchanged_since: dict[str, float] | None = None) -> Changes:
    """Delete every file and row of the studies, or nothing (see the module docstring).

    With `unchanged_since` (study UID -> time), a study that received or
    changed an instance after its time is refused (ChangedSinceError) under
    the same lock that receives new instances, so nothing newer is ever lost.
    """
    uids = list(dict.fromkeys(study_uids))
    with contextlib.ExitStack() as stack:
        with cache._write_lock:
            entries = _entries(cache, uids)
            if unchanged_since:
                _check_unchanged(cache, entries, unchanged_since)
            folder = _new_folder(cache)
            stack.enter_context(exclusive_lock(folder / LOCK))
            try:
                manifest = {"study_uids": uids, "entries": [asdict(e) for e in entries]}
                atomic_write_bytes(folder / MANIFEST, json.dumps(manifest).encode(), mode=0o600)
                fsync_dir(folder.parent)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            moves = _move_out(cache, folder, uids, entries)
            try:
                changes = _delete_rows(cache.conn, entries)
            except BaseException:
                _put_back(folder, moves)
                raise
        _discard(folder)
    return changes


def _holds_only(folder: Path, files_dir: Path, paths: set[str]) -> bool:
    """True when every file under `folder` is one of `paths` (relative to `files_dir`)."""
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            if Path(dirpath, name).relative_to(files_dir).as_posix() not in paths:
                return False
    return True


def _move_out(cache: Cache, folder: Path, uids: list[str],
              entries: list[_Entry]) -> list[tuple[Path, Path]]:
    """Rename the studies' folders (or files) into `folder`; undone on any error."""
    files_dir = cache.files_dir
    paths = {e.path for e in entries}
    moves: list[tuple[Path, Path]] = []
    whole: set[str] = set()
    for number, uid in enumerate(uids):
        rel = study_relpath(uid).as_posix()
        source = files_dir / rel
        if source.is_dir() and _holds_only(source, files_dir, paths):
            moves.append((source, folder / f"study-{number}"))
            whole.add(uid)
    moves += [
        (files_dir / e.path, folder / f"{number}.dcm")
        for number, e in enumerate(entries)
        if e.study_uid not in whole
    ]
    done: list[tuple[Path, Path]] = []
    try:
        for source, target in moves:
            try:
                os.rename(source, target)
            except FileNotFoundError:
                continue  # already missing (`store check` reported it); its row goes too
            done.append((source, target))
    except OSError as exc:
        _put_back(folder, done)
        raise os_error_to_store_error(exc, "the deleted study's files") from exc
    for directory in {source.parent for source, _ in done} | {folder}:
        fsync_dir(directory)
    for entry in entries:
        if entry.study_uid not in whole:  # moved file by file: drop the folders it emptied
            parent = (files_dir / entry.path).parent
            for empty in (parent, parent.parent):
                with contextlib.suppress(OSError):
                    empty.rmdir()
    return done


def _put_back(folder: Path, moves: list[tuple[Path, Path]]) -> None:
    """Undo `_move_out` after an error; if that fails too, recovery finishes the delete."""
    try:
        for source, target in reversed(moves):
            source.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target, source)
        for directory in {source.parent for source, _ in moves}:
            fsync_dir(directory)
    except OSError as exc:
        log.error("could not put back the files of a failed delete (it is finished when the "
                  "cache is next opened): %s", exc)
        return
    shutil.rmtree(folder, ignore_errors=True)


def _delete_rows(conn: sqlite3.Connection, entries: list[_Entry]) -> Changes:
    changes = Changes()
    parents: set[tuple[str, str]] = set()
    with Transaction(conn):
        for entry in entries:
            parent = delete_instance(conn, entry.sop_uid, entry.path)
            if parent is not None:
                parents.add(parent)
                changes.instances_removed.add(entry.sop_uid)
        for series_uid, study_uid in sorted(parents):
            removed = prune_empty(conn, series_uid, study_uid)
            (changes.series_removed if "series" in removed else changes.series_updated).add(
                series_uid)
            if "study" in removed:
                changes.studies_removed.add(study_uid)
    changes.studies_updated = {s for _, s in parents} - changes.studies_removed
    return changes


def _discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    fsync_dir(folder.parent)


def recover(cache: Cache) -> int:
    """Finish the deletes a crash interrupted; returns how many."""
    count = 0
    for folder in unlocked_folders(trash_root(cache), LOCK):
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = None  # the crash came before the manifest: nothing was moved
        if manifest is not None:
            log.warning("finishing an interrupted delete of %d instance(s)",
                        len(manifest["entries"]))
            with cache._write_lock:
                _finish(cache, [_Entry(**e) for e in manifest["entries"]])
        _discard(folder)
        count += 1
    return count


def _finish(cache: Cache, entries: list[_Entry]) -> None:
    """Remove what the interrupted delete left: files still as recorded, then their rows."""
    gone = []
    for entry in entries:
        path = cache.files_dir / entry.path
        current = _file_stat(path)
        if current is not None and entry.stat is not None and current == entry.stat:
            path.unlink()
            current = None
        if current is None:
            gone.append(entry)
    for directory in {(cache.files_dir / e.path).parent for e in gone}:
        fsync_dir(directory)
    try:
        _delete_rows(cache.conn, gone)
    except (StoreError, sqlite3.DatabaseError) as exc:
        raise StoreError(f"could not finish an interrupted delete: {exc}") from None
