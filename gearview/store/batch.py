"""All-or-nothing replacement of many cached files (edits, structure fixes, undo).

A study edit must reach every instance or none. The new files are written to
the spool first (by the caller); this module then swaps them in under a
journal so that a failure, or a SIGKILL at any point, leaves the cache as it
was before:

1. The journal folder ``<home>/undo/<undo_id>/`` gets a hard link (a copy when
   the storage folder is on another file system) of every old file, then
   ``manifest.json`` with state ``prepared`` (written atomically, fsynced).
2. Every spool file is renamed over its target; old files whose path changes
   (a new Study Instance UID moves the file) are unlinked after all renames.
3. One index transaction upserts every instance.
4. The manifest is rewritten with state ``committed``; the journal is now the
   undo record (the old files are byte-identical copies).

What a SIGKILL leaves, and what `recover` (run when a Cache opens) does:

- before 1 completes (no manifest): only spool ``*.part`` files and a journal
  folder of links; files and index untouched. Recovery deletes the folder,
  `Cache.clear_spool` the spool files.
- between 1 and 4 (state ``prepared``): some files new, some old, the index
  old or (after 3) new. Recovery puts every old file back from the journal,
  removes files at new paths, re-indexes those instances from the restored
  files and deletes the journal: exactly the state before the edit (the
  user never saw it succeed).
- after 4: the edit is complete; nothing to recover.

A journal being executed is held with an exclusive `flock`, so a second
process opening the cache never "recovers" a batch that is still running.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gearview.changes import Changes
from gearview.errors import NotFoundError, StoreError
from gearview.platform.locks import exclusive_lock, unlocked_folders
from gearview.store.atomic import atomic_write_bytes, fsync_dir, os_error_to_store_error, spool_path
from gearview.store.conflicts import same_content
from gearview.store.header import read_instance_info
from gearview.store.index import Transaction, upsert_instance
from gearview.store.paths import instance_relpath
from gearview.store.records import InstanceInfo

if TYPE_CHECKING:
    from gearview.store.cache import Cache

log = logging.getLogger(__name__)
JOURNAL_DIR = "undo"
MANIFEST = "manifest.json"
LOCK = "lock"
PREPARED = "prepared"
COMMITTED = "committed"
#: Committed journals kept for undo; older ones are dropped (their old files with them).
KEEP_JOURNALS = 50


class StudyChangedError(StoreError):
    """Instances arrived in a study while it was being edited; nothing was changed."""

    hint = "run the edit again: it will include the new instances"


@dataclass
class Replacement:
    """One new file (fsynced in the spool) replacing one indexed instance."""

    spool: Path
    info: InstanceInfo
    old_sop_uid: str
    #: (inode, size, mtime_ns) of the old file when the caller read it; a file
    #: that changed since then refuses the whole batch.
    old_stat: tuple[int, int, int] | None = None


@dataclass
class BatchInfo:
    """A committed journal: what an undo would restore."""

    undo_id: str
    kind: str
    created: float
    description: str
    reason: str
    study_uids_before: list[str]
    study_uids_after: list[str]
    instances: int
    path: Path = field(repr=False, default=Path())


def file_stat(path: Path | str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def journal_root(cache: Cache) -> Path:
    return cache.home.root / JOURNAL_DIR


def _link_or_copy(source: Path | str, target: Path | str) -> None:
    """Keep `source`'s bytes at `target`: a hard link, or an fsynced copy across file systems."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(source, target)
        with open(target, "rb+") as fh:
            os.fsync(fh.fileno())


