"""The one API through which anything enters or leaves the local cache.

SCP receive, C-MOVE results, media import and edits all call `Cache`: the
file is written to the spool, fsynced, renamed into `files/`, and only then
indexed; events are emitted after the commit, so a listener never sees an
instance that is not safely on disk. Each operation is reported as ONE
CACHE_CHANGED naming its initiator: a received instance is one operation, an
import of N files inside `Cache.operation("import")` is one too.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.tag import Tag

from gearview import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from gearview import events as ev
from gearview.changes import Changes
from gearview.config import Config, load_config
from gearview.errors import InvalidDicomError, StoreError
from gearview.home import Home
from gearview.platform import choose_file_io
from gearview.platform.portable import SpoolReserve
from gearview.store import audit, removal
from gearview.store import batch as batch_journal
from gearview.store.atomic import BATCH_PREFIX, fsync_dir, os_error_to_store_error, spool_writer
from gearview.store.attributes import PATIENT, SERIES, at_level
from gearview.store.conflicts import CACHED_COLUMNS, conflict_with, same_content
from gearview.store.group_commit import GroupCommit, Publication
from gearview.store.header import read_instance_info
from gearview.store.incoming import Incoming
from gearview.store.index import STUDY_QUERY, IndexConnections, select_list
from gearview.store.intake import IMPORT, Corrected, Corrector, StoredInstance, set_aside
from gearview.store.ledger import NOT_CORRECTED, Conflict, Ledger
from gearview.store.paths import SPOOL_DIR, instance_relpath
from gearview.store.records import (
    InstanceInfo,
    InstanceRecord,
    PatientRecord,
    SeriesRecord,
    StudyRecord,
)

log = logging.getLogger(__name__)
COPY_CHUNK = 1 << 20
_SERIES_SELECT = select_list(SeriesRecord.ATTRIBUTES, SERIES)


def _sniff_part10(path: Path) -> None:
    """Refuse at once what cannot be a Part-10 file (empty, no `DICM` marker)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise InvalidDicomError(f"cannot read file: {exc.strerror}") from None
    if not head:
        raise InvalidDicomError("empty file")
    if len(head) < 132 or head[128:132] != b"DICM":
        raise InvalidDicomError("not a DICOM Part-10 file (no DICM marker after the preamble)")


#: (keyword, encoded tag + VR, pad byte) of the file meta elements `encode_file_meta`
#: writes itself, in tag order.
_META_LAYOUT = tuple(
    (keyword, struct.pack("<HH2s", Tag(keyword).group, Tag(keyword).element, vr), pad)
    for keyword, vr, pad in (
        ("MediaStorageSOPClassUID", b"UI", b"\x00"),
        ("MediaStorageSOPInstanceUID", b"UI", b"\x00"),
        ("TransferSyntaxUID", b"UI", b"\x00"),
        ("ImplementationClassUID", b"UI", b"\x00"),
        ("ImplementationVersionName", b"SH", b" "),
        ("SourceApplicationEntityTitle", b"AE", b" "),
    )
)
_META_TAGS = {int(Tag(keyword)): keyword for keyword, _, _ in _META_LAYOUT}
_META_REQUIRED = ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID",
                  "ImplementationClassUID", "ImplementationVersionName")
