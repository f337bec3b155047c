"""The STUDY-level query of SPEC §2.5: keys, validation, and merging answers.

A `StudyQuery` is what the Query panel and `gearview find` fill in; it builds
the C-FIND identifier (every returned key present, empty when not matched on).
Answers from several nodes are merged by Study Instance UID into one row
with the node names in `sources`.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset

from gearview.errors import InvalidValueError
from gearview.store.attributes import BY_FIELD, PATIENT, STUDY, at_level
from gearview.store.records import StudyRecord

_DATE = re.compile(r"^\d{8}$")
_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")

#: Keys returned at STUDY level (SPEC §2.5 plus the "also returned" list): the patient and
#: study attributes of the vocabulary.
RETURN_KEYS = tuple(a.keyword for a in at_level(PATIENT, STUDY) if not a.equipment)


def _check_date(text: str, what: str) -> str:
    if not _DATE.match(text):
        raise InvalidValueError(f"{what}: not a date: {text!r}", hint="use YYYYMMDD")
    try:
        dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise InvalidValueError(
            f"{what}: not a calendar date: {text!r}", hint="use YYYYMMDD"
        ) from None
    return text


def check_date_range(text: str, what: str = "study date") -> str:
    """`YYYYMMDD`, `YYYYMMDD-YYYYMMDD`, `-YYYYMMDD` or `YYYYMMDD-` (PS3.4 C.2.2.2.5)."""
    text = text.strip()
    if not text:
        return ""
    if "-" not in text:
        return _check_date(text, what)
    start, _, end = text.partition("-")
    if not start and not end:
        raise InvalidValueError(f"{what}: an empty range", hint="use YYYYMMDD-YYYYMMDD")
    if start:
        _check_date(start, what)
    if end:
        _check_date(end, what)
    if start and end and start > end:
        raise InvalidValueError(f"{what}: the range {text} ends before it starts")
    return text


def date_preset(name: str, today: dt.date | None = None) -> str:
    """The Study Date value of a Query panel preset (today, yesterday, last7)."""
    today = today or dt.date.today()
    if name == "today":
        return today.strftime("%Y%m%d")
    if name == "yesterday":
        return (today - dt.timedelta(days=1)).strftime("%Y%m%d")
    if name == "last7":
        return f"{(today - dt.timedelta(days=6)).strftime('%Y%m%d')}-{today.strftime('%Y%m%d')}"
    raise InvalidValueError(f"unknown date preset {name!r}")


@dataclass
class StudyQuery:
    """What the user asks for, by attribute field; empty fields match everything."""

    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    study_date: str = ""
    modalities_in_study: str = ""
    patient_birth_date: str = ""
    study_instance_uid: str = ""

    def validate(self) -> StudyQuery:
        self.study_date = check_date_range(self.study_date)
        if self.patient_birth_date:
            self.patient_birth_date = _check_date(self.patient_birth_date.strip(), "birth date")
        modality = self.modalities_in_study.strip().upper()
        if modality and not _MODALITY.match(modality):
            raise InvalidValueError(f"not a modality: {modality!r}", hint="e.g. CT, MR, US")
        self.modalities_in_study = modality
        for name, label in (("patient_name", "patient name"), ("patient_id", "patient ID"),
                            ("accession_number", "accession"), ("study_instance_uid", "study UID")):
            value = getattr(self, name).strip()
            if "\\" in value or any(ord(c) < 32 for c in value):
                raise InvalidValueError(
                    f"{label}: backslashes and control characters are not allowed"
                )
            setattr(self, name, value)
        if len(self.patient_id) > 64 or len(self.accession_number) > 16:
            raise InvalidValueError("patient ID (64) or accession (16 characters) is too long")
        return self

    def to_dataset(self) -> Dataset:
        """The C-FIND identifier; matching keys filled, return keys empty."""
        self.validate()
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        for keyword in RETURN_KEYS:
            setattr(ds, keyword, "")
        for name in self.__dataclass_fields__:
            setattr(ds, BY_FIELD[name].keyword, getattr(self, name))
        if any(not c.isascii() for c in self.patient_name):
            ds.SpecificCharacterSet = "ISO_IR 192"
        return ds

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f) for f in self.__dataclass_fields__)


_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
#: Character sets the fast parser decodes itself; anything else goes to pydicom.
_CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
UNDEFINED_LENGTH = 0xFFFFFFFF


@lru_cache(maxsize=512)
def _keyword(group: int, elem: int) -> str:
    return keyword_for_tag((group << 16) | elem) or ""


def parse_text_identifier(data: bytes, implicit_vr: bool) -> dict[str, str] | None:
    """A C-FIND identifier of plain text values as {keyword: value}, or None.

    Decoding 1000 answers element by element through pydicom costs more than
    the whole network exchange; STUDY-level answers are short strings, so a
    flat little endian walk does. Anything unusual (sequences, undefined
    lengths, other character sets) returns None and the caller uses pydicom.
    """
    values: dict[str, bytes] = {}
    offset, size = 0, len(data)
    try:
        while offset < size:
            group, elem = _TAG.unpack_from(data, offset)
            if implicit_vr:
                length = _U32.unpack_from(data, offset + 4)[0]
                offset += 8
            else:
                vr = data[offset + 4 : offset + 6]
                if vr in _LONG_VRS:
                    if vr == b"SQ":
                        return None
                    length = _U32.unpack_from(data, offset + 8)[0]
                    offset += 12
                else:
                    length = _U16.unpack_from(data, offset + 6)[0]
                    offset += 8
            if length == UNDEFINED_LENGTH or offset + length > size:
                return None
            keyword = _keyword(group, elem)
            if keyword:
                values[keyword] = data[offset : offset + length]
            offset += length
    except struct.error:
        return None
    charset = values.get("SpecificCharacterSet", b"").decode("ascii", "replace").strip(" \x00")
    codec = _CODECS.get(charset)
    if codec is None:
        return None
    return {k: v.decode(codec, "replace").strip(" \x00") for k, v in values.items()}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [m for m in value.split("\\") if m]
    return [str(m) for m in value or () if m]


_CONVERT = {"list": _list, "count": _count}


@dataclass
class FoundStudy(StudyRecord):
    """A study returned by one or more nodes (`sources` are node names)."""

    sources: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "sources": self.sources}


def found_study(ds: Mapping[str, Any] | Dataset, source: str) -> FoundStudy:
    """One C-FIND match as a record (lenient: bad counts become 0)."""
    values = {a.field: _CONVERT.get(a.kind, _text)(ds.get(a.keyword, ""))
              for a in StudyRecord.ATTRIBUTES}
    return FoundStudy(**values, sources=[source])


def _fill(row: FoundStudy, study: StudyRecord) -> None:
    """Gaps of the first answer filled from a later one; counts and modalities combined."""
    for a in StudyRecord.ATTRIBUTES:
        mine, theirs = getattr(row, a.field), getattr(study, a.field)
        if a.kind == "count":
            setattr(row, a.field, max(mine, theirs))
        elif a.kind == "list":
            setattr(row, a.field, sorted(set(mine) | set(theirs)))
        elif not mine and theirs:
            setattr(row, a.field, theirs)


def merge_studies(per_node: Iterable[Iterable[StudyRecord]]) -> list[FoundStudy]:
    """One row per Study Instance UID; the first answer's values win, gaps are filled."""
    merged: dict[str, FoundStudy] = {}
    for studies in per_node:
        for study in studies:
            sources = getattr(study, "sources", [])
            row = merged.get(study.study_instance_uid)
            if row is None:
                row = FoundStudy(**{a.field: copy.copy(getattr(study, a.field))
                                    for a in StudyRecord.ATTRIBUTES})
                merged[study.study_instance_uid] = row
            else:
                _fill(row, study)
            row.sources.extend(s for s in sources if s not in row.sources)
    return sorted(
        merged.values(),
        key=lambda s: (s.study_date, s.study_time, s.study_instance_uid),
        reverse=True,
    )
