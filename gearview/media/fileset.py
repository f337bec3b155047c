"""A DICOM File-set for one disc (PS3.10 / PS3.11): layout, profiles, DICOMDIR records.

File IDs are generated (`DICOM/ST000001/SE000001/IM000001`), never taken
from DICOM values. Instances already in a syntax the profile allows are
referenced from the cache as they are (their preamble is zeroed by the
cache); the others are converted into a work folder: decompressed for the
General Purpose CD-R profile, or re-encoded as Explicit VR Little Endian.
Directory records are built from the index, reading an instance's header
only for non-image SOP classes (SR, presentation states, documents...).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom import fileset as pd_fileset
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
)

from gearview.errors import GearviewError, InvalidValueError
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.media.dicomdir import DirNode, encode_dicomdir, image_record, new_record
from gearview.media.identity import drop_other_identities, holds_other_identity
from gearview.store import Cache
from gearview.store.records import InstanceRecord, SeriesRecord, StudyRecord

log = logging.getLogger(__name__)

#: Application profiles (PS3.11) and the transfer syntaxes each keeps as is.
PROFILES: dict[str, tuple[str, frozenset[str]]] = {
    "STD-GEN-CD": ("General Purpose CD-R (uncompressed)", frozenset({ExplicitVRLittleEndian})),
    "STD-GEN-DVD-JPEG": (
        "General Purpose DVD with JPEG",
        frozenset(
            {
                ExplicitVRLittleEndian,
                JPEGBaseline8Bit,
                JPEGExtended12Bit,
                JPEGLossless,
                JPEGLosslessSV1,
            }
        ),
    ),
    "STD-GEN-DVD-J2K": (
        "General Purpose DVD with JPEG 2000",
        frozenset({ExplicitVRLittleEndian, JPEG2000Lossless, JPEG2000}),
    ),
}
DEFAULT_PROFILE = "STD-GEN-CD"
DICOM_DIR = "DICOM"
PIXEL_DATA = Tag("PixelData")


class MediaWriteError(GearviewError):
    """A disc or image could not be written; nothing was reported as burned."""


@dataclass
class MediaFile:
    """One file on the medium: its components and where its bytes come from."""

    parts: tuple[str, ...]
    size: int
    source: Path | None = None
    data: bytes | None = None

    @property
    def name(self) -> str:
        return "/".join(self.parts)


@dataclass
class PlannedInstance:
    record: InstanceRecord
    study: StudyRecord
    series: SeriesRecord
    convert: bool
    estimated_size: int


@dataclass
class DiscLayout:
    """Everything that goes on one disc."""

    instances: list[PlannedInstance] = field(default_factory=list)
    files: list[MediaFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def estimated_size(self) -> int:
        return sum(p.estimated_size for p in self.instances)


def check_profile(profile: str) -> frozenset[str]:
    try:
        return PROFILES[profile][1]
    except KeyError:
        raise InvalidValueError(
            f"unknown media profile {profile!r}", hint=f"use one of {', '.join(PROFILES)}"
        ) from None


def _converted_size(record: InstanceRecord) -> int:
    """Upper estimate of an instance once decompressed (header + native pixels)."""
    try:
        ds = pydicom.dcmread(record.path, stop_before_pixels=True)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except Exception:  # estimate only: fall back to a generous guess
        samples, bits = 3, 16
    pixels = (record.rows or 0) * (record.columns or 0) * max(record.number_of_frames, 1) * samples
    return record.size + (pixels * bits + 7) // 8


def plan_instances(cache: Cache, study_uids: Iterable[str], profile: str) -> list[PlannedInstance]:
    """The instances of the studies, in disc order, with conversion needs and sizes."""
    allowed = check_profile(profile)
    planned: list[PlannedInstance] = []
    for study_uid in study_uids:
        study = cache.study(study_uid)
        if study is None:
            raise InvalidValueError(
                f"no study {study_uid} in the local cache", hint="`gearview ls` lists the studies"
            )
        series_by_uid = {s.series_instance_uid: s for s in cache.series(study_uid)}
        for record in cache.instances(study_uid=study_uid):
            convert = record.transfer_syntax_uid not in allowed
            size = (
                _converted_size(record)
                if convert and UID(record.transfer_syntax_uid).is_compressed
                else record.size
            )
            planned.append(
                PlannedInstance(
                    record, study, series_by_uid[record.series_instance_uid], convert, size
                )
            )
    return planned


#: Word size of the binary VRs whose byte order flips between big and little endian.
_WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _to_little_endian(ds: Dataset) -> None:
    """Byte-swap a big endian data set's binary values (pydicom re-encodes the rest)."""
    for elem in ds:
        if elem.tag != PIXEL_DATA and elem.VR in _WORD_SIZE and isinstance(elem.value, bytes):
            size = _WORD_SIZE[elem.VR]
            elem.value = np.frombuffer(elem.value, dtype=f">u{size}").byteswap().tobytes()
    if "PixelData" not in ds:
        return
    if int(ds.get("BitsAllocated", 8) or 8) >= 16:
        arr = ds.pixel_array
        ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    elif ds["PixelData"].VR == "OW":  # 8-bit data in OW words: swap the pairs back
        ds.PixelData = np.frombuffer(ds.PixelData, dtype=">u2").byteswap().tobytes()