_META_VERSION = struct.pack("<HH2sHL", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"


def encode_file_meta(file_meta: FileMetaDataset) -> bytes:
    """The encoded file meta group, byte for byte what pydicom's `write_file_meta_info` writes.

    pydicom's general writer was ~15 % of a network receive; the meta we
    build ourselves (`build_file_meta`) is encoded here directly, anything
    else still goes through pydicom.
    """
    values: dict[str, str] = {}
    for elem in file_meta.elements():
        keyword = _META_TAGS.get(int(elem.tag))
        value = getattr(elem, "value", None) if isinstance(elem, DataElement) else None
        if keyword is None or not isinstance(value, str) or not value.isascii():
            return _pydicom_file_meta(file_meta)
        values[keyword] = value
    if not all(values.get(keyword) for keyword in _META_REQUIRED):
        return _pydicom_file_meta(file_meta)
    body = bytearray(_META_VERSION)
    for keyword, tag_and_vr, pad in _META_LAYOUT:
        value = values.get(keyword)
        if value is None:
            continue
        encoded = value.encode("ascii")
        if len(encoded) % 2:
            encoded += pad
        body += tag_and_vr + struct.pack("<H", len(encoded)) + encoded
    return struct.pack("<HH2sHL", 0x0002, 0x0000, b"UL", 4, len(body)) + bytes(body)


def _meta_text(file_meta: FileMetaDataset, keyword: str) -> str:
    return str(file_meta.get(keyword, "") or "")


def _pydicom_file_meta(file_meta: FileMetaDataset) -> bytes:
    buf = BytesIO()
    write_file_meta_info(buf, file_meta, enforce_standard=True)
    return buf.getvalue()


def build_file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str,
                    source_ae: str = "") -> FileMetaDataset:
    """File meta for a data set we received over the network (PS3.10 7.1)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = transfer_syntax_uid
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae
    return meta


class Cache:
    """Part-10 files under the storage folder plus the SQLite index in the home folder."""

    def __init__(self, home: Home, config: Config | None = None,
                 bus: ev.EventBus | None = None, corrector: Corrector | None = None) -> None:
        self.home = home.ensure()
        self.config = config or load_config(home)
        self.files_dir = self.config.storage_dir(home)
        self.spool_dir = self.files_dir / SPOOL_DIR
        self.bus = bus or ev.bus
        #: How files reach the disk on this OS (`gearview.platform`), chosen once.
        self.io = choose_file_io()
        log.debug("file I/O: %s", self.io.name)
        try:
            self.files_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.spool_dir.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise os_error_to_store_error(exc, "the storage folder") from exc
        if self.config.storage.set_spool_topdir_flag and not self.io.spread_subfolders(
            self.spool_dir
        ):
            log.info("storage.set_spool_topdir_flag: not supported for %s", self.spool_dir)
        self.index = IndexConnections(home.index_file)
        self.index.get()
        #: Correction rules, sends and conflicts (`store/ledger.py`).
        self.ledger = Ledger(home.ledger_file)
        #: Re-applies corrections to arrivals (`edit/corrections.py`); without one, an
        #: arrival of an edited study is stored as it came and the study flagged.
        self.corrector = corrector
        self._write_lock = threading.Lock()
        self._group_commit = GroupCommit(self._write_lock, lambda: self.conn, self._admit)
        self._reserve: SpoolReserve | None = None
        self._operations = threading.local()
        #: Called before a received instance is written; raises StorageFullError to refuse
        #: it (the retention policy's store gate, `lifecycle/monitor.py`).
        self.admission: Callable[[], None] | None = None
        self.recover_batches()

    @classmethod
    def open(cls, home: Home | None = None) -> Cache:
        return cls(home or Home.default())

    def close(self) -> None:
        self.release_spool_files()
        self.index.close_all()
        self.ledger.close()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's index connection (for read queries)."""
        return self.index.get()

    # ---- change reporting ----------------------------------------------

    @contextmanager
    def operation(self, initiator: object) -> Iterator[Changes]:
        """Report what this thread changes inside the block as one CACHE_CHANGED.

        Nested blocks join the outermost one, whose initiator is reported. The
        event goes out when the block ends, also when it ends with an error:
        what was stored before the error is in the cache.
        """
        if getattr(self._operations, "pending", None) is not None:
            yield self._operations.pending
            return
        pending = self._operations.pending = Changes()
        try:
            yield pending
        finally:
            self._operations.pending = None
            if pending:
                self.bus.emit(ev.CACHE_CHANGED, changes=pending, initiator=initiator)

    def _changed(self, changes: Changes, initiator: object) -> None:
        """Publish one mutation, or add it to this thread's open `operation`."""
        pending = getattr(self._operations, "pending", None)
        if pending is not None:
            pending.merge(changes)
        elif changes:
            self.bus.emit(ev.CACHE_CHANGED, changes=changes, initiator=initiator)

    # ---- writing -------------------------------------------------------

    def begin_received(self, file_meta: FileMetaDataset) -> Incoming:
        """Start storing a data set exactly as received (no decoding), with our file meta.

        The caller writes the data set bytes as they arrive and then calls
        `finish` (or `discard`); see `Incoming`. Raises StorageFullError when
        `admission` refuses new instances (the SCP answers A700).
        """
        if self.admission is not None:
            self.admission()
        reserve = self._reserve
        reserved = reserve.take() if reserve is not None else None
        return Incoming(self, file_meta, encode_file_meta(file_meta), reserved)

    def add_received(self, file_meta: FileMetaDataset, dataset: bytes | memoryview | BinaryIO,
                     source_ae: str = "",
                     check: Callable[[InstanceInfo], None] | None = None) -> StoredInstance:
        """Store a whole received data set (bytes or a file); see `begin_received`."""
        incoming = self.begin_received(file_meta)
        try:
            if isinstance(dataset, (bytes, bytearray, memoryview)):
                incoming.write(dataset)
            else:
                while chunk := dataset.read(COPY_CHUNK):
                    incoming.write(chunk)
        except BaseException:
            incoming.discard()
            raise
        return incoming.finish(source_ae, check)

    def reserve_spool_files(self) -> bool:
        """Keep unnamed spool files open for `begin_received` (the SCP does while it runs).

        False where the file I/O cannot make unnamed files (the portable one, or
        no O_TMPFILE support): the receive path then creates its files as before.
        """
        with self._write_lock:
            if self._reserve is None:
                self._reserve = self.io.spool_reserve(self.spool_dir)
            return self._reserve is not None

    def release_spool_files(self) -> None:
        """Stop keeping spool files open."""
        with self._write_lock:
            reserve, self._reserve = self._reserve, None
        if reserve is not None:
            reserve.stop()

    def add_file(self, path: str | os.PathLike[str], source_ae: str = "", *,
                 replace: bool = False) -> StoredInstance:
        """Copy a Part-10 file into the cache (the preamble is zeroed: never executable).

        Only the spool copy, which is what gets published, is fully validated;
        the source is just sniffed first so junk is not copied at all. A file whose
        SOP Instance UID is cached as another instance (another study, patient or
        image) is not stored: the result's `conflict` says why, unless `replace`.
        """
        source = Path(path)
        _sniff_part10(source)
        with spool_writer(self.spool_dir, "the imported instance") as (spool, fh):
            with open(source, "rb") as src:
                src.seek(128)
                fh.write(b"\x00" * 128)
                shutil.copyfileobj(src, fh, COPY_CHUNK)
        try:
            info = read_instance_info(spool)
        except BaseException:
            spool.unlink(missing_ok=True)
            raise
        return self.publish_spool(spool, info, source_ae, "import", replace=replace,
                                  keep_conflict=False)

    def publish_spool(self, spool: Path, info: InstanceInfo, source_ae: str,
                      initiator: object = "receive", *, replace: bool = False,
                      keep_conflict: bool = True) -> StoredInstance:
        """Move a complete, fsynced spool file into place and index it (see `store/intake.py`).

        The study's corrections are re-applied first. An arrival that conflicts
        with the cached copy of its SOP Instance UID is kept aside
        (`keep_conflict`, for what a peer was told is stored) or dropped, unless
        `replace`.
        """
        corrected: dict[str, str] = {}
        uncorrected = None
        if self.ledger.has_rules(info.study_instance_uid, info.sop_instance_uid):
            spool, info, corrected, uncorrected = self._reapply(spool, info, source_ae)
        relpath = instance_relpath(info.study_instance_uid, info.series_instance_uid,
                                   info.sop_instance_uid)
        target = self.files_dir / relpath
        item = Publication(spool, target, relpath.as_posix(), spool.stat().st_size, info,
                           source_ae, replace=replace, keep_conflict=keep_conflict)
        item.content = None if replace else self._compare_content(spool, info)
        self._group_commit.publish(item)
        if item.conflict is not None:
            return self._refused(item, initiator)
        if corrected:
            audit.append(self.home, "correction re-applied", study_uid=info.study_instance_uid,
                         sop_uid=info.sop_instance_uid, source=source_ae,
                         attributes=sorted(corrected))
        if uncorrected is not None:
            self.ledger.add_conflict(uncorrected)
            audit.append(self.home, "correction not re-applied",
                         study_uid=info.study_instance_uid, sop_uid=info.sop_instance_uid,
                         source=source_ae)
        study_new, previous = item.study_new, item.previous
        changes = Changes()
        if previous is not None and previous["path"] != relpath.as_posix():
            (self.files_dir / previous["path"]).unlink(missing_ok=True)
            changes.studies_updated.add(previous["study_instance_uid"])
            changes.series_updated.add(previous["series_instance_uid"])
        studies = changes.studies_added if study_new else changes.studies_updated
        studies.add(info.study_instance_uid)
        changes.series_updated.add(info.series_instance_uid)
        instances = changes.instances_updated if previous else changes.instances_added
        instances.add(info.sop_instance_uid)
        replaced = previous is not None
        self.bus.emit(ev.INSTANCE_STORED, info=info, path=target, source_ae=source_ae,
                      replaced=replaced)
        self._changed(changes, initiator)
        return StoredInstance(info=info, path=target, changes=changes, replaced=replaced,
                              corrected=corrected)

    # ---- the intake rules (store/intake.py) --------------------------------

    def _reapply(self, spool: Path, info: InstanceInfo, source: str,
                 ) -> tuple[Path, InstanceInfo, dict[str, str], Conflict | None]:
        """The arrival with its study's corrections, or as it came and the reason it is flagged."""
        rules = self.ledger.rules_for(info.study_instance_uid, info.sop_instance_uid)
        if not rules:
            return spool, info, {}, None
        apply = self.config.qc.reapply_corrections and self.corrector is not None
        if self.corrector is None:
            log.error("an instance of an edited study arrived but this cache re-applies no "
                      "corrections; stored as it came and flagged")
            result: Corrected | None = Corrected(spool, info, {})
        else:
            try:
                result = self.corrector(spool, rules, self.spool_dir, apply=apply)
            except BaseException:
                spool.unlink(missing_ok=True)
                raise
        if result is None:  # it already holds every corrected value
            return spool, info, {}, None
        if apply:
            spool.unlink(missing_ok=True)
            return result.spool, result.info, result.previous, None
        flag = Conflict(NOT_CORRECTED, info.sop_instance_uid, info.study_instance_uid,
                        info.patient_id, info.issuer_of_patient_id, source=source)
        return spool, info, {}, flag

    def _compare_content(self, spool: Path, info: InstanceInfo) -> tuple[str, bool] | None:
        """(cached path, same image?) for a copy of the same instance, read outside the lock."""
        row = self.conn.execute(f"SELECT {CACHED_COLUMNS} FROM instance WHERE "
                                "sop_instance_uid = ?", (info.sop_instance_uid,)).fetchone()
        if row is None or row["study_instance_uid"] != info.study_instance_uid:
            return None
        return row["path"], same_content(self.files_dir / row["path"], spool)

    def _admit(self, item: Publication, cached: sqlite3.Row) -> Conflict | None:
        """Under the write lock: refuse an arrival that is not the cached instance again."""
        if item.content is not None and item.content[0] == cached["path"]:
            same = item.content[1]
        else:
            same = same_content(self.files_dir / cached["path"], item.spool)
        conflict = conflict_with(item.info, cached, same, item.source_ae or IMPORT)
        if conflict is not None:
            conflict.kept = set_aside(item.spool, self.files_dir, item.keep_conflict)
        return conflict

    def _refused(self, item: Publication, initiator: object) -> StoredInstance:
        conflict = item.conflict
        assert conflict is not None
        self.ledger.add_conflict(conflict)
        audit.append(self.home, "arrival not stored", kind=conflict.kind,
                     sop_uid=conflict.sop_uid, study_uid=conflict.study_uid,
                     cached_study_uid=conflict.cached_study_uid, source=conflict.source,
                     kept=conflict.kept)
        log.warning("not stored: %s", conflict.describe())
        changes = Changes(studies_updated={conflict.cached_study_uid})
        self._changed(changes, initiator)
        cached = self.instance(conflict.sop_uid)
        return StoredInstance(info=item.info, path=cached.path if cached else item.target,
                              changes=changes, replaced=False, conflict=conflict)

    def remove_studies(self, study_uids: Iterable[str],
                       unchanged_since: dict[str, float] | None = None) -> Changes:
        """Delete every file and index row of the studies, all or nothing (`store/removal.py`).

        Unknown UIDs raise NotFoundError before anything changes; see
        `removal.remove_studies` for `unchanged_since`.
        """
        changes = removal.remove_studies(self, study_uids, unchanged_since)
        self._changed(changes, "remove")
        return changes

    def replace_batch(self, replacements: list[batch_journal.Replacement], *, kind: str,
                      description: str = "", reason: str = "", keep_undo: bool = True,
                      complete: tuple[Iterable[str], Iterable[str]] | None = None) -> Changes:
        """Swap many spool files in at once, all or nothing, in ONE index transaction.

        Used by edits, structure fixes (paths change with the Study UID) and
        undo. The old files are kept in a journal until every new file is
        renamed and indexed; with `keep_undo` the journal stays as the undo
        record (`Changes.undo_id`). What a crash at each step leaves is
        described in `gearview/store/batch.py`. `complete` = (study UIDs, SOP UIDs
        considered) refuses the batch if those studies gained instances meanwhile.
        """
        changes = batch_journal.run_batch(self, replacements, kind=kind, description=description,
                                          reason=reason, keep=keep_undo, complete=complete)
        self._changed(changes, kind)
        return changes

    def undo_batch(self, undo_id: str) -> Changes:
        """Restore the byte-identical files a batch replaced (refused if they changed since)."""
        changes = batch_journal.undo(self, undo_id)
        self._changed(changes, "undo")
        return changes

    def recover_batches(self) -> int:
        """Roll back edits and finish deletes a crash interrupted; never fatal."""
        count = 0
        for recover, what in ((batch_journal.recover, "roll back an interrupted edit"),
                              (removal.recover, "finish an interrupted delete")):
            try:
                count += recover(self)
            except (OSError, StoreError, sqlite3.DatabaseError) as exc:
                log.error("could not %s: %s", what, exc)
        return count

    def clear_spool(self) -> int:
        """Remove spool leftovers of a crash (never acknowledged, so nothing is lost)."""
        count = 0
        for leftover in self.spool_dir.glob("*.part"):
            leftover.unlink(missing_ok=True)
            count += 1
        for folder in self.spool_dir.glob(f"{BATCH_PREFIX}*"):
            count += sum(1 for _ in folder.glob("*.part"))
            shutil.rmtree(folder, ignore_errors=True)
        if count:
            fsync_dir(self.spool_dir)
        return count

    # ---- reading -------------------------------------------------------

    def studies(self, where: str = "", params: Iterable[object] = ()) -> list[StudyRecord]:
        """All studies (optionally filtered by an SQL condition on `s`/`p`), newest first."""
        sql = STUDY_QUERY + (f" WHERE {where}" if where else "") + \
            " ORDER BY s.study_date DESC, s.study_time DESC, s.updated_at DESC"
        return [StudyRecord.from_row(r) for r in self.conn.execute(sql, tuple(params))]

    def study(self, study_uid: str) -> StudyRecord | None:
        found = self.studies("s.study_instance_uid = ?", (study_uid,))
        return found[0] if found else None

    def studies_by_uid(self, study_uids: Iterable[str]) -> list[StudyRecord]:
        uids = list(study_uids)
        if not uids:
            return []
        marks = ",".join("?" * len(uids))
        return self.studies(f"s.study_instance_uid IN ({marks})", uids)

    def patients(self, patient_id: str, issuer: str = "") -> list[PatientRecord]:
        """The patient rows with this Patient ID and issuer (one per distinct name/birth date)."""
        rows = self.conn.execute(
            f"SELECT {select_list(at_level(PATIENT))} FROM patient p "
            "WHERE patient_id = ? AND issuer_of_patient_id = ? ORDER BY pk", (patient_id, issuer))
        return [PatientRecord.from_row(r) for r in rows]

    def series(self, study_uid: str) -> list[SeriesRecord]:
        rows = self.conn.execute(
            f"SELECT {_SERIES_SELECT} FROM series se WHERE se.study_instance_uid = ? "
            "ORDER BY se.series_number IS NULL, se.series_number, se.series_instance_uid",
            (study_uid,),
        )
        return [SeriesRecord.from_row(r) for r in rows]

    def instances(self, study_uid: str | None = None, series_uid: str | None = None,
                  sop_uids: Iterable[str] | None = None) -> list[InstanceRecord]:
        """Instances of a study, a series or a list of SOP Instance UIDs, in display order."""
        clauses, params = [], []
        if study_uid is not None:
            clauses.append("study_instance_uid = ?")
            params.append(study_uid)
        if series_uid is not None:
            clauses.append("series_instance_uid = ?")
            params.append(series_uid)
        if sop_uids is not None:
            uids = list(sop_uids)
            if not uids:
                return []
            clauses.append(f"sop_instance_uid IN ({','.join('?' * len(uids))})")
            params.extend(uids)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(
            f"SELECT * FROM instance {where} ORDER BY series_instance_uid, "
            "instance_number IS NULL, instance_number, sop_instance_uid", params)
        return [InstanceRecord.from_row(r, self.files_dir) for r in rows]

    def instance(self, sop_uid: str) -> InstanceRecord | None:
        found = self.instances(sop_uids=[sop_uid])
        return found[0] if found else None

    def size(self) -> int:
        """Bytes of every indexed file."""
        return int(self.conn.execute("SELECT total(size) FROM instance").fetchone()[0])

    def study_sizes(self) -> dict[str, int]:
        """Study Instance UID -> bytes of its indexed files."""
        rows = self.conn.execute("SELECT study_instance_uid, total(size) FROM instance "
                                 "GROUP BY study_instance_uid")
        return {uid: int(size) for uid, size in rows}

    def counts(self) -> dict[str, int]:
        conn = self.conn
        return {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                for name in ("patient", "study", "series", "instance")}
