"""Patient discs carry one patient (SPEC §2.10).

A corrected instance keeps its previous values in Original Attributes
Sequence (0400,0561): right for a PACS, wrong on a disc handed to a patient,
which would carry the previous - possibly another person's - name, ID and
birth date. When `[media] keep_original_attributes` is false (the default)
the disc copy leaves out every item that holds a patient identity other than
the instance's own; items about other attributes (a study description) stay.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

OAS = "OriginalAttributesSequence"
#: The attributes that say who the patient is.
IDENTITY = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
            "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence")


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value)


def _other_identity(item: Dataset, ds: Dataset) -> bool:
    for modified in item.get("ModifiedAttributesSequence", []):
        for keyword in IDENTITY:
            if keyword in modified and _text(modified, keyword) != _text(ds, keyword):
                return True
    return False


def holds_other_identity(path: Path) -> bool:
    """Whether the file's Original Attributes hold another identity (header read, not pixels)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[OAS, *IDENTITY])
    return any(_other_identity(item, ds) for item in ds.get(OAS, []))


def drop_other_identities(ds: Dataset) -> int:
    """Remove the Original Attributes items holding another identity; returns how many."""
    items = list(ds.get(OAS, []))
    kept = [item for item in items if not _other_identity(item, ds)]
    if len(kept) == len(items):
        return 0
    if kept:
        ds.OriginalAttributesSequence = Sequence(kept)
    else:
        del ds.OriginalAttributesSequence
    return len(items) - len(kept)
