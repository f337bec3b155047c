"""Import reconciliation (IHE IRWF): map an outside patient to the local Patient ID.

The outside Patient ID / Issuer are kept in Other Patient IDs Sequence
(0010,1002) so nothing is lost, and differences between the outside and the
local demographics are returned as warnings for the user, never silently
overwritten. Applied to the imported copy before it enters the cache.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from gearview.errors import InvalidDicomError, InvalidValueError

MAX_ID_LENGTH = 64  # LO


@dataclass(frozen=True)
class Reconcile:
    """The local identity an imported patient is mapped to."""

    patient_id: str
    issuer: str = ""

    def __post_init__(self) -> None:
        for label, value in (("patient ID", self.patient_id), ("issuer", self.issuer)):
            if len(value) > MAX_ID_LENGTH or "\\" in value or any(ord(c) < 32 for c in value):
                raise InvalidValueError(
                    f"invalid {label} {value!r}",
                    hint="at most 64 characters, no backslash or control characters",
                )
        if not self.patient_id.strip():
            raise InvalidValueError("the local patient ID is empty", hint="give the local MRN")


def reconcile_dataset(ds: Dataset, target: Reconcile) -> bool:
    """Set the local ID on `ds`, keeping the outside one; False when already local."""
    outside_id = str(ds.get("PatientID", "") or "")
    outside_issuer = str(ds.get("IssuerOfPatientID", "") or "")
    if outside_id == target.patient_id and outside_issuer == target.issuer:
        return False
    if outside_id:
        item = Dataset()
        item.PatientID = outside_id
        if outside_issuer:
            item.IssuerOfPatientID = outside_issuer
        item.TypeOfPatientID = "TEXT"
        others = list(ds.get("OtherPatientIDsSequence", []))
        if not any(
            o.get("PatientID") == outside_id and o.get("IssuerOfPatientID", "") == outside_issuer
            for o in others
        ):
            others.append(item)
        ds.OtherPatientIDsSequence = others
    ds.PatientID = target.patient_id
    if target.issuer:
        ds.IssuerOfPatientID = target.issuer
    elif "IssuerOfPatientID" in ds:
        del ds.IssuerOfPatientID
    return True


def reconcile_file(source: Path, target_path: Path, target: Reconcile) -> None:
    """Write a reconciled copy of `source` to `target_path` (same transfer syntax)."""
    try:
        ds = pydicom.dcmread(source)
        reconcile_dataset(ds, target)
        ds.save_as(target_path, enforce_file_format=True)
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InvalidDicomError(f"cannot reconcile: {exc}") from None


def demographic_warnings(
    conn: sqlite3.Connection, target: Reconcile, name: str, birth_date: str, sex: str
) -> list[str]:
    """Differences between the outside demographics and the local record of the target ID."""
    rows = conn.execute(
        "SELECT patient_name, birth_date, sex FROM patient WHERE patient_id=? AND issuer=?",
        (target.patient_id, target.issuer),
    ).fetchall()
    if not rows:
        return [
            f"no local record for patient ID {target.patient_id!r}: the outside name, birth date "
            "and sex are kept as they are"
        ]
    local = rows[0]
    warnings = []
    for label, outside, here in (
        ("name", name, local["patient_name"]),
        ("birth date", birth_date, local["birth_date"]),
        ("sex", sex, local["sex"]),
    ):
        if outside != here:
            warnings.append(
                f"{label} differs from the local record: outside {outside!r}, local {here!r}"
            )
    return warnings
