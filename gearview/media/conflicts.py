"""An imported instance must never replace another patient's or study's cached copy.

The cache refuses it (`store/conflicts.py`, after re-applying the corrections
of the study); this is how the import report and the import dialog's
per-conflict choice name it. The same SOP Instance UID cached under another
patient (Patient ID and issuer), another study or with other pixel data is a
conflict: the cached file stays, the incoming one is reported, unless the user
asks to replace it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from gearview.store.ledger import OTHER_CONTENT
from gearview.store.ledger import Conflict as StoreConflict


@dataclass(frozen=True)
class Conflict:
    """An incoming instance whose SOP Instance UID is cached elsewhere."""

    name: str
    sop_uid: str
    cached_study: str
    cached_patient: tuple[str, str]
    incoming_study: str
    incoming_patient: tuple[str, str]
    kind: str = ""

    @classmethod
    def refused(cls, name: str, conflict: StoreConflict) -> Conflict:
        """The report's view of why the cache refused an instance."""
        return cls(name, conflict.sop_uid, conflict.cached_study_uid,
                   (conflict.cached_patient_id, conflict.cached_issuer), conflict.study_uid,
                   (conflict.patient_id, conflict.issuer), conflict.kind)

    @property
    def reason(self) -> str:
        if self.kind == OTHER_CONTENT:
            return (f"not replaced: SOP Instance UID {self.sop_uid} is already cached with other "
                    f"pixel data in study {self.cached_study}")
        what = []
        if self.cached_patient != self.incoming_patient:
            pid, issuer = self.cached_patient
            what.append(f"patient {pid!r}" + (f" (issuer {issuer})" if issuer else ""))
        if self.cached_study != self.incoming_study:
            what.append(f"study {self.cached_study}")
        return (
            f"not replaced: SOP Instance UID {self.sop_uid} is already cached under another "
            f"{' and '.join(what)}"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.name,
            "sop_uid": self.sop_uid,
            "cached_study": self.cached_study,
            "cached_patient_id": self.cached_patient[0],
            "cached_issuer": self.cached_patient[1],
            "incoming_study": self.incoming_study,
            "incoming_patient_id": self.incoming_patient[0],
            "incoming_issuer": self.incoming_patient[1],
        }


def find_conflict(
    conn: sqlite3.Connection,
    name: str,
    sop_uid: str,
    study_uid: str,
    patient: tuple[str, str],
) -> Conflict | None:
    """The conflict an incoming instance (as it will be stored) would cause, if any."""
    row = conn.execute(
        "SELECT study_instance_uid, patient_id, issuer_of_patient_id FROM instance "
        "WHERE sop_instance_uid = ?",
        (sop_uid,),
    ).fetchone()
    if row is None:
        return None
    cached_patient = (row["patient_id"], row["issuer_of_patient_id"])
    if row["study_instance_uid"] == study_uid and cached_patient == patient:
        return None
    return Conflict(name, sop_uid, row["study_instance_uid"], cached_patient, study_uid, patient)
