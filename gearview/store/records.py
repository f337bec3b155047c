"""Plain records the cache returns to the CLI, the server and the GUI."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StudyRecord:
    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    issuer_of_patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession: str = ""
    study_id: str = ""
    description: str = ""
    referring_physician: str = ""
    modalities: list[str] = field(default_factory=list)
    series: int = 0
    instances: int = 0
    institution: str = ""
    updated_at: float = 0.0
    mismatch: bool = False

    JSON_KEYS = (
        "study_uid",
        "patient_name",
        "patient_id",
        "issuer_of_patient_id",
        "birth_date",
        "sex",
        "study_date",
        "study_time",
        "accession",
        "study_id",
        "description",
        "referring_physician",
        "modalities",
        "series",
        "instances",
    )

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StudyRecord:
        return cls(
            study_uid=row["study_uid"],
            patient_name=row["patient_name"],
            patient_id=row["patient_id"],
            issuer_of_patient_id=row["issuer_of_patient_id"],
            birth_date=row["birth_date"],
            sex=row["sex"],
            study_date=row["study_date"],
            study_time=row["study_time"],
            accession=row["accession"],
            study_id=row["study_id"],
            description=row["description"],
            referring_physician=row["referring_physician"],
            modalities=[m for m in (row["modalities"] or "").split("\\") if m],
            series=row["series_count"],
            instances=row["instance_count"],
            institution=row["institution"],
            updated_at=row["updated_at"],
            mismatch=bool(row["mismatch"]),
        )

    def to_json(self) -> dict[str, Any]:
        """The stable SPEC §3 shape for `--json` output."""
        return {key: getattr(self, key) for key in self.JSON_KEYS}


@dataclass
class SeriesRecord:
    series_uid: str
    study_uid: str
    number: int | None
    modality: str
    description: str
    instances: int
    body_part: str = ""

    JSON_KEYS = ("series_uid", "number", "modality", "description", "instances")

    def to_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.JSON_KEYS}


@dataclass
class InstanceRecord:
    sop_uid: str
    series_uid: str
    study_uid: str
    sop_class: str
    transfer_syntax: str
    instance_number: int | None
    frames: int
    rows: int | None
    columns: int | None
    path: Path
    size: int
    received_at: float
    source_ae: str

    @classmethod
    def from_row(cls, row: sqlite3.Row, files_dir: Path) -> InstanceRecord:
        return cls(
            sop_uid=row["sop_uid"],
            series_uid=row["series_uid"],
            study_uid=row["study_uid"],
            sop_class=row["sop_class"],
            transfer_syntax=row["transfer_syntax"],
            instance_number=row["instance_number"],
            frames=row["frames"],
            rows=row["rows"],
            columns=row["columns"],
            path=files_dir / row["path"],
            size=row["size"],
            received_at=row["received_at"],
            source_ae=row["source_ae"],
        )
