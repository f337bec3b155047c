"""The import preview: every file on a medium classified before anything is imported.

Each member is either a DICOM instance (with its header read through the
cache's validating `read_instance_info`), a non-DICOM file (PDI web pages,
viewers, autorun files: listed, never opened as anything but bytes), an
unreadable file (with the reason), or refused for safety. Archive members
are extracted one at a time into a private work folder inside the cache's
spool (names are random, never taken from the medium) and kept there until
the import finishes, so each member is read from the medium once.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from gearview.errors import InvalidDicomError
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.media.dicomdir import read_dicomdir
from gearview.media.sources import Entry, MediaSource, MemberError, Refusal, open_source
from gearview.store.header import read_instance_info
from gearview.store.records import InstanceInfo

log = logging.getLogger(__name__)
HEAD_SIZE = 132
PROGRESS_EVERY = 64
#: A DICOMDIR holds ~500 bytes per file: 128 MiB is far beyond any real disc.
MAX_DICOMDIR_SIZE = 128 << 20
#: An extraction folder this old belongs to no running import (a crash left it).
STALE_SECONDS = 24 * 3600

#: Kinds of non-DICOM content recognised by their first bytes (for the report only).
_SIGNATURES = (
    (b"MZ", "Windows executable"),
    (b"\x7fELF", "Linux executable"),
    (b"\xcf\xfa\xed\xfe", "macOS executable"),
    (b"PK\x03\x04", "zip archive (nested archives are not expanded)"),
    (b"%PDF", "PDF document"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"\x89PNG", "PNG image"),
    (b"#!", "script"),
)


@dataclass
class FoundInstance:
    """A DICOM file found on the medium, ready to import."""

    name: str
    info: InstanceInfo
    path: Path
    size: int
    in_dicomdir: bool = True


@dataclass
class Skipped:
    """A file not imported, and why (every one of these goes into the report)."""

    name: str
    reason: str
    category: str  # "non-dicom", "unreadable", "refused", "dicomdir"


@dataclass
class SeriesNode:
    series_uid: str
    modality: str
    number: int | None
    description: str
    instances: list[FoundInstance] = field(default_factory=list)


@dataclass
class StudyNode:
    study_uid: str
    date: str
    description: str
    accession: str
    series: dict[str, SeriesNode] = field(default_factory=dict)

    @property
    def instance_count(self) -> int:
        return sum(len(s.instances) for s in self.series.values())


@dataclass
class PatientNode:
    patient_id: str
    issuer: str
    name: str
    birth_date: str
    sex: str
    studies: dict[str, StudyNode] = field(default_factory=dict)


@dataclass
class Preview:
    """What a medium holds; call `close()` (or use `with`) to drop extracted copies."""

    label: str
    instances: list[FoundInstance] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    has_dicomdir: bool = False
    partial: bool = False
    workdir: Path | None = None
    files_seen: int = 0

    def by_category(self, category: str) -> list[Skipped]:
        return [s for s in self.skipped if s.category == category]

    def tree(self) -> list[PatientNode]:
        """Patients > studies > series > instances, in a stable order."""
        patients: dict[tuple[str, str, str], PatientNode] = {}
        for found in self.instances:
            info = found.info
            key = (info.patient_id, info.issuer_of_patient_id, info.patient_name)
            patient = patients.get(key)
            if patient is None:
                patient = patients[key] = PatientNode(
                    info.patient_id,
                    info.issuer_of_patient_id,
                    info.patient_name,
                    info.patient_birth_date,
                    info.patient_sex,
                )
            study = patient.studies.get(info.study_instance_uid)
            if study is None:
                study = patient.studies[info.study_instance_uid] = StudyNode(
                    info.study_instance_uid,
                    info.study_date,
                    info.study_description,
                    info.accession_number,
                )
            series = study.series.get(info.series_instance_uid)
            if series is None:
                series = study.series[info.series_instance_uid] = SeriesNode(
                    info.series_instance_uid,
                    info.modality,
                    info.series_number,
                    info.series_description,
                )
            series.instances.append(found)
        return list(patients.values())

    def counts(self) -> dict[str, int]:
        tree = self.tree()
        return {
            "patients": len(tree),
            "studies": sum(len(p.studies) for p in tree),
            "series": sum(len(s.series) for p in tree for s in p.studies.values()),
            "instances": len(self.instances),
            "non_dicom": len(self.by_category("non-dicom")),
            "unreadable": len(self.by_category("unreadable")),
            "refused": len(self.by_category("refused")),
        }

    def close(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Preview:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe_non_dicom(head: bytes, name: str) -> str:
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return f"not DICOM: {kind}"
    lowered = head[:64].lower()
    if b"<html" in lowered or b"<!doctype" in lowered or name.lower().endswith((".htm", ".html")):
        return "not DICOM: web page (listed, never opened)"
    if name.lower().rsplit("/", 1)[-1] in ("autorun.inf", "readme.txt"):
        return "not DICOM: disc information file"
    return "not DICOM: no DICM prefix at byte 128"


class _Scanner:
    """One scan of one source; keeps archive members in a private work folder."""

    def __init__(
        self, source: MediaSource, work_parent: Path, progress: ProgressCallback, token: CancelToken
    ) -> None:
        self.source = source
        self.progress = progress
        self.token = token
        self.preview = Preview(label=source.label)
        self._work_parent = work_parent
        self._dicomdirs: list[Entry] = []

    def _workdir(self) -> Path:
        if self.preview.workdir is None:
            self._work_parent.mkdir(parents=True, exist_ok=True)
            self.preview.workdir = Path(tempfile.mkdtemp(prefix="import-", dir=self._work_parent))
        return self.preview.workdir

    def _materialize(self, entry: Entry) -> tuple[Path, bool]:
        """A readable host path for the member, and whether it is our own copy."""
        local = self.source.local_path(entry)
        if local is not None:
            return local, False
        target = self._workdir() / uuid.uuid4().hex
        try:
            with open(target, "xb") as out:
                self.source.copy_to(entry, out, entry.size)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target, True

    def run(self) -> Preview:
        self.progress(Progress(0, None, "listing files"))
        entries: list[Entry] = []
        for item in self.source.scan(self.token):
            if isinstance(item, Refusal):
                self.preview.skipped.append(Skipped(item.name, item.reason, "refused"))
                if "truncated" in item.reason:
                    self.preview.partial = True
            else:
                entries.append(item)
            if (len(entries) + len(self.preview.skipped)) % 1024 == 0:
                self.progress(Progress(len(entries), None, "listing files"))
        total = len(entries)
        self.preview.files_seen = total + len(self.preview.skipped)
        for done, entry in enumerate(entries):
            if done % PROGRESS_EVERY == 0:
                self.token.check()
                self.progress(Progress(done, total, "reading headers"))
            self._classify(entry)
        self._apply_dicomdirs({e.name for e in entries})
        self.progress(Progress(total, total, "preview ready"))
        return self.preview

    def _classify(self, entry: Entry) -> None:
        if entry.name.rsplit("/", 1)[-1].upper() == "DICOMDIR":
            self._dicomdirs.append(entry)
            return
        if entry.size == 0:
            self.preview.skipped.append(Skipped(entry.name, "empty file (0 bytes)", "unreadable"))
            return
        try:
            path, owned = self._materialize(entry)
        except MemberError as exc:
            self.preview.skipped.append(Skipped(entry.name, exc.message, "unreadable"))
            if "truncated" in exc.message:
                self.preview.partial = True
            return
        except OSError as exc:
            self.preview.skipped.append(
                Skipped(entry.name, f"cannot read: {exc.strerror}", "unreadable")
            )
            return
        keep = self._classify_file(entry, path)
        if owned and not keep:
            path.unlink(missing_ok=True)

    def _classify_file(self, entry: Entry, path: Path) -> bool:
        """Record the file; True when it is an importable instance."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(HEAD_SIZE)
        except OSError as exc:
            self.preview.skipped.append(
                Skipped(entry.name, f"cannot read: {exc.strerror}", "unreadable")
            )
            return False
        if head[128:132] != b"DICM":
            self.preview.skipped.append(
                Skipped(entry.name, _describe_non_dicom(head, entry.name), "non-dicom")
            )
            return False
        try:
            info = read_instance_info(path)
        except InvalidDicomError as exc:
            self.preview.skipped.append(Skipped(entry.name, exc.message, "unreadable"))
            return False
        self.preview.instances.append(FoundInstance(entry.name, info, path, entry.size))
        return True

    def _apply_dicomdirs(self, names: set[str]) -> None:
        """Report DICOMDIR problems, missing referenced files and orphans."""
        if not self._dicomdirs:
            return
        self.preview.has_dicomdir = True
        folded = {n.upper(): n for n in names}
        referenced: set[str] = set()
        for entry in self._dicomdirs:
            display_dir = entry.name.rsplit("/", 1)[0] if "/" in entry.name else ""
            if entry.size > MAX_DICOMDIR_SIZE:
                self.preview.skipped.append(
                    Skipped(
                        entry.name,
                        f"DICOMDIR of {entry.size} bytes is too large to read; "
                        "the files were scanned instead",
                        "dicomdir",
                    )
                )
                continue
            try:
                path, owned = self._materialize(entry)
            except (MemberError, OSError) as exc:
                self.preview.skipped.append(
                    Skipped(entry.name, f"unreadable DICOMDIR ({exc})", "dicomdir")
                )
                continue
            reading = read_dicomdir(path, display_dir)
            if owned:
                path.unlink(missing_ok=True)
            for what, reason in reading.problems:
                self.preview.skipped.append(Skipped(what, reason, "dicomdir"))
            for ref in reading.references:
                actual = folded.get(ref.upper())
                if actual is None:
                    self.preview.skipped.append(
                        Skipped(
                            ref, "referenced by the DICOMDIR but missing on the medium", "dicomdir"
                        )
                    )
                else:
                    referenced.add(actual)
        for found in self.preview.instances:
            found.in_dicomdir = found.name in referenced


def scan_source(
    source: MediaSource,
    work_parent: Path,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> Preview:
    """Classify every member of an open source (the caller closes the source)."""
    scanner = _Scanner(source, work_parent, progress, token or CancelToken())
    try:
        return scanner.run()
    except BaseException:
        scanner.preview.close()
        raise


def sweep_stale(work_parent: Path, max_age: float = STALE_SECONDS) -> int:
    """Remove extraction folders left by a crashed import (older than `max_age`)."""
    removed = 0
    try:
        children = list(work_parent.glob("import-*"))
    except OSError:
        return 0
    now = time.time()
    for child in children:
        try:
            if now - child.stat().st_mtime > max_age:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


def preview_path(
    path: str | os.PathLike[str],
    work_parent: Path,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> Preview:
    """Open a folder / DICOMDIR / ISO / zip and preview it."""
    sweep_stale(work_parent)
    with open_source(path) as source:
        preview = scan_source(source, work_parent, progress, token)
    log.info("previewed %s: %s", preview.label, preview.counts())
    return preview
