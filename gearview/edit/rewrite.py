"""Rewrite a Part-10 file's header without touching its pixel data.

Parsing and re-encoding pixel data is what makes a naive read-modify-write
four times slower than `dcmodify` (FACTS.md). So we parse the data set only
up to Pixel Data, re-encode that header, and copy everything from the Pixel
Data tag to the end of the file byte for byte (kernel-side where possible).
The file meta group is copied verbatim too. Deflated files cannot be split
that way (the body is one zlib stream) and are re-encoded whole.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from gearview.errors import InvalidDicomError
from gearview.platform.portable import copy_fd_range

PIXEL_DATA = Tag("PixelData")
PREAMBLE_AND_MAGIC = 132


@dataclass
class Header:
    """A parsed header plus where the verbatim parts of the source file are."""

    ds: Dataset
    source: Path
    meta_bytes: bytes
    tail_offset: int
    size: int
    deflated: bool
    stat: os.stat_result

    @property
    def has_tail(self) -> bool:
        return self.tail_offset < self.size


def read_header(path: Path) -> Header:
    """Parse meta and data set up to Pixel Data; raise InvalidDicomError if unreadable."""
    try:
        with open(path, "rb") as fh:
            stat = os.fstat(fh.fileno())
            fh.seek(PREAMBLE_AND_MAGIC)
            _read_file_meta_info(fh)
            meta_end = fh.tell()
            fh.seek(0)
            meta_bytes = fh.read(meta_end)
            fh.seek(0)
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            tail_offset = fh.tell()
            syntax = ds.file_meta.get("TransferSyntaxUID")
            if not syntax or "SOPInstanceUID" not in ds:
                raise InvalidDicomError(
                    "an instance file has no transfer syntax or SOP Instance UID"
                )
            deflated = syntax == DeflatedExplicitVRLittleEndian
            if deflated:
                fh.seek(0)
                ds = pydicom.dcmread(fh)
                tail_offset = stat.st_size
            if not deflated and tail_offset < stat.st_size:
                _check_tail_tag(fh, tail_offset, ds.original_encoding[1])
    except OSError as exc:
        raise InvalidDicomError(f"cannot read an instance file: {exc.strerror or exc}") from None
    except InvalidDicomError:
        raise
    except RecursionError:
        raise InvalidDicomError("an instance has sequences nested too deep to rewrite") from None
    except Exception as exc:  # pydicom raises many types on corrupt data
        raise InvalidDicomError(f"cannot parse an instance file: {exc}") from None
    if meta_bytes[:128] != b"\x00" * 128 or meta_bytes[128:132] != b"DICM":
        meta_bytes = b"\x00" * 128 + meta_bytes[128:]
    return Header(
        ds=ds,
        source=path,
        meta_bytes=meta_bytes,
        tail_offset=tail_offset,
        size=stat.st_size,
        deflated=deflated,
        stat=stat,
    )


def _check_tail_tag(fh: BinaryIO, offset: int, little: bool | None) -> None:
    """The header parse must have stopped exactly at an element tag of group 7FE0 or later."""
    fh.seek(offset)
    raw = fh.read(4)
    if len(raw) < 4:
        raise InvalidDicomError("truncated instance file")
    group = struct.unpack("<H" if little is not False else ">H", raw[:2])[0]
    if group < 0x7FE0:
        raise InvalidDicomError("the header of an instance file could not be delimited")


def encode_body(ds: Dataset) -> bytes:
    """Encode the data set (minus pixel data) in its original syntax, keeping group lengths.

    pydicom drops retired group length elements when writing; a QC edit must
    leave every element it did not change in place, so a group that had one
    gets it back with a recomputed value, and in a file that uses group
    lengths a group the edit adds (Original Attributes, 0400) gets one too.
    """
    implicit, little = _encoding(ds)
    body = _buffer(implicit, little)
    lengths = {tag.group: tag for tag in ds.keys() if tag.element == 0 and tag.group > 6}
    if not lengths:
        write_dataset(body, ds)
        return body.getvalue()
    reparse = ds.original_character_set != ds._character_set
    encodings = ds.get("SpecificCharacterSet") or "ISO_IR 6"
    groups: dict[int, DicomBytesIO] = {}
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue
        elem = ds[tag] if reparse else ds.get_item(tag)
        write_data_element(groups.setdefault(tag.group, _buffer(implicit, little)), elem, encodings)
    for group in sorted(set(groups) | set(lengths)):
        if group in lengths:
            elem = ds[lengths[group]]
            if group < PIXEL_DATA.group:
                elem.value = len(groups[group].getvalue()) if group in groups else 0
            write_data_element(body, elem)
        elif group < PIXEL_DATA.group:  # a group the edit added (0400): follow the file's style
            write_data_element(
                body, DataElement(Tag(group, 0), "UL", len(groups[group].getvalue()))
            )
        if group in groups:
            body.write(groups[group].getvalue())
    return body.getvalue()


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        syntax = ds.file_meta.TransferSyntaxUID
        return syntax.is_implicit_VR, syntax.is_little_endian
    return implicit, little


def _buffer(implicit: bool, little: bool) -> DicomBytesIO:
    buf = DicomBytesIO()
    buf.is_implicit_VR, buf.is_little_endian = implicit, little
    return buf


def write_rewritten(header: Header, out: BinaryIO) -> None:
    """Write the edited header and the untouched rest of the source file to `out`."""
    if header.deflated:
        _write_deflated(header, out)
        return
    out.write(header.meta_bytes)
    out.write(encode_body(header.ds))
    if header.has_tail:
        out.flush()
        with open(header.source, "rb") as src:
            copy_range(src, out, header.tail_offset, header.size - header.tail_offset)


def copy_range(src: BinaryIO, dst: BinaryIO, offset: int, count: int) -> None:
    """Append bytes [offset, offset+count) of `src` to the buffered file `dst`."""
    dst.flush()
    copy_fd_range(src.fileno(), dst.fileno(), offset, count)
    dst.seek(0, os.SEEK_END)


def _write_deflated(header: Header, out: BinaryIO) -> None:
    """Deflated bodies are one zlib stream: the whole data set was read and is re-encoded."""
    header.ds.preamble = b"\x00" * 128
    buf = BytesIO()
    header.ds.save_as(buf, enforce_file_format=True)
    out.write(buf.getvalue())
