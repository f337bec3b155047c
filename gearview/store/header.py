"""Read the attributes the index needs from a Part-10 file, and refuse files
that only look readable.

pydicom reads truncated and garbage files without complaint, so before a
file is accepted we check that every element (Pixel Data above all) really
ends inside the file, cap deflate inflation and catch runaway nesting.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from gearview.errors import InvalidDicomError
from gearview.logsetup import collect_warnings
from gearview.store.attributes import HEADER, READ, Attribute
from gearview.store.records import InstanceInfo

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


def expected_native_length(values: Mapping[str, Any]) -> int | None:
    """Bytes native Pixel Data needs (pydicom's rule), from Image Pixel values by keyword.

    None when Rows, Columns or Bits Allocated is missing: nothing to check then.
    """
    rows, cols, bits = values.get("Rows"), values.get("Columns"), values.get("BitsAllocated")
    if not rows or not cols or not bits:
        return None
    module = SimpleNamespace(
        Rows=rows, Columns=cols, BitsAllocated=bits,
        SamplesPerPixel=values.get("SamplesPerPixel") or 1,
        NumberOfFrames=values.get("NumberOfFrames") or 1,
        PhotometricInterpretation=values.get("PhotometricInterpretation") or "",
    )
    return get_expected_length(module)


def _pixel_module(ds: Dataset) -> dict[str, Any]:
    keywords = ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "NumberOfFrames")
    values: dict[str, Any] = {kw: _int(ds, kw) for kw in keywords}
    values["PhotometricInterpretation"] = _text(ds, "PhotometricInterpretation")
    return values


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
    expected = expected_native_length(_pixel_module(ds))
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
    with collect_warnings() as library_warnings:
        try:
            meta = pydicom.filereader.read_file_meta_info(path)
            ts = str(meta.get("TransferSyntaxUID", "") or "")
            if ts == DeflatedExplicitVRLittleEndian:
                _check_deflate(path, size)
            ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
            has_pixels = _check_elements_fit(ds, path, size)
            info = info_from_dataset(ds, ts)
        except InvalidDicomError:
            raise
        except PydicomInvalidDicomError as exc:
            raise InvalidDicomError(f"not a DICOM Part-10 file ({exc})") from None
        except RecursionError:
            raise InvalidDicomError(
                "too deep: sequences are nested beyond what can be read"
            ) from None
        except MemoryError:
            raise InvalidDicomError("too large to read") from None
        except (EOFError, struct.error, OverflowError) as exc:
            raise InvalidDicomError(f"truncated or corrupt: {exc}") from None
        except (ValueError, KeyError, TypeError, AttributeError, NotImplementedError,
                OSError) as exc:
            raise InvalidDicomError(f"cannot parse: {exc}") from None
    info.has_pixels = has_pixels
    info.warnings.extend(w for w in library_warnings if w not in info.warnings)
    return info


def _warnings(values: Mapping[str, Any], meta: Mapping[str, str]) -> list[str]:
    sop_uid, sop_class = values["SOPInstanceUID"], values["SOPClassUID"]
    meta_sop = str(meta.get("MediaStorageSOPInstanceUID", "") or "")
    meta_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
    warnings = []
    if meta_sop and meta_sop != sop_uid:
        warnings.append("file meta SOP Instance UID differs from the data set's")
    if meta_class and meta_class != sop_class:
        warnings.append("file meta SOP Class UID differs from the data set's")
    if not UID(sop_uid).is_valid:
        warnings.append("non-conformant SOP Instance UID")
    return warnings


#: Required to index an instance (InstanceInfo cannot be made without them).
_REQUIRED = ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID",
             "TransferSyntaxUID")
#: Taken from the file meta when the data set lacks them.
_META_FALLBACK = {"SOPInstanceUID": "MediaStorageSOPInstanceUID",
                  "SOPClassUID": "MediaStorageSOPClassUID"}


def _read_value(ds: Dataset, attr: Attribute) -> Any:
    if not attr.is_int:
        return _text(ds, attr.keyword)
    value = _int(ds, attr.keyword)
    return attr.default if attr.default is not None and not value else value


def _make_info(values: dict[str, Any], meta: Mapping[str, str], has_pixels: bool) -> InstanceInfo:
    """InstanceInfo from values by keyword; raises InvalidDicomError naming what is missing."""
    for keyword, meta_keyword in _META_FALLBACK.items():
        values[keyword] = values.get(keyword) or meta.get(meta_keyword, "")
    missing = [Tag(kw) for kw in _REQUIRED if not values.get(kw)]
    if missing:
        names = ", ".join(pydicom.datadict.dictionary_description(tag) for tag in missing)
        raise InvalidDicomError(f"missing {names}")
    return InstanceInfo(
        **{a.field: values.get(a.keyword, a.default if a.is_int else "") for a in HEADER},
        has_pixels=has_pixels,
        warnings=_warnings(values, meta),
    )


def info_from_dataset(ds: Dataset, ts: str) -> InstanceInfo:
    meta = ds.file_meta
    values = {a.keyword: _read_value(ds, a) for a in HEADER if not a.meta}
    values["TransferSyntaxUID"] = ts
    meta_text = {kw: str(meta.get(kw, "") or "") for kw in _META_FALLBACK.values()}
    return _make_info(values, meta_text, has_pixels=False)


# ---- fast path: the header of a data set already in memory ------------------
#
# The SCP receives the whole data set in memory; parsing it again with
# pydicom from the spool file was half of the per-instance cost. This walker
# reads only what the index needs, straight from the received bytes, and
# applies the same checks (every element ends inside the data, Pixel Data as
# long as Rows x Columns x Samples x Bits x Frames, fragments end with a
# delimiter). Anything it does not fully understand (deflate, big endian,
# non-ASCII values, unusual VRs, deep nesting, any damage) makes it return
# None, and the caller falls back to `read_instance_info`: that path alone
# decides how a bad file is refused, so both give the same answers.

#: tag -> (attribute, its VR as encoded) of every element the walker keeps.
_WANTED: dict[int, tuple[Attribute, bytes]] = {int(a.tag): (a, a.vr.encode()) for a in READ}
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
#: Character sets under which printable ASCII decodes to itself in pydicom.
_ASCII_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"})
_SIMPLE_TEXT = re.compile(rb"[\x20-\x5b\x5d-\x7e]*\x00?")
_SIMPLE_INT = re.compile(rb" *-?[0-9]{1,9} *")
_HEADER = struct.Struct("<HHL")
_EXPLICIT = struct.Struct("<HH2sH")
_U32 = struct.Struct("<L")
_U16 = struct.Struct("<H")
ITEM_DELIMITER = 0xFFFEE00D
#: Deeper nesting goes to pydicom (which refuses runaway depth itself).
MAX_FAST_DEPTH = 16


class _Unsure(Exception):
    """The fast walker met something it leaves to pydicom."""


class _Walker:
    """Walk the elements of an uncompressed little-endian data set held in memory."""

    def __init__(self, data: memoryview, explicit: bool) -> None:
        self.data = data
        self.explicit = explicit
        self.values: dict[int, tuple[bytes, bytes]] = {}
        self.pixel_length: int | None = None
        self.has_pixels = False

    def element(self, pos: int, end: int) -> tuple[int, bytes, int, int]:
        """(tag, VR or b'', value offset, value length) of the element at pos."""
        data = self.data
        if pos + 8 > end:
            raise _Unsure
        if self.explicit:
            group, elem, vr, short = _EXPLICIT.unpack_from(data, pos)
            tag = (group << 16) | elem
            if group == 0xFFFE:
                return tag, b"", pos + 8, _U32.unpack_from(data, pos + 4)[0]
            if vr in _SHORT_VRS:
                return tag, vr, pos + 8, short
            if vr not in _LONG_VRS or pos + 12 > end:
                raise _Unsure
            return tag, vr, pos + 12, _U32.unpack_from(data, pos + 8)[0]
        group, elem, length = _HEADER.unpack_from(data, pos)
        return (group << 16) | elem, b"", pos + 8, length

    def dataset(self, pos: int, end: int, depth: int, in_item: bool) -> int:
        """Walk elements from pos; returns the offset after the last (or the item delimiter)."""
        top = depth == 0
        while pos < end:
            tag, vr, start, length = self.element(pos, end)
            if tag == ITEM_DELIMITER and in_item:
                return start
            if tag >> 16 == 0xFFFE:
                raise _Unsure
            if length == UNDEFINED_LENGTH:
                if tag == PIXEL_DATA:
                    pos = self.fragments(start, end)
                elif vr in (b"", b"SQ"):
                    pos = self.sequence(start, end, depth + 1)
                else:
                    raise _Unsure
                if top and tag == PIXEL_DATA:
                    self.has_pixels = True
                continue
            pos = start + length
            if pos > end:
                raise _Unsure
            if top:
                if tag == PIXEL_DATA:
                    self.has_pixels = True
                    self.pixel_length = length
                elif tag in _WANTED:
                    self.values[tag] = (vr, bytes(self.data[start:pos]))
        if in_item:
            raise _Unsure
        return pos

    def item_header(self, pos: int, end: int) -> tuple[int, int]:
        """(tag, length) of the item or delimiter header at pos."""
        if pos + 8 > end:
            raise _Unsure
        group, elem, length = _HEADER.unpack_from(self.data, pos)
        return (group << 16) | elem, length

    def sequence(self, pos: int, end: int, depth: int) -> int:
        """Items of an undefined-length sequence; returns the offset after its delimiter."""
        if depth > MAX_FAST_DEPTH:
            raise _Unsure
        while True:
            tag, length = self.item_header(pos, end)
            if tag == SEQUENCE_DELIMITER:
                return pos + 8
            if tag != ITEM:
                raise _Unsure
            if length == UNDEFINED_LENGTH:
                pos = self.dataset(pos + 8, end, depth, in_item=True)
            else:
                item_end = pos + 8 + length
                if item_end > end:
                    raise _Unsure
                if self.dataset(pos + 8, item_end, depth, in_item=False) != item_end:
                    raise _Unsure
                pos = item_end

    def fragments(self, pos: int, end: int) -> int:
        """Encapsulated Pixel Data: items up to the sequence delimiter, all inside the data."""
        for _ in range(MAX_FRAGMENTS):
            tag, length = self.item_header(pos, end)
            if tag == SEQUENCE_DELIMITER:
                return pos + 8
            if tag != ITEM or length == UNDEFINED_LENGTH:
                raise _Unsure
            pos += 8 + length
            if pos > end:
                raise _Unsure
        raise _Unsure


def _fast_text(raw: tuple[bytes, bytes] | None, expected_vr: bytes) -> str:
    if raw is None:
        return ""
    vr, value = raw
    if (vr and vr != expected_vr) or not _SIMPLE_TEXT.fullmatch(value):
        raise _Unsure
    return value.rstrip(b"\x00").decode("ascii").strip()


def _fast_is(raw: tuple[bytes, bytes] | None) -> int | None:
    if raw is None:
        return None
    vr, value = raw
    if vr and vr != b"IS":
        raise _Unsure
    if not value.strip(b" "):
        return None
    if not _SIMPLE_INT.fullmatch(value):
        raise _Unsure
    return int(value)


def _fast_us(raw: tuple[bytes, bytes] | None) -> int | None:
    if raw is None:
        return None
    vr, value = raw
    if (vr and vr != b"US") or len(value) != 2:
        raise _Unsure
    return _U16.unpack(value)[0]


def info_from_buffer(data: bytes | memoryview, transfer_syntax_uid: str,
                     meta_sop_class_uid: str, meta_sop_instance_uid: str) -> InstanceInfo | None:
    """InstanceInfo of an encoded data set (no preamble, no file meta), or None when unsure.

    Gives exactly what `read_instance_info` gives for the same Part-10 file
    when it returns an InstanceInfo; None means "ask `read_instance_info`".
    """
    ts = UID(transfer_syntax_uid)
    if not ts or not ts.is_transfer_syntax or ts.is_deflated or not ts.is_little_endian:
        return None
    view = memoryview(data).cast("B")
    walker = _Walker(view, explicit=not ts.is_implicit_VR)
    try:
        if walker.dataset(0, len(view), 0, in_item=False) != len(view):
            return None
        return _fast_info(walker, str(ts), meta_sop_class_uid, meta_sop_instance_uid)
    except (_Unsure, struct.error, UnicodeDecodeError):
        return None
    finally:
        view.release()


def _fast_value(attr: Attribute, vr: bytes, raw: tuple[bytes, bytes] | None) -> Any:
    if vr == b"US":
        return _fast_us(raw)
    if vr == b"IS":
        value = _fast_is(raw)
        return attr.default if attr.default is not None and not value else value
    return _fast_text(raw, vr)


def _fast_info(walker: _Walker, ts: str, meta_class: str, meta_sop: str) -> InstanceInfo | None:
    values = {attr.keyword: _fast_value(attr, vr, walker.values.get(tag))
              for tag, (attr, vr) in _WANTED.items()}
    if values["SpecificCharacterSet"] not in _ASCII_CHARSETS:
        return None
    if walker.pixel_length is not None:
        expected = expected_native_length(values)
        if expected is not None and walker.pixel_length < expected:
            return None
    values["TransferSyntaxUID"] = ts
    meta = {"MediaStorageSOPClassUID": meta_class, "MediaStorageSOPInstanceUID": meta_sop}
    try:
        return _make_info(values, meta, has_pixels=walker.has_pixels)
    except InvalidDicomError:
        return None
