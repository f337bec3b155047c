"""Fast path of a header edit: splice the encoded bytes, parse nothing else.

For the common edit (a few top-level text attributes, the instance's
character set can hold them) the header is walked at the byte level: elements
that do not change are copied as they are, changed ones are encoded with
pydicom's element writer, and the Original Attributes item is built from the
old elements' raw bytes (byte-identical previous values). Anything unusual —
deflate, group lengths, a charset switch, a malformed header — raises
`NotSpliceable` and the caller uses the full pydicom rewrite instead.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from gearview.conformance import TRANSFER_SYNTAXES
from gearview.edit.charset import CHARSET_VRS, can_encode
from gearview.edit.provenance import MODIFYING_SYSTEM

LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
CHARSET_TAG = Tag("SpecificCharacterSet")
OAS = Tag("OriginalAttributesSequence")
MAS = Tag("ModifiedAttributesSequence")
MAX_DEPTH = 64


class NotSpliceable(Exception):
    """This header needs the full rewrite (not an error for the user)."""


@dataclass
class RawElement:
    tag: int
    start: int
    end: int
    value_start: int
    length: int


class _Walker:
    def __init__(self, data: bytes, implicit: bool, little: bool) -> None:
        self.data = data
        self.implicit = implicit
        self.end = "<" if little else ">"

    def header(self, pos: int) -> tuple[int, bytes | None, int, int]:
        """(tag, vr, length, header size) of the element at `pos`."""
        data = self.data
        if pos + 8 > len(data):
            raise NotSpliceable("truncated header")
        group, elem = struct.unpack_from(self.end + "HH", data, pos)
        tag = (group << 16) | elem
        if self.implicit or group == 0xFFFE:
            return tag, None, struct.unpack_from(self.end + "L", data, pos + 4)[0], 8
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            if pos + 12 > len(data):
                raise NotSpliceable("truncated header")
            return tag, vr, struct.unpack_from(self.end + "L", data, pos + 8)[0], 12
        if not vr.isalpha() or not vr.isupper():
            raise NotSpliceable("unexpected VR")
        return tag, vr, struct.unpack_from(self.end + "H", data, pos + 6)[0], 8

    def skip_undefined(self, pos: int, depth: int) -> int:
        """Position after an undefined-length sequence's delimiter (items walked)."""
        if depth > MAX_DEPTH:
            raise NotSpliceable("nested too deep")
        while True:
            tag, _, length, size = self.header(pos)
            pos += size
            if tag == SEQ_END:
                return pos
            if tag != ITEM:
                raise NotSpliceable("bad item in sequence")
            if length != UNDEFINED:
                pos += length
                continue
            while True:  # an undefined-length item: its elements up to the item delimiter
                tag, _, length, size = self.header(pos)
                if tag == ITEM_END:
                    pos += size
                    break
                pos = (
                    self.skip_undefined(pos + size, depth + 1)
                    if length == UNDEFINED
                    else pos + size + length
                )

    def elements(self, stop: int = 0xFFFFFFFF) -> tuple[list[RawElement], int]:
        """Top-level elements before the first tag >= `stop`, and where that tag starts."""
        found = []
        pos = 0
        while pos < len(self.data):
            tag, vr, length, size = self.header(pos)
            if tag >= stop:
                return found, pos
            start = pos
            if length == UNDEFINED and vr == b"UN":
                raise NotSpliceable("undefined-length UN")
            if length == UNDEFINED:
                pos = self.skip_undefined(pos + size, 0)
            else:
                pos += size + length
            if pos > len(self.data):
                raise NotSpliceable("element runs past the header")
            if found and tag <= found[-1].tag:  # out of order: misparsed or non-conformant
                raise NotSpliceable("elements out of order")
            found.append(RawElement(tag, start, pos, start + size, length))
        return found, pos