def _write_manifest(folder: Path, manifest: dict) -> None:
    atomic_write_bytes(
        folder / MANIFEST, json.dumps(manifest, separators=(",", ":")).encode(), mode=0o600
    )


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def run_batch(
    cache: Cache,
    replacements: list[Replacement],
    *,
    kind: str,
    description: str = "",
    reason: str = "",
    keep: bool = True,
    complete: tuple[Iterable[str], Iterable[str]] | None = None,
) -> Changes:
    """Swap every replacement in, or none (see the module docstring); returns the Changes.

    The spool files are consumed either way. With `keep`, the journal stays as
    the undo record and `Changes.undo_id` names it. `complete` is (study UIDs,
    SOP Instance UIDs the caller considered): if any of those studies now holds
    an instance outside that set (it arrived during the edit), StudyChangedError
    is raised and nothing changes, so an edit never reaches only part of a study.
    """
    try:
        with cache._write_lock:
            if complete is not None:
                _check_complete(cache.conn, *complete)
            changes = _run_locked(cache, replacements, kind, description, reason, keep)
    except BaseException:
        for item in replacements:
            item.spool.unlink(missing_ok=True)
        raise
    if keep:
        prune_journals(cache)
    return changes


def _check_complete(
    conn: sqlite3.Connection, studies: Iterable[str], considered: Iterable[str]
) -> None:
    known = set(considered)
    for study in set(studies):
        rows = conn.execute(
            "SELECT sop_instance_uid FROM instance WHERE study_instance_uid=?", (study,)
        )
        if any(row[0] not in known for row in rows):
            raise StudyChangedError(
                "new instances arrived in the study during the edit; nothing changed"
            )


def _run_locked(
    cache: Cache,
    replacements: list[Replacement],
    kind: str,
    description: str,
    reason: str,
    keep: bool,
) -> Changes:
    conn = cache.conn
    entries = _plan_entries(cache, conn, replacements)
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now)) + f"{int(now % 1 * 1e6):06d}"
    undo_id = f"{stamp}-{uuid.uuid4().hex[:12]}"  # sorts by creation (see prune_journals)
    folder = journal_root(cache) / undo_id
    try:
        folder.mkdir(parents=True, mode=0o700)
        (folder / "old").mkdir(mode=0o700)
    except OSError as exc:
        raise os_error_to_store_error(exc, "the edit journal") from exc
    with exclusive_lock(folder / LOCK):
        manifest = _prepare(
            cache, folder, entries, replacements, undo_id, kind, description, reason
        )
        studies_before = {e["old_study"] for e in entries}
        series_before = {e["old_series"] for e in entries}
        existing = _existing(
            conn,
            {r.info.study_instance_uid for r in replacements},
            {r.info.series_instance_uid for r in replacements},
        )
        try:
            _swap(cache, entries, replacements)
            with Transaction(conn):
                for entry, item in sorted(
                    zip(entries, replacements, strict=True), key=lambda p: p[0]["received_at"]
                ):
                    upsert_instance(
                        conn,
                        item.info,
                        entry["new_rel"],
                        entry["size"],
                        entry["source_ae"],
                        received_at=entry["received_at"],
                    )
            files_dir = str(cache.files_dir)
            for entry in entries:
                entry["new_stat"] = list(file_stat(os.path.join(files_dir, entry["new_rel"])))
            manifest["entries"] = entries
            manifest["state"] = COMMITTED
            _write_manifest(folder, manifest)
        except BaseException:
            log.warning("batch %s failed; restoring the previous files", undo_id)
            _restore(cache, folder, manifest)
            raise
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    changes = _changes(conn, replacements, studies_before, series_before, existing)
    changes.undo_id = undo_id if keep else None
    return changes


