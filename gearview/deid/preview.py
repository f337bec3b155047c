"""What a de-identified copy of a study will show: old -> new for the main attributes.

The preview runs the same `Deidentifier` on a data set built from the
study's index record, so what the dialogs show is what the export writes
(same pseudonym, same new Study Instance UID), without reading a file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from gearview.deid.deidentify import Deidentifier, DeidOptions
from gearview.home import Home
from gearview.store.records import StudyRecord

#: (label, keyword, study record field) in the order the dialogs show them.
PREVIEW_FIELDS = (
    ("Patient's Name", "PatientName", "patient_name"),
    ("Patient ID", "PatientID", "patient_id"),
    ("Issuer of Patient ID", "IssuerOfPatientID", "issuer_of_patient_id"),
    ("Birth Date", "PatientBirthDate", "patient_birth_date"),
    ("Sex", "PatientSex", "patient_sex"),
    ("Study Date", "StudyDate", "study_date"),
    ("Study Time", "StudyTime", "study_time"),
    ("Accession Number", "AccessionNumber", "accession_number"),
    ("Study ID", "StudyID", "study_id"),
    ("Study Description", "StudyDescription", "study_description"),
    ("Referring Physician", "ReferringPhysicianName", "referring_physician_name"),
    ("Institution", "InstitutionName", "institution_name"),
    ("Study Instance UID", "StudyInstanceUID", "study_instance_uid"),
)
REMOVED = "(removed)"
EMPTY = "(empty)"


@dataclass(frozen=True)
class PreviewRow:
    study_uid: str
    label: str
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new


def preview(home: Home, studies: Iterable[StudyRecord], options: DeidOptions) -> list[PreviewRow]:
    """One row per main attribute of each study (raises InvalidValueError for a bad pseudonym)."""
    deidentifier = Deidentifier.for_home(home, options)
    rows = []
    for study in studies:
        ds = Dataset()
        for _label, keyword, attr in PREVIEW_FIELDS:
            value = getattr(study, attr) or ""
            if value:
                ds.add_new(keyword, dictionary_VR(keyword), value)
        deidentifier.apply(ds)
        for label, keyword, attr in PREVIEW_FIELDS:
            old = getattr(study, attr) or ""
            if keyword in ds:
                new = str(ds[keyword].value or "") or EMPTY
            else:
                new = REMOVED if old else EMPTY
            rows.append(PreviewRow(study.study_instance_uid, label, old or EMPTY, new))
    return rows