def _encode(
    tag: BaseTag, vr: str, value: object, implicit: bool, little: bool, charsets: list[str]
) -> bytes:
    """One encoded element; memoised (every instance of a study gets the same new values)."""
    key = tuple(value) if isinstance(value, list) else value
    return _encode_cached(int(tag), vr, key, implicit, little, tuple(charsets))


@functools.lru_cache(maxsize=1024)
def _encode_cached(
    tag: int, vr: str, value: object, implicit: bool, little: bool, charsets: tuple[str, ...]
) -> bytes:
    buf = DicomBytesIO()
    buf.is_implicit_VR, buf.is_little_endian = implicit, little
    plain = list(value) if isinstance(value, tuple) else value
    write_data_element(buf, DataElement(Tag(tag), vr, plain), list(charsets))
    return buf.getvalue()


@functools.lru_cache(maxsize=1024)
def _encodable(text: str, charsets: tuple[str, ...]) -> bool:
    return can_encode(text, charsets)


def _charsets(data: bytes, elements: dict[int, RawElement]) -> list[str]:
    raw = elements.get(CHARSET_TAG)
    if raw is None:
        return ["ISO_IR 6"]
    text = data[raw.value_start : raw.end].decode("ascii", "strict").rstrip(" \x00")
    return [t.strip() for t in text.split("\\")] or ["ISO_IR 6"]