def _plan_entries(
    cache: Cache, conn: sqlite3.Connection, replacements: list[Replacement]
) -> list[dict]:
    """Check every old instance is still what the caller read; describe each swap."""
    uids = json.dumps([item.old_sop_uid for item in replacements])
    rows = {
        row["sop_instance_uid"]: row
        for row in conn.execute(
            "SELECT * FROM instance WHERE sop_instance_uid IN (SELECT value FROM json_each(?))",
            (uids,),
        )
    }
    files_dir = str(cache.files_dir)
    entries = []
    new_paths = set()
    for item in replacements:
        row = rows.get(item.old_sop_uid)
        if row is None:
            raise NotFoundError(
                "an instance was removed from the cache during the edit; nothing changed"
            )
        try:
            current = file_stat(os.path.join(files_dir, row["path"]))
            size = os.stat(item.spool).st_size
        except OSError as exc:
            raise os_error_to_store_error(exc, "an instance of the study") from exc
        if item.old_stat is not None and current != tuple(item.old_stat):
            raise StoreError(
                "an instance changed while the edit was prepared; nothing changed",
                hint="run the edit again",
            )
        new_rel = instance_relpath(
            item.info.study_instance_uid, item.info.series_instance_uid, item.info.sop_instance_uid
        ).as_posix()
        if new_rel in new_paths:
            raise StoreError("two instances of the edit would share one file; nothing changed")
        new_paths.add(new_rel)
        entries.append(
            {
                "sop_uid": item.old_sop_uid,
                "old_rel": row["path"],
                "new_rel": new_rel,
                "old_study": row["study_instance_uid"],
                "old_series": row["series_instance_uid"],
                "new_study": item.info.study_instance_uid,
                "new_series": item.info.series_instance_uid,
                "spool": os.path.relpath(item.spool, cache.spool_dir),
                "size": size,
                "received_at": row["received_at"],
                "source_ae": row["source_ae"],
                "old_stat": list(current),
            }
        )
    return entries


def _prepare(
    cache: Cache,
    folder: Path,
    entries: list[dict],
    replacements: list[Replacement],
    undo_id: str,
    kind: str,
    description: str,
    reason: str,
) -> dict:
    """Link the old files into the journal and write the `prepared` manifest."""
    try:
        files_dir, kept = str(cache.files_dir), str(folder / "old")
        for number, entry in enumerate(entries):
            _link_or_copy(
                os.path.join(files_dir, entry["old_rel"]), os.path.join(kept, f"{number}.dcm")
            )
        fsync_dir(folder / "old")
        manifest = {
            "undo_id": undo_id,
            "kind": kind,
            "state": PREPARED,
            "created": time.time(),
            "description": description,
            "reason": reason,
            "files_dir": str(cache.files_dir),
            "study_uids_before": sorted({e["old_study"] for e in entries}),
            "study_uids_after": sorted({r.info.study_instance_uid for r in replacements}),
            "entries": entries,
        }
        _write_manifest(folder, manifest)
        fsync_dir(folder)
        return manifest
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError):
            raise os_error_to_store_error(exc, "the edit journal") from exc
        raise


def _swap(cache: Cache, entries: list[dict], replacements: list[Replacement]) -> None:
    """Rename every spool file into place, then drop old files whose path changed."""
    files_dir = str(cache.files_dir)
    touched_dirs: set[str] = set()
    try:
        for entry, item in zip(entries, replacements, strict=True):
            target = os.path.join(files_dir, entry["new_rel"])
            folder = os.path.dirname(target)
            if folder not in touched_dirs:
                os.makedirs(folder, exist_ok=True)
                touched_dirs.add(folder)
            os.replace(item.spool, target)
        new_paths = {e["new_rel"] for e in entries}
        for entry in entries:
            if entry["old_rel"] not in new_paths:
                old = os.path.join(files_dir, entry["old_rel"])
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(old)
                touched_dirs.add(os.path.dirname(old))
    except OSError as exc:
        raise os_error_to_store_error(exc, "the edited instances") from exc
    for folder in touched_dirs:
        fsync_dir(Path(folder))