def _disc_copy(record: InstanceRecord, target: Path, convert: bool) -> int:
    """Write the disc's copy of a cached instance: Explicit VR LE when `convert`
    (decompressed / byte-swapped as needed), without Original Attributes items of
    another identity (`media/identity.py`)."""
    try:
        ds = pydicom.dcmread(record.path)
        drop_other_identities(ds)
        ds.preamble = b"\x00" * 128
        if not convert:
            pydicom.dcmwrite(target, ds, enforce_file_format=True)
            return target.stat().st_size
        syntax = ds.file_meta.TransferSyntaxUID
        if syntax.is_compressed:
            ds.decompress(generate_instance_uid=False)  # same instance, new syntax
        elif not syntax.is_little_endian:
            _to_little_endian(ds)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        pydicom.dcmwrite(
            target, ds, enforce_file_format=True, little_endian=True, implicit_vr=False
        )
    except GearviewError:
        raise
    except Exception as exc:
        raise MediaWriteError(
            f"cannot convert instance {record.sop_instance_uid} for the disc profile: {exc}",
            hint="choose a profile that keeps this transfer syntax, or leave the instance out",
        ) from None
    return target.stat().st_size


def _with_charset(rec: Dataset, charset: str) -> Dataset:
    if charset and charset != "ISO_IR 6":
        rec.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    return rec


def _patient_record(study: StudyRecord, n: int, charset: str) -> Dataset:
    rec = new_record("PATIENT")
    _with_charset(rec, charset)
    rec.PatientName = study.patient_name
    rec.PatientID = study.patient_id or f"GVNOID{n:04d}"
    return rec


def _study_record(study: StudyRecord, n: int, charset: str) -> Dataset:
    """Type 1 keys missing in real data (empty Study ID...) are invented for the record only."""
    rec = new_record("STUDY")
    _with_charset(rec, charset)
    rec.StudyDate = study.study_date or "19000101"
    rec.StudyTime = study.study_time or "000000"
    rec.StudyDescription = study.study_description
    rec.StudyInstanceUID = study.study_instance_uid
    rec.StudyID = study.study_id or str(n)
    rec.AccessionNumber = study.accession_number
    return rec


def _series_record(series: SeriesRecord, n: int) -> Dataset:
    return new_record(
        "SERIES",
        Modality=series.modality or "OT",
        SeriesInstanceUID=series.series_instance_uid,
        SeriesNumber=series.series_number if series.series_number is not None else n,
    )