def _sequence(tag: int, items: list[bytes], implicit: bool, little: bool) -> bytes:
    """A defined-length sequence element holding defined-length items."""
    end = "<" if little else ">"
    body = b"".join(struct.pack(end + "HHL", 0xFFFE, 0xE000, len(i)) + i for i in items)
    head = struct.pack(end + "HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack(end + "L", len(body)) + body
    return head + b"SQ\x00\x00" + struct.pack(end + "L", len(body)) + body


def splice_header(
    data: bytes,
    implicit: bool,
    little: bool,
    assignments: dict[BaseTag, tuple[str, object]],
    reason: str,
    when: str,
    walked: list[RawElement] | None = None,
) -> tuple[bytes, dict[int, bytes]] | None:
    """The new header bytes and the changed tags' old element bytes; None if nothing changes.

    `walked` are the header's elements when the caller already walked them.
    Raises NotSpliceable when this header needs the full rewrite.
    """
    try:
        if walked is None:
            walked = _Walker(data, implicit, little).elements()[0]
        elements = {e.tag: e for e in walked}
        charsets = _charsets(data, elements)
    except (struct.error, UnicodeDecodeError) as exc:
        raise NotSpliceable(str(exc)) from None
    if (
        any(tag & 0xFFFF == 0 for tag in elements)
        or OAS in elements
        and elements[OAS].length == UNDEFINED
    ):
        raise NotSpliceable("group lengths or an undefined-length Original Attributes")
    new_bytes: dict[int, bytes] = {}
    old_bytes: dict[int, bytes] = {}
    for tag, (vr, value) in assignments.items():
        if vr in ("SQ", "UI") or tag >= 0x7FE00000:
            raise NotSpliceable("structure change, or an element after the header")
        if vr in CHARSET_VRS and isinstance(value, str) and not _encodable(value, tuple(charsets)):
            raise NotSpliceable("needs a character set switch")
        encoded = _encode(tag, vr, value, implicit, little, charsets)
        old = elements.get(tag)
        if old is not None and data[old.start : old.end] == encoded:
            continue
        new_bytes[tag] = encoded
        old_bytes[tag] = (
            data[old.start : old.end]
            if old is not None
            else _encode(tag, vr, None, implicit, little, charsets)
        )
    if not new_bytes:
        return None
    new_bytes[OAS] = _original_attributes(
        data, elements.get(OAS), old_bytes, implicit, little, charsets, reason, when
    )
    out = []
    for tag in sorted(set(elements) | set(new_bytes)):
        if tag in new_bytes:
            out.append(new_bytes[tag])
        else:
            element = elements[tag]
            out.append(data[element.start : element.end])
    return b"".join(out), old_bytes


def _original_attributes(
    data: bytes,
    existing: RawElement | None,
    old_bytes: dict[int, bytes],
    implicit: bool,
    little: bool,
    charsets: list[str],
    reason: str,
    when: str,
) -> bytes:
    modified = b"".join(old_bytes[tag] for tag in sorted(old_bytes))
    item = _sequence(MAS, [modified], implicit, little)
    for keyword, vr, value in (
        ("AttributeModificationDateTime", "DT", when),
        ("ModifyingSystem", "LO", MODIFYING_SYSTEM),
        ("SourceOfPreviousValues", "LO", ""),
        ("ReasonForTheAttributeModification", "CS", reason),
    ):
        item += _encode(Tag(keyword), vr, value, implicit, little, charsets)
    new = _sequence(OAS, [item], implicit, little)
    if existing is None:
        return new
    # append our item to the existing (defined-length) sequence
    end = "<" if little else ">"
    header_size = existing.value_start - existing.start
    old_items = data[existing.value_start : existing.end]
    ours = new[header_size:]
    body = old_items + ours
    head = bytearray(data[existing.start : existing.value_start])
    struct.pack_into(end + "L", head, header_size - 4, len(body))
    return bytes(head) + body


@dataclass
class SplitFile:
    """A Part-10 file cut into meta, header and the verbatim tail (pixel data onwards)."""

    meta: bytes
    header: bytes
    tail_offset: int
    size: int
    implicit: bool
    little: bool
    sop_uid: str
    charsets: list[str]
    elements: list[RawElement]


#: How much of a file `split_file` is given: headers are far smaller.
SPLIT_READ = 1 << 16


def split_file(head: bytes, size: int) -> SplitFile:
    """Locate meta / header / tail in the first bytes of a file (`size` long) by walking tags.

    NotSpliceable when the file is unusual (or its header is longer than `head`).
    """
    try:
        if (
            head[128:132] != b"DICM"
            or head[132:136] != b"\x02\x00\x00\x00"
            or head[136:138] != b"UL"
        ):
            raise NotSpliceable("no meta group length")
        meta_end = 144 + struct.unpack_from("<L", head, 140)[0]
        meta_elements, _ = _Walker(head[132:meta_end], False, True).elements()
        syntax = (
            next(
                (
                    head[132 + e.value_start : 132 + e.end]
                    for e in meta_elements
                    if e.tag == 0x00020010
                ),
                b"",
            )
            .rstrip(b" \x00")
            .decode("ascii")
        )
        if syntax not in _SYNTAXES_BY_UID:
            raise NotSpliceable("syntax needs the full rewrite")
        implicit, little = _SYNTAXES_BY_UID[syntax]
        body = head[meta_end:]
        elements, stop = _Walker(body, implicit, little).elements(stop=0x7FE00000)
        if stop >= len(body) and meta_end + len(body) < size:
            raise NotSpliceable("header larger than the read buffer")
        sop = next((body[e.value_start : e.end] for e in elements if e.tag == 0x00080018), b"")
        charsets = _charsets(body, {e.tag: e for e in elements})
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise NotSpliceable(str(exc)) from None
    return SplitFile(
        meta=b"\x00" * 128 + head[128:meta_end],
        header=body[:stop],
        tail_offset=meta_end + stop,
        size=size,
        implicit=implicit,
        little=little,
        sop_uid=sop.rstrip(b" \x00").decode("ascii", "replace"),
        charsets=charsets,
        elements=elements,
    )


#: Every syntax we store but deflate (one zlib stream): (implicit VR, little endian).
_SYNTAXES_BY_UID = {
    str(syntax): (UID(syntax).is_implicit_VR, UID(syntax).is_little_endian)
    for syntax in TRANSFER_SYNTAXES
    if syntax != DeflatedExplicitVRLittleEndian
}