def _restore(cache: Cache, folder: Path, manifest: dict) -> None:
    """Put back every old file from the journal and re-index it; then drop the journal.

    If a file cannot be put back, the journal stays `prepared` so the next
    `recover` (next Cache opened) finishes the job.
    """
    files_dir = cache.files_dir
    entries = manifest["entries"]
    old_paths = {e["old_rel"] for e in entries}
    failures = 0
    for number, entry in enumerate(entries):
        try:
            _restore_one(cache, folder / "old" / f"{number}.dcm", entry, old_paths)
        except OSError as exc:
            failures += 1
            log.error("could not restore an instance from batch %s: %s", folder.name, exc)
    _reindex(cache, entries)
    for directory in {(files_dir / e["old_rel"]).parent for e in entries}:
        fsync_dir(directory)
    if failures:
        raise StoreError(
            f"{failures} instance(s) could not be restored yet; "
            "they are restored when the cache is next opened"
        )
    shutil.rmtree(folder, ignore_errors=True)


def _restore_one(cache: Cache, kept: Path, entry: dict, old_paths: set[str]) -> None:
    (cache.spool_dir / entry["spool"]).unlink(missing_ok=True)
    target = cache.files_dir / entry["old_rel"]
    try:
        unchanged = tuple(file_stat(target)) == tuple(entry["old_stat"])
    except OSError:
        unchanged = False
    if not unchanged and kept.exists():
        tmp = target.parent / f".{target.name}.restore"
        target.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(kept, tmp)
        os.replace(tmp, target)
    if entry["new_rel"] not in old_paths:
        (cache.files_dir / entry["new_rel"]).unlink(missing_ok=True)


def _reindex(cache: Cache, entries: list[dict]) -> None:
    """Index the restored files in their original arrival order (the last one sets study values)."""
    conn = cache.conn
    try:
        with Transaction(conn):
            for entry in sorted(entries, key=lambda e: e["received_at"]):
                path = cache.files_dir / entry["old_rel"]
                try:
                    info = read_instance_info(path)
                except Exception:  # keep restoring the others; `store check` reports this one
                    log.error("could not re-index a restored instance %s", entry["old_rel"])
                    continue
                upsert_instance(
                    conn,
                    info,
                    entry["old_rel"],
                    path.stat().st_size,
                    entry["source_ae"],
                    received_at=entry["received_at"],
                )
    except (StoreError, sqlite3.DatabaseError) as exc:
        log.error("could not re-index restored instances (run `gearview store rebuild`): %s", exc)


def _existing(
    conn: sqlite3.Connection, studies: set[str], series: set[str]
) -> tuple[set[str], set[str]]:
    found_studies = {
        s
        for s in studies
        if conn.execute("SELECT 1 FROM study WHERE study_instance_uid=?", (s,)).fetchone()
    }
    found_series = {
        s
        for s in series
        if conn.execute("SELECT 1 FROM series WHERE series_instance_uid=?", (s,)).fetchone()
    }
    return found_studies, found_series


def _changes(
    conn: sqlite3.Connection,
    replacements: list[Replacement],
    studies_before: set[str],
    series_before: set[str],
    existing: tuple[set[str], set[str]],
) -> Changes:
    changes = Changes()
    studies_after = {r.info.study_instance_uid for r in replacements}
    series_after = {r.info.series_instance_uid for r in replacements}
    still_studies, still_series = _existing(conn, studies_before, series_before)
    changes.studies_removed = studies_before - still_studies
    changes.series_removed = series_before - still_series
    changes.studies_added = studies_after - existing[0]
    changes.series_added = series_after - existing[1]
    changes.studies_updated = (studies_after | still_studies) - changes.studies_added
    changes.series_updated = (series_after | still_series) - changes.series_added
    changes.instances_updated = {r.old_sop_uid for r in replacements}
    return changes


# ---- recovery, listing and undo ---------------------------------------------------------


def recover(cache: Cache) -> int:
    """Roll back batches a crash interrupted (see module docstring); returns how many."""
    count = 0
    for folder in unlocked_folders(journal_root(cache), LOCK):
        manifest = _read_manifest(folder)
        if manifest is None:
            shutil.rmtree(folder, ignore_errors=True)
            count += 1
        elif manifest.get("state") == PREPARED:
            log.warning("rolling back interrupted batch %s", folder.name)
            with cache._write_lock:
                _restore(cache, folder, manifest)
            count += 1
    return count


