"""What PS3.15 Table E.1-1 says to do with each attribute, resolved to one action.

The table itself comes from `dicom-anonymizer` (Kitware), which parses each
release of the standard into tag lists per action code; we only read its
data. The standard leaves the compound codes (X/Z, X/D, Z/D, X/Z/D, X/Z/U*)
to the IOD's type of the attribute, which a generic exporter does not know,
so each is resolved to the choice that never makes a conforming instance
non-conforming: an empty value where the attribute may be type 2, a dummy
value where it may be type 1. Sequences are removed or emptied where the
table allows it (their items would need a dummy of every value); the few
that carry references or the document tree are kept and cleaned item by
item so a copied KOS, SR or presentation state still works.
"""

from __future__ import annotations

import functools
from enum import Enum

from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.tag import Tag

#: The release of PS3.15 whose Table E.1-1 is applied.
TABLE_RELEASE = "dicomfields_2026c"

#: dicom-anonymizer's tag list -> the table's action code.
_CODES = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}


class Action(Enum):
    REMOVE = "remove"
    EMPTY = "empty"
    DUMMY = "dummy"
    UID = "uid"
    CLEAN = "clean"
    KEEP = "keep"


#: D sequences kept and cleaned item by item (they hold references or the document itself).
CLEANED_SEQUENCES = frozenset(
    {
        Tag("ContentSequence"),
        Tag("GraphicAnnotationSequence"),
        Tag("VerifyingObserverSequence"),
    }
)

#: Attributes the table lists as X that are type 1 in IODs we write (dciodvfy finds them
#: missing otherwise): they get a dummy value instead.
TYPE1_REMOVALS = frozenset(
    {
        Tag("PresentationCreationDate"),
        Tag("PresentationCreationTime"),
    }
)

#: Temporal attributes removed even with the Retain Longitudinal Temporal Information
#: option: together with the study dates the birth date identifies a patient.
NEVER_RETAINED = frozenset({Tag("PatientBirthDate"), Tag("PatientBirthTime")})

_SCALAR = {
    "X": Action.REMOVE,
    "Z": Action.EMPTY,
    "D": Action.DUMMY,
    "U": Action.UID,
    "X/Z": Action.EMPTY,
    "Z/D": Action.DUMMY,
    "X/D": Action.DUMMY,
    "X/Z/D": Action.DUMMY,
}
_SEQUENCE = {
    "X": Action.REMOVE,
    "Z": Action.EMPTY,
    "D": Action.DUMMY,
    "X/Z": Action.EMPTY,
    "Z/D": Action.DUMMY,
    "X/D": Action.REMOVE,
    "X/Z/D": Action.EMPTY,
    "X/Z/U*": Action.CLEAN,
}


@functools.cache
def _table() -> tuple[dict[int, str], tuple[tuple[int, int, int, int, str], ...]]:
    """Exact tags and masked ranges (group, element, group mask, element mask, code)."""
    lists = dicom_anonymization_database_selector(TABLE_RELEASE)
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for name, code in _CODES.items():
        for entry in lists[name]:
            if len(entry) == 2:
                exact[(entry[0] << 16) | entry[1]] = code
            else:
                masked.append((entry[0], entry[1], entry[2], entry[3], code))
    return exact, tuple(masked)


def table_code(tag: int) -> str | None:
    """The Basic Profile's action code for `tag` ("X", "Z/D", ...), None when not listed."""
    exact, masked = _table()
    code = exact.get(tag)
    if code is not None:
        return code
    group, element = tag >> 16, tag & 0xFFFF
    for g, e, gmask, emask, mcode in masked:
        if group & gmask == g & gmask and element & emask == e & emask:
            return mcode
    return None


def listed_tags() -> list[int]:
    """Every individually listed tag of the table (the masked ranges excluded)."""
    return sorted(_table()[0])


def resolve(tag: int, vr: str, retain_dates: bool) -> Action | None:
    """The action for one element, None when the table does not list it."""
    code = table_code(tag)
    if code is None:
        return None
    if retain_dates and vr in ("DA", "DT", "TM") and tag not in NEVER_RETAINED:
        return Action.KEEP
    if vr == "SQ":
        if code == "D" and tag in CLEANED_SEQUENCES:
            return Action.CLEAN
        return _SEQUENCE.get(code, Action.REMOVE)
    if code == "X" and tag in TYPE1_REMOVALS:
        return Action.DUMMY
    if code == "X/Z/U*":
        return Action.UID if vr == "UI" else Action.EMPTY
    return _SCALAR[code]
