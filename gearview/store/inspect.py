"""Read the attributes the index needs from a Part-10 file, and refuse files
that only look readable.

pydicom reads truncated and garbage files without complaint, so before a
file is accepted we check that every element (Pixel Data above all) really
ends inside the file, cap deflate inflation and catch runaway nesting.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, UID

from gearview.errors import InvalidDicomError

PIXEL_DATA = Tag("PixelData")
ITEM = 0xFFFEE000
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF
DEFER_SIZE = 4096
#: An inflated deflate stream larger than this and more than MAX_INFLATE_RATIO
#: times its compressed size is treated as a bomb.
INFLATE_BOMB_FLOOR = 32 << 20
MAX_INFLATE_RATIO = 200
MAX_FRAGMENTS = 1_000_000


@dataclass
class InstanceInfo:
    """What the index stores about one instance; built from its header only."""

    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_name: str = ""
    patient_id: str = ""
    issuer_of_patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician: str = ""
    institution: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    body_part: str = ""
    instance_number: int | None = None
    frames: int = 1
    rows: int | None = None
    columns: int | None = None
    charset: str = ""
    has_pixels: bool = False
    warnings: list[str] = field(default_factory=list)


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # a value pydicom cannot decode: keep the row, drop the value
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None


def _expected_native_length(ds: Dataset) -> int | None:
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    bits = _int(ds, "BitsAllocated")
    if not rows or not cols or not bits:
        return None
    samples = _int(ds, "SamplesPerPixel") or 1
    frames = _int(ds, "NumberOfFrames") or 1
    pixels = rows * cols * samples * frames
    return (pixels * bits + 7) // 8


def _check_fragments(fh: Any, start: int, size: int, little: bool) -> None:
    """Walk encapsulated fragment headers: each must end inside the file."""
    fmt = "<HHL" if little else ">HHL"
    pos = start
    for _ in range(MAX_FRAGMENTS):
        fh.seek(pos)
        header = fh.read(8)
        if len(header) < 8:
            raise InvalidDicomError("truncated: encapsulated Pixel Data ends without a delimiter")
        group, elem, length = struct.unpack(fmt, header)
        tag = (group << 16) | elem
        if tag == SEQUENCE_DELIMITER:
            return
        if tag != ITEM:
            raise InvalidDicomError(f"corrupt encapsulated Pixel Data (unexpected tag {tag:08X})")
        pos += 8 + length
        if pos > size:
            raise InvalidDicomError("truncated: a Pixel Data fragment runs past the end of the file")
    raise InvalidDicomError("too many Pixel Data fragments")


def _check_native_length(ds: Dataset, length: int) -> None:
    expected = _expected_native_length(ds)
    if expected is not None and length < expected:
        raise InvalidDicomError(
            f"truncated: Pixel Data has {length} bytes, "
            f"Rows x Columns x Samples x Bits x Frames needs {expected}"
        )


def _check_elements_fit(ds: Dataset, path: Path, size: int) -> bool:
    """True when Pixel Data is present; raises when any value overruns the file.

    Offsets of a deflated data set point into the inflated stream, which
    `_check_deflate` has already verified ends properly, so only the
    declared Pixel Data length is checked there.
    """
    has_pixels = PIXEL_DATA in ds
    if ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        pixels = ds.get_item(PIXEL_DATA, keep_deferred=True) if has_pixels else None
        if isinstance(pixels, RawDataElement) and pixels.length != UNDEFINED_LENGTH:
            _check_native_length(ds, pixels.length)
        return has_pixels
    with open(path, "rb") as fh:
        for tag in list(ds.keys()):
            elem = ds.get_item(tag, keep_deferred=True)
            if not isinstance(elem, RawDataElement):
                if tag == PIXEL_DATA and isinstance(elem.value, bytes) and not ds.file_meta.get(
                        "TransferSyntaxUID", UID("")).is_compressed:
                    _check_native_length(ds, len(elem.value))
                continue
            if elem.length == UNDEFINED_LENGTH:
                if tag == PIXEL_DATA:
                    _check_fragments(fh, elem.value_tell, size, elem.is_little_endian)
                continue
            available = (size - elem.value_tell if elem.value is None else len(elem.value))
            if available < elem.length:
                what = "Pixel Data" if tag == PIXEL_DATA else f"element {Tag(tag)}"
                raise InvalidDicomError(
                    f"truncated: {what} declares {elem.length} bytes but the file ends first"
                )
            if tag == PIXEL_DATA:
                _check_native_length(ds, elem.length)
    return has_pixels


def _check_deflate(path: Path, size: int) -> None:
    """Refuse deflate bombs before pydicom inflates the whole body in memory."""
    with open(path, "rb") as fh:
        fh.seek(128 + 4)
        header = fh.read(12)
        if len(header) < 12:
            raise InvalidDicomError("truncated inside the file meta header")
        group_len = struct.unpack("<L", header[8:12])[0]
        body_start = 132 + 12 + group_len
        fh.seek(body_start)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        limit = max(INFLATE_BOMB_FLOOR, (size - body_start) * MAX_INFLATE_RATIO)
        total = 0
        try:
            while chunk := fh.read(1 << 20):
                total += len(inflater.decompress(chunk, limit + 1 - total))
                while inflater.unconsumed_tail and total <= limit:
                    total += len(inflater.decompress(inflater.unconsumed_tail, limit + 1 - total))
                if total > limit:
                    raise InvalidDicomError(
                        f"too large: the deflated data set inflates past {limit >> 20} MiB (deflate bomb)"
                    )
        except zlib.error as exc:
            raise InvalidDicomError(f"corrupt deflated data set: {exc}") from None
        if not inflater.eof:
            raise InvalidDicomError("truncated: the deflated data set ends early")


def read_instance_info(path: str | os.PathLike[str]) -> InstanceInfo:
    """Parse a Part-10 file's header into InstanceInfo, or raise InvalidDicomError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidDicomError(f"cannot read file: {exc.strerror}") from None
    if size == 0:
        raise InvalidDicomError("empty file")
    try:
        meta = pydicom.filereader.read_file_meta_info(path)
        ts = str(meta.get("TransferSyntaxUID", "") or "")
        if ts == DeflatedExplicitVRLittleEndian:
            _check_deflate(path, size)
        ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
        has_pixels = _check_elements_fit(ds, path, size)
        info = _info_from_dataset(ds, ts)
    except InvalidDicomError:
        raise
    except PydicomInvalidDicomError as exc:
        raise InvalidDicomError(f"not a DICOM Part-10 file ({exc})") from None
    except RecursionError:
        raise InvalidDicomError("too deep: sequences are nested beyond what can be read") from None
    except MemoryError:
        raise InvalidDicomError("too large to read") from None
    except (EOFError, struct.error, OverflowError) as exc:
        raise InvalidDicomError(f"truncated or corrupt: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, NotImplementedError, OSError) as exc:
        raise InvalidDicomError(f"cannot parse: {exc}") from None
    info.has_pixels = has_pixels
    return info


def _info_from_dataset(ds: Dataset, ts: str) -> InstanceInfo:
    meta = ds.file_meta
    sop_uid = _text(ds, "SOPInstanceUID") or str(meta.get("MediaStorageSOPInstanceUID", "") or "")
    sop_class = _text(ds, "SOPClassUID") or str(meta.get("MediaStorageSOPClassUID", "") or "")
    study_uid = _text(ds, "StudyInstanceUID")
    series_uid = _text(ds, "SeriesInstanceUID")
    missing = [name for name, value in (
        ("SOP Instance UID", sop_uid), ("SOP Class UID", sop_class),
        ("Study Instance UID", study_uid), ("Series Instance UID", series_uid),
        ("Transfer Syntax UID", ts),
    ) if not value]
    if missing:
        raise InvalidDicomError(f"missing {', '.join(missing)}")
    warnings = []
    meta_sop = str(meta.get("MediaStorageSOPInstanceUID", "") or "")
    if meta_sop and meta_sop != sop_uid:
        warnings.append("file meta SOP Instance UID differs from the data set's")
    if not UID(sop_uid).is_valid:
        warnings.append("non-conformant SOP Instance UID")
    return InstanceInfo(
        sop_instance_uid=sop_uid,
        sop_class_uid=sop_class,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        transfer_syntax_uid=ts,
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        issuer_of_patient_id=_text(ds, "IssuerOfPatientID"),
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        accession=_text(ds, "AccessionNumber"),
        study_id=_text(ds, "StudyID"),
        study_description=_text(ds, "StudyDescription"),
        referring_physician=_text(ds, "ReferringPhysicianName"),
        institution=_text(ds, "InstitutionName"),
        modality=_text(ds, "Modality"),
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription"),
        body_part=_text(ds, "BodyPartExamined"),
        instance_number=_int(ds, "InstanceNumber"),
        frames=_int(ds, "NumberOfFrames") or 1,
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        charset=_text(ds, "SpecificCharacterSet"),
        warnings=warnings,
    )
