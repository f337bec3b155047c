"""Write de-identified copies of instance files into a work folder.

Each copy is the edit layer's header rewrite with a new file meta: the
header is parsed up to Pixel Data and de-identified, re-encoded in its
original syntax, and the pixel data elements are copied byte for byte from
the source (nothing is decoded, so the pixels are exactly the original's).
Elements after Pixel Data (digital signatures, trailing padding, private
groups) are left out: the profile removes all of them. The sources - cache
files - are only read.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset

from gearview.deid.burned_in import BurnedInRefused, burned_in_reason, find_burned_in, refusal
from gearview.deid.deidentify import Deidentifier, DeidOptions
from gearview.edit.rewrite import Header, copy_range, encode_body, read_header
from gearview.edit.splice import ITEM, LONG_VRS, SEQ_END, UNDEFINED
from gearview.errors import InvalidDicomError
from gearview.home import Home
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.store.atomic import os_error_to_store_error
from gearview.store.attributes import PATIENT, SERIES, STUDY, at_level
from gearview.store.cache import build_file_meta, encode_file_meta

log = logging.getLogger(__name__)

PREAMBLE = b"\x00" * 128 + b"DICM"
#: Pixel data elements (Float, Double Float, Pixel Data): copied as they are.
PIXEL_ELEMENTS = (0x7FE00008, 0x7FE00009, 0x7FE00010)

#: De-identified patient/study attributes (record field -> keyword; the vocabulary's).
STUDY_FIELDS = {a.field: a.keyword for a in at_level(PATIENT, STUDY, computed=False)
                if a.keyword != "StudyInstanceUID"}
SERIES_FIELDS = {a.field: a.keyword for a in at_level(SERIES, computed=False)
                 if not a.is_int and a.keyword != "SeriesInstanceUID"}


@dataclass
class CopiedInstance:
    """A de-identified copy and what the media and network layers need to know of it."""

    source: Path
    path: Path
    sop_uid: str
    series_uid: str
    study_uid: str
    sop_class: str
    transfer_syntax: str
    size: int
    burned_in: bool
    study: dict[str, str] = field(default_factory=dict)
    series: dict[str, str] = field(default_factory=dict)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value)


def pixel_data_end(fh: BinaryIO, offset: int, size: int, implicit: bool, little: bool) -> int:
    """Where the pixel data elements that start at `offset` end (walking element headers)."""
    order = "<" if little else ">"
    position = offset
    while position + 8 <= size:
        fh.seek(position)
        head = fh.read(12)
        group, element = struct.unpack_from(order + "HH", head)
        if (group << 16) | element not in PIXEL_ELEMENTS:
            break
        if implicit:
            length, header = struct.unpack_from(order + "L", head, 4)[0], 8
        elif head[4:6] in LONG_VRS:
            length, header = struct.unpack_from(order + "L", head, 8)[0], 12
        else:
            length, header = struct.unpack_from(order + "H", head, 6)[0], 8
        position += header
        position = (
            _items_end(fh, position, size, order) if length == UNDEFINED else position + length
        )
    if position > size:
        raise InvalidDicomError("the pixel data of an instance is truncated")
    return position


def _items_end(fh: BinaryIO, position: int, size: int, order: str) -> int:
    """End of an encapsulated pixel data element: items up to the sequence delimiter."""
    while position + 8 <= size:
        fh.seek(position)
        group, element, length = struct.unpack(order + "HHL", fh.read(8))
        tag = (group << 16) | element
        position += 8
        if tag == SEQ_END:
            return position
        if tag != ITEM or length == UNDEFINED:
            raise InvalidDicomError("the encapsulated pixel data of an instance is malformed")
        position += length
    raise InvalidDicomError("the encapsulated pixel data of an instance is truncated")


def _write(header: Header, deidentifier: Deidentifier, target: Path, burned_in: bool) -> None:
    ds = header.ds
    syntax = str(ds.file_meta.TransferSyntaxUID)
    sop_class = str(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
    deidentifier.apply(ds, burned_in)
    meta = build_file_meta(sop_class, str(ds.SOPInstanceUID), syntax)
    with open(target, "xb") as out:
        if header.deflated:  # one zlib stream: the whole data set is re-encoded
            ds.file_meta = meta
            ds.preamble = PREAMBLE[:128]
            ds.save_as(out, enforce_file_format=True)
            return
        out.write(PREAMBLE + encode_file_meta(meta))
        out.write(encode_body(ds))
        if not header.has_tail:
            return
        implicit, little = ds.original_encoding
        with open(header.source, "rb") as src:
            end = pixel_data_end(
                src, header.tail_offset, header.size, bool(implicit), little is not False
            )
            copy_range(src, out, header.tail_offset, end - header.tail_offset)


def _copied(source: Path, target: Path, ds: Dataset, burned_in: bool) -> CopiedInstance:
    number = ds.get("SeriesNumber")
    series = {key: _text(ds, keyword) for key, keyword in SERIES_FIELDS.items()}
    series["series_number"] = None if number in (None, "") else int(number)
    return CopiedInstance(
        source=source,
        path=target,
        sop_uid=str(ds.SOPInstanceUID),
        series_uid=_text(ds, "SeriesInstanceUID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        sop_class=str(ds.get("SOPClassUID", "")),
        transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
        size=target.stat().st_size,
        burned_in=burned_in,
        study={key: _text(ds, keyword) for key, keyword in STUDY_FIELDS.items()},
        series=series,
    )


def deidentify_files(
    home: Home,
    sources: Sequence[Path],
    workdir: Path,
    options: DeidOptions,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> list[CopiedInstance]:
    """De-identified copies of `sources` in `workdir` (in the same order).

    Raises BurnedInRefused before writing anything when some instances may
    show identifying text and `options` does not allow them; Cancelled when
    cancelled. The caller owns `workdir` and removes it when done or failed.
    """
    deidentifier = Deidentifier.for_home(home, options)
    if not options.allow_burned_in:
        refused = find_burned_in(sources, progress, token)
        if refused:
            raise BurnedInRefused(refused)
    copies = []
    total = len(sources)
    for i, source in enumerate(sources):
        if token is not None:
            token.check()
        progress(Progress(i, total, "de-identifying"))
        header = read_header(Path(source))
        reason = burned_in_reason(header.ds)
        if reason is not None and not options.allow_burned_in:  # changed since the check
            raise BurnedInRefused([refusal(header.ds, reason)])
        target = workdir / f"{i + 1:06d}.dcm"
        try:
            _write(header, deidentifier, target, reason is not None)
        except OSError as exc:
            target.unlink(missing_ok=True)
            raise os_error_to_store_error(exc, "the de-identified copy") from exc
        except (ValueError, TypeError, struct.error) as exc:
            target.unlink(missing_ok=True)
            raise InvalidDicomError(
                f"cannot write a de-identified copy of {source}: {exc}"
            ) from None
        copies.append(_copied(Path(source), target, header.ds, reason is not None))
    progress(Progress(total, total, f"{total} instance(s) de-identified"))
    log.info("de-identified %d instance(s)", total)
    return copies
