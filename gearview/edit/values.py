"""Validate edited values per VR before any file is touched (strict on edit).

Every error names the field (keyword and tag) so the CLI's one line and the
form's inline message tell the user exactly what to fix.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pydicom.datadict import dictionary_VM, dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.tag import BaseTag, Tag

from gearview.errors import InvalidValueError

#: The fields the QC form shows, in order, with their labels.
COMMON_FIELDS: tuple[tuple[str, str], ...] = (
    ("PatientName", "Patient's Name"),
    ("PatientID", "Patient ID"),
    ("IssuerOfPatientID", "Issuer of Patient ID"),
    ("OtherPatientIDs", "Other Patient IDs"),
    ("PatientBirthDate", "Birth Date"),
    ("PatientSex", "Sex"),
    ("AccessionNumber", "Accession Number"),
    ("StudyDescription", "Study Description"),
    ("ReferringPhysicianName", "Referring Physician"),
    ("StudyDate", "Study Date"),
    ("StudyTime", "Study Time"),
    ("StudyID", "Study ID"),
    ("InstitutionName", "Institution Name"),
)

#: Maximum value length (characters) per VR (PS3.5 table 6.2-1); PN is per component group.
MAX_LENGTH = {
    "AE": 16,
    "AS": 4,
    "CS": 16,
    "DA": 8,
    "DS": 16,
    "DT": 26,
    "IS": 12,
    "LO": 64,
    "LT": 10240,
    "PN": 64,
    "SH": 16,
    "ST": 1024,
    "TM": 14,
    "UC": 0xFFFFFFFE,
    "UR": 0xFFFFFFFE,
    "UT": 0xFFFFFFFE,
}
TEXT_VRS = {"LT", "ST", "UT"}
NUMERIC_BINARY = {
    "US": (0, 0xFFFF),
    "SS": (-0x8000, 0x7FFF),
    "UL": (0, 0xFFFFFFFF),
    "SL": (-0x80000000, 0x7FFFFFFF),
    "SV": (-(1 << 63), (1 << 63) - 1),
    "UV": (0, (1 << 64) - 1),
}
FLOAT_BINARY = {"FL", "FD"}
#: Never edited by keyword: identity (UI), structure (SQ), binary payloads, and
#: attributes gearview manages itself (charset, provenance, group lengths).
REFUSED_VRS = {"UI", "SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN", "AT"}
MANAGED = {"SpecificCharacterSet", "OriginalAttributesSequence"}

_CS_RE = re.compile(r"^[A-Z0-9_ ]*$")
_AS_RE = re.compile(r"^\d{3}[DWMY]$")
_TM_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
_DT_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")
_IS_RE = re.compile(r"^[+-]?\d+$")
_DS_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_NO_NEWLINE_RE = re.compile(r"[\x00-\x1f\x7f]")
SEX_VALUES = {"", "M", "F", "O"}


@dataclass(frozen=True)
class Field:
    """An attribute that may be edited, resolved from a keyword or a tag."""

    tag: BaseTag
    keyword: str
    vr: str
    vm: str

    @property
    def name(self) -> str:
        """How errors and the form name the field: keyword and tag."""
        return f"{self.keyword} {self.tag}"

    @property
    def multi(self) -> bool:
        return self.vm != "1"


def resolve_field(name: str) -> Field:
    """A keyword ("PatientName") or tag ("00100010", "(0010,0010)") to an editable Field."""
    text = name.strip()
    tag = tag_for_keyword(text)
    if tag is None:
        digits = re.sub(r"[(),\s]", "", text)
        if not re.fullmatch(r"[0-9A-Fa-f]{8}", digits):
            raise InvalidValueError(
                f"unknown attribute {text!r}",
                hint="use a DICOM keyword such as PatientName, or a tag as GGGGEEEE",
            )
        tag = int(digits, 16)
    tag = Tag(tag)
    keyword = keyword_for_tag(tag)
    if not keyword:
        raise InvalidValueError(
            f"{tag} is not a standard attribute (private or unknown): not editable by keyword"
        )
    vr = dictionary_VR(tag)
    field = Field(tag=tag, keyword=keyword, vr=vr, vm=dictionary_VM(tag))
    if tag.group <= 0x0002 or tag.element == 0 or tag.group == 0x7FE0 or tag.group >= 0xFFFA:
        raise InvalidValueError(f"{field.name} is managed by the file format and cannot be edited")
    if keyword in MANAGED:
        raise InvalidValueError(
            f"{field.name} is managed by gearview and cannot be edited directly"
        )
    if vr in REFUSED_VRS or " or " in vr:
        raise InvalidValueError(
            f"{field.name} has VR {vr}: only non-UID text and number attributes can be edited",
            hint="structure fixes change UIDs consistently",
        )
    return field


def validate(field: Field, value: str) -> str:
    """The value as it will be written (normalised), or InvalidValueError naming the field."""
    value = value.strip(" ") if field.vr not in TEXT_VRS else value.rstrip(" ")
    if value == "":
        return ""
    if "\\" in value and not field.multi:
        raise InvalidValueError(
            f"{field.name}: a backslash is not allowed (the attribute has one value)"
        )
    parts = value.split("\\") if field.vr not in TEXT_VRS else [value]
    checked = [
        _check_one(field, part.strip(" ") if field.vr not in TEXT_VRS else part) for part in parts
    ]
    return "\\".join(checked)


def validate_all(values: dict[str, str]) -> dict[Field, str]:
    """Resolve and validate every keyword=value; the first bad one raises."""
    result: dict[Field, str] = {}
    for name, value in values.items():
        field = resolve_field(name)
        result[field] = validate(field, value)
    return result


def _check_one(field: Field, value: str) -> str:
    vr = field.vr
    checker = _CHECKERS.get(vr)
    if checker is not None:
        checker(field, value)
    elif vr in NUMERIC_BINARY:
        _check_int_range(field, value, *NUMERIC_BINARY[vr])
    elif vr in FLOAT_BINARY:
        _check_float(field, value)
    limit = MAX_LENGTH.get(vr)
    if limit is not None and vr != "PN" and len(value) > limit:
        raise InvalidValueError(
            f"{field.name}: at most {limit} characters for VR {vr} (got {len(value)})"
        )
    pattern = _CONTROL_RE if vr in TEXT_VRS else _CONTROL_NO_NEWLINE_RE
    if pattern.search(value):
        raise InvalidValueError(f"{field.name}: control characters are not allowed")
    return value


def _check_pn(field: Field, value: str) -> None:
    groups = value.split("=")
    if len(groups) > 3:
        raise InvalidValueError(
            f"{field.name}: at most 3 component groups (alphabetic=ideographic=phonetic)"
        )
    for group in groups:
        if len(group) > MAX_LENGTH["PN"]:
            raise InvalidValueError(f"{field.name}: each component group is at most 64 characters")
        if len(group.split("^")) > 5:
            raise InvalidValueError(
                f"{field.name}: at most 5 components (family^given^middle^prefix^suffix)"
            )


def _check_da(field: Field, value: str) -> None:
    if not re.fullmatch(r"\d{8}", value):
        raise InvalidValueError(f"{field.name}: {value!r} is not a date (YYYYMMDD)")
    try:
        dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise InvalidValueError(f"{field.name}: {value!r} is not a valid calendar date") from None


def _check_tm(field: Field, value: str) -> None:
    match = _TM_RE.fullmatch(value)
    if not match:
        raise InvalidValueError(f"{field.name}: {value!r} is not a time (HHMMSS.FFFFFF)")
    hh, mm, ss = (int(g) if g else 0 for g in match.groups()[:3])
    if hh > 23 or mm > 59 or ss > 60:
        raise InvalidValueError(f"{field.name}: {value!r} is out of range")


def _check_dt(field: Field, value: str) -> None:
    match = _DT_RE.fullmatch(value)
    if not match:
        raise InvalidValueError(
            f"{field.name}: {value!r} is not a date-time (YYYYMMDDHHMMSS.FFFFFF&ZZXX)"
        )
    year, month, day, hh, mm, ss = (int(g) if g else None for g in match.groups()[:6])
    try:
        dt.date(year, month or 1, day or 1)
    except ValueError:
        raise InvalidValueError(f"{field.name}: {value!r} is not a valid calendar date") from None
    if (hh or 0) > 23 or (mm or 0) > 59 or (ss or 0) > 60:
        raise InvalidValueError(f"{field.name}: {value!r} is out of range")
    offset = match.group(8)
    if offset and (int(offset[1:3]) > 14 or int(offset[3:]) > 59):
        raise InvalidValueError(f"{field.name}: {value!r} has an invalid UTC offset")


def _check_as(field: Field, value: str) -> None:
    if not _AS_RE.fullmatch(value):
        raise InvalidValueError(f"{field.name}: {value!r} is not an age (nnnD, nnnW, nnnM or nnnY)")


def _check_cs(field: Field, value: str) -> None:
    if not _CS_RE.fullmatch(value):
        raise InvalidValueError(f"{field.name}: {value!r} may only hold A-Z, 0-9, space and _")
    if field.keyword == "PatientSex" and value not in SEX_VALUES:
        raise InvalidValueError(f"{field.name}: {value!r} must be M, F or O (or empty)")


def _check_is(field: Field, value: str) -> None:
    if not _IS_RE.fullmatch(value):
        raise InvalidValueError(f"{field.name}: {value!r} is not an integer string")
    _check_int_range(field, value, -(1 << 31), (1 << 31) - 1)


def _check_ds(field: Field, value: str) -> None:
    if not _DS_RE.fullmatch(value):
        raise InvalidValueError(f"{field.name}: {value!r} is not a decimal string")


def _check_int_range(field: Field, value: str, low: int, high: int) -> None:
    try:
        number = int(value)
    except ValueError:
        raise InvalidValueError(f"{field.name}: {value!r} is not an integer") from None
    if not low <= number <= high:
        raise InvalidValueError(f"{field.name}: {number} is outside {low}..{high}")


def _check_float(field: Field, value: str) -> None:
    try:
        float(value)
    except ValueError:
        raise InvalidValueError(f"{field.name}: {value!r} is not a number") from None


def _check_ae(field: Field, value: str) -> None:
    if "\\" in value or _CONTROL_NO_NEWLINE_RE.search(value):
        raise InvalidValueError(f"{field.name}: {value!r} is not a valid AE title")


_CHECKERS = {
    "PN": _check_pn,
    "DA": _check_da,
    "TM": _check_tm,
    "DT": _check_dt,
    "AS": _check_as,
    "CS": _check_cs,
    "IS": _check_is,
    "DS": _check_ds,
    "AE": _check_ae,
}


def python_value(field: Field, value: str) -> object:
    """The value pydicom should hold for the element (numbers for binary VRs)."""
    if value == "":
        return None if field.vr in NUMERIC_BINARY or field.vr in FLOAT_BINARY else ""
    if field.vr in NUMERIC_BINARY:
        numbers = [int(v) for v in value.split("\\")]
        return numbers[0] if len(numbers) == 1 else numbers
    if field.vr in FLOAT_BINARY:
        floats = [float(v) for v in value.split("\\")]
        return floats[0] if len(floats) == 1 else floats
    return value