def journals(cache: Cache) -> list[BatchInfo]:
    """Committed journals, newest first."""
    root = journal_root(cache)
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        manifest = _read_manifest(folder) if folder.is_dir() else None
        if manifest is None or manifest.get("state") != COMMITTED:
            continue
        found.append(
            BatchInfo(
                undo_id=manifest["undo_id"],
                kind=manifest["kind"],
                created=manifest["created"],
                description=manifest.get("description", ""),
                reason=manifest.get("reason", ""),
                study_uids_before=manifest["study_uids_before"],
                study_uids_after=manifest["study_uids_after"],
                instances=len(manifest["entries"]),
                path=folder,
            )
        )
    return sorted(found, key=lambda b: (b.created, b.undo_id), reverse=True)


def last_for_study(cache: Cache, study_uid: str) -> BatchInfo | None:
    """The most recent committed batch that produced or consumed `study_uid`."""
    for info in journals(cache):
        if study_uid in info.study_uids_after or study_uid in info.study_uids_before:
            return info
    return None


def undo(cache: Cache, undo_id: str, description: str = "") -> Changes:
    """Restore the byte-identical pre-batch files of a committed batch (itself all-or-nothing)."""
    folder = journal_root(cache) / undo_id
    manifest = _read_manifest(folder) if folder.is_dir() and undo_id == folder.name else None
    if manifest is None or manifest.get("state") != COMMITTED:
        raise NotFoundError(f"no undoable edit {undo_id}")
    replacements: list[Replacement] = []
    try:
        for number, entry in enumerate(manifest["entries"]):
            current = cache.files_dir / entry["new_rel"]
            kept = folder / "old" / f"{number}.dcm"
            try:
                stat = tuple(file_stat(current))
            except OSError:
                stat = None
            # a file replaced since by the same instance again (a modality re-sending it,
            # the correction re-applied) goes back to its pre-edit copy too
            if stat != tuple(entry["new_stat"]) and (
                stat is None or not same_content(current, kept)
            ):
                raise StoreError(
                    "the study changed after this edit (other files arrived or it was edited "
                    "again); undo refused, nothing changed"
                )
            spool = spool_path(cache.spool_dir)
            _link_or_copy(kept, spool)
            replacements.append(
                Replacement(
                    spool=spool,
                    info=read_instance_info(spool),
                    old_sop_uid=entry["sop_uid"],
                    old_stat=stat,
                )
            )
    except BaseException:
        for item in replacements:
            item.spool.unlink(missing_ok=True)
        raise
    changes = run_batch(
        cache, replacements, kind="undo", description=description or f"undo {undo_id}", keep=False
    )
    shutil.rmtree(folder, ignore_errors=True)
    return changes


def prune_journals(cache: Cache, keep: int | None = None) -> None:
    """Drop the oldest committed journals beyond `keep` (default KEEP_JOURNALS).

    Folder names start with their creation time, so the order needs no
    manifest: only the few beyond `keep` are read (a 500-instance manifest is
    ~200 kB of JSON, and every edit prunes).
    """
    root = journal_root(cache)
    if not root.is_dir():
        return
    keep = KEEP_JOURNALS if keep is None else keep
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
    for folder in folders[: max(0, len(folders) - keep)]:
        manifest = _read_manifest(folder)
        if manifest is not None and manifest.get("state") == COMMITTED:
            shutil.rmtree(folder, ignore_errors=True)


def drop_journals(cache: Cache, study_uids: Iterable[str]) -> int:
    """Delete the committed journals (undo records, with their old files) of deleted studies."""
    gone = set(study_uids)
    count = 0
    for info in journals(cache):
        if gone.intersection(info.study_uids_before) or gone.intersection(info.study_uids_after):
            shutil.rmtree(info.path, ignore_errors=True)
            count += 1
    return count