def _leaf_node(
    planned: PlannedInstance, n: int, file_path: Path, ts: str, parts: tuple[str, ...]
) -> DirNode:
    """The instance's leaf record: IMAGE straight from the index, others from its header."""
    record = planned.record
    number = record.instance_number if record.instance_number is not None else n
    is_image = (
        record.sop_class_uid not in pd_fileset._FOUR_LEVEL_SOP_CLASSES and record.rows is not None
    )
    if is_image:
        raw = image_record(number, list(parts), record.sop_class_uid, record.sop_instance_uid, ts)
        if raw is not None:
            return DirNode(None, raw=raw)
    rtype = "IMAGE"
    values = Dataset()
    if not is_image:
        ds = pydicom.dcmread(file_path, stop_before_pixels=True)
        rtype = pd_fileset._four_level_record_type(ds)
        try:
            values = pd_fileset.DIRECTORY_RECORDERS[rtype](ds)
        except (ValueError, KeyError, AttributeError):
            log.warning(
                "instance %s lacks type 1 keys for a %s record", record.sop_instance_uid, rtype
            )
            values = Dataset()
    if rtype == "SR DOCUMENT" and values.get("VerificationFlag") == "VERIFIED":
        _verification_time(values, ds)
    rec = new_record(rtype)
    for elem in values:
        # the document's whole content tree does not belong in the directory (it is
        # only 1C for title modifiers, and copies of real-world trees fail validation)
        if elem.keyword != "ContentSequence":
            rec.add(elem)
    if "InstanceNumber" not in rec:  # type 1 in every leaf record we write
        rec.InstanceNumber = number
    rec.ReferencedFileID = list(parts)
    rec.ReferencedSOPClassUIDInFile = record.sop_class_uid
    rec.ReferencedSOPInstanceUIDInFile = record.sop_instance_uid
    rec.ReferencedTransferSyntaxUIDInFile = ts
    return DirNode(rec)


def _verification_time(values: Dataset, ds: Dataset) -> None:
    """A verified SR's record needs Verification DateTime (1C); it lives in the observer item."""
    if "VerificationDateTime" in values:
        return
    for observer in ds.get("VerifyingObserverSequence", []):
        if observer.get("VerificationDateTime"):
            values.VerificationDateTime = observer.VerificationDateTime
            return


def build_layout(
    cache: Cache,
    planned: list[PlannedInstance],
    workdir: Path,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
    keep_original_attributes: bool = False,
) -> tuple[DiscLayout, list[DirNode]]:
    """Assign File IDs, convert what the profile needs, build the DICOMDIR record tree.

    Unless `keep_original_attributes`, instances whose Original Attributes hold
    another identity are copied without those items (a patient disc).
    """
    layout = DiscLayout(instances=planned)
    roots: list[DirNode] = []
    patients: dict[tuple[str, str, str], DirNode] = {}
    studies: dict[str, tuple[DirNode, int]] = {}
    series_nodes: dict[str, tuple[DirNode, int]] = {}
    total = len(planned)
    for i, item in enumerate(planned):
        if token is not None and i % 32 == 0:
            token.check()
        if i % 32 == 0:
            progress(Progress(i, total, "preparing files"))
        study, series, record = item.study, item.series, item.record
        charset = record.specific_character_set
        key = (study.patient_id, study.issuer_of_patient_id, study.patient_name)
        patient = patients.get(key)
        if patient is None:
            patient = patients[key] = DirNode(_patient_record(study, len(patients) + 1, charset))
            roots.append(patient)
        if study.study_instance_uid not in studies:
            node = DirNode(_study_record(study, len(studies) + 1, charset))
            patient.children.append(node)
            studies[study.study_instance_uid] = (node, len(studies) + 1)
        study_node, study_no = studies[study.study_instance_uid]
        if series.series_instance_uid not in series_nodes:
            node = DirNode(_series_record(series, len(study_node.children) + 1))
            study_node.children.append(node)
            series_nodes[series.series_instance_uid] = (node, len(study_node.children))
        series_node, series_no = series_nodes[series.series_instance_uid]
        parts = (
            DICOM_DIR,
            f"ST{study_no:06d}",
            f"SE{series_no:06d}",
            f"IM{len(series_node.children) + 1:06d}",
        )
        strip = not keep_original_attributes and holds_other_identity(record.path)
        if item.convert or strip:
            source = workdir / f"{uuid.uuid4().hex}.dcm"
            size = _disc_copy(record, source, item.convert)
            ts = ExplicitVRLittleEndian if item.convert else record.transfer_syntax_uid
        else:
            source, size, ts = record.path, record.size, record.transfer_syntax_uid
        series_node.children.append(
            _leaf_node(item, len(series_node.children) + 1, source, ts, parts)
        )
        layout.files.append(MediaFile(parts, size, source=source))
    progress(Progress(total, total, "files prepared"))
    return layout, roots


def add_dicomdir(layout: DiscLayout, roots: list[DirNode], fileset_id: str) -> None:
    data = encode_dicomdir(roots, fileset_id)
    layout.files.insert(0, MediaFile(("DICOMDIR",), len(data), data=data))
