"""One attribute vocabulary: records, index columns and JSON keys come from one table,
and an index written by an older gearview is migrated, not lost."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from factory import make_ct, write_series
from pydicom.uid import generate_uid

from gearview.config import load_config
from gearview.errors import InvalidDicomError
from gearview.home import Home
from gearview.store import Cache, read_instance_info
from gearview.store.attributes import ATTRIBUTES, snake_case
from gearview.store.check import check_store
from gearview.store.index import SCHEMA_VERSION, connect
from gearview.store.records import InstanceInfo, InstanceRecord, SeriesRecord, StudyRecord

#: The index of gearview 0.x (schema 1), verbatim.
SCHEMA_V1 = """
CREATE TABLE patient (pk INTEGER PRIMARY KEY, patient_id TEXT NOT NULL, issuer TEXT NOT NULL,
    patient_name TEXT NOT NULL, birth_date TEXT NOT NULL, sex TEXT NOT NULL,
    UNIQUE (patient_id, issuer, patient_name, birth_date));
CREATE TABLE study (study_uid TEXT PRIMARY KEY, patient_pk INTEGER NOT NULL REFERENCES patient(pk),
    study_date TEXT NOT NULL DEFAULT '', study_time TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '', study_id TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '', referring_physician TEXT NOT NULL DEFAULT '',
    institution TEXT NOT NULL DEFAULT '', updated_at REAL NOT NULL);
CREATE INDEX study_patient ON study(patient_pk);
CREATE INDEX study_date ON study(study_date);
CREATE TABLE series (series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES study(study_uid), modality TEXT NOT NULL DEFAULT '',
    number INTEGER, description TEXT NOT NULL DEFAULT '',
    body_part TEXT NOT NULL DEFAULT '');
CREATE INDEX series_study ON series(study_uid);
CREATE TABLE instance (sop_uid TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL REFERENCES series(series_uid), study_uid TEXT NOT NULL,
    sop_class TEXT NOT NULL, transfer_syntax TEXT NOT NULL,
    instance_number INTEGER, frames INTEGER NOT NULL DEFAULT 1, rows INTEGER, columns INTEGER,
    path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, received_at REAL NOT NULL,
    source_ae TEXT NOT NULL DEFAULT '', patient_name TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '', issuer TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '', sex TEXT NOT NULL DEFAULT '',
    charset TEXT NOT NULL DEFAULT '');
CREATE INDEX instance_series ON instance(series_uid);
CREATE INDEX instance_study ON instance(study_uid);
"""
#: What gearview 0.x wrote for each table, as SELECTs over today's columns.
COPY_V1 = {
    "patient": "pk, patient_id, issuer_of_patient_id, patient_name, patient_birth_date, "
               "patient_sex",
    "study": "study_instance_uid, patient_pk, study_date, study_time, accession_number, "
             "study_id, study_description, referring_physician_name, institution_name, "
             "updated_at",
    "series": "series_instance_uid, study_instance_uid, modality, series_number, "
              "series_description, body_part_examined",
    "instance": "sop_instance_uid, series_instance_uid, study_instance_uid, sop_class_uid, "
                "transfer_syntax_uid, instance_number, number_of_frames, rows, columns, path, "
                "size, received_at, source_ae, patient_name, patient_id, issuer_of_patient_id, "
                "patient_birth_date, patient_sex, specific_character_set",
}


def _columns(conn: sqlite3.Connection) -> dict[str, set[str]]:
    return {t: {row[1] for row in conn.execute(f"PRAGMA table_info({t})")} for t in COPY_V1}


def _as_schema_1(home: Home) -> None:
    """Rewrite the home's index as gearview 0.x would have left it (same rows)."""
    old = home.index_file.with_name("v1.sqlite")
    conn = sqlite3.connect(old)
    conn.executescript(SCHEMA_V1)
    conn.execute("ATTACH ? AS current", (str(home.index_file),))
    for table, select in COPY_V1.items():
        conn.execute(f"INSERT INTO {table} SELECT {select} FROM current.{table}")
    conn.commit()
    conn.execute("DETACH current")
    conn.execute("PRAGMA user_version=1")
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(home.index_file) + suffix).unlink(missing_ok=True)
    old.rename(home.index_file)


def test_an_index_of_schema_1_is_migrated_with_every_row(home: Home, tmp_path: Path) -> None:
    cache = Cache(home, load_config(home))
    for path in write_series(tmp_path / "a", 3, patient_name="Old^Home", accession="A-1"):
        cache.add_file(path, source_ae="MODALITY")
    before = [s.to_json() for s in cache.studies()]
    series_before = [s.to_json() for s in cache.series(before[0]["study_uid"])]
    instances_before = cache.instances()
    cache.close()
    _as_schema_1(home)

    migrated = Cache(home, load_config(home))
    try:
        assert [s.to_json() for s in migrated.studies()] == before
        assert [s.to_json() for s in migrated.series(before[0]["study_uid"])] == series_before
        assert migrated.instances() == instances_before  # source AE and arrival time kept
        assert migrated.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        fresh = connect(tmp_path / "fresh.sqlite")
        assert _columns(migrated.conn) == _columns(fresh)
        fresh.close()
        for path in write_series(tmp_path / "b", 1, study_uid=before[0]["study_uid"]):
            migrated.add_file(path)  # and it keeps working
        assert migrated.studies()[0].number_of_study_related_instances == 4
    finally:
        migrated.close()
    assert check_store(home, migrated.files_dir).clean


def test_record_fields_are_the_keywords_and_json_keeps_the_spec_keys() -> None:
    for record in (StudyRecord, SeriesRecord, InstanceRecord, InstanceInfo):
        for attr in record.ATTRIBUTES:
            assert attr.field == snake_case(attr.keyword)
            assert attr.field in {f.name for f in dataclasses.fields(record)}
    assert list(StudyRecord("1.2.3").to_json()) == [
        "study_uid", "patient_name", "patient_id", "issuer_of_patient_id", "birth_date", "sex",
        "study_date", "study_time", "accession", "study_id", "description",
        "referring_physician", "modalities", "series", "instances",
    ]
    assert list(SeriesRecord("1.2", "1.2.3").to_json()) == [
        "series_uid", "number", "modality", "description", "instances",
    ]
    assert snake_case("SOPInstanceUID") == "sop_instance_uid"
    assert snake_case("IssuerOfPatientID") == "issuer_of_patient_id"
    assert len({a.field for a in ATTRIBUTES}) == len(ATTRIBUTES)


def test_header_values_land_in_the_fields_named_after_their_keywords(tmp_path: Path) -> None:
    ds = make_ct(generate_uid(), generate_uid(), 7, accession="ACC-9", series_number=4)
    ds.InstitutionName = "General"
    ds.BodyPartExamined = "HEAD"
    path = tmp_path / "one.dcm"
    ds.save_as(path, enforce_file_format=True)
    info = read_instance_info(path)
    for attr in InstanceInfo.ATTRIBUTES:
        if attr.meta:
            assert getattr(info, attr.field) == ds.file_meta.TransferSyntaxUID
            continue
        value = ds.get(attr.keyword)
        if attr.is_int:
            assert getattr(info, attr.field) == (attr.default if value is None else value)
        else:
            assert getattr(info, attr.field) == ("" if value is None else str(value))


@pytest.mark.parametrize("photometric, factor", [("YBR_FULL_422", 2), ("RGB", 3)])
def test_native_pixel_length_follows_pydicom(tmp_path: Path, photometric: str, factor: int):
    """4:2:2 native data holds two samples per pixel: a full-length check refused it."""
    ds = make_ct(generate_uid(), generate_uid(), 1, rows=4, cols=4)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 3, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PlanarConfiguration = 8, 8, 7, 0
    ds.PixelData = np.zeros(4 * 4 * factor, dtype=np.uint8).tobytes()
    path = tmp_path / "ybr.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert read_instance_info(path).has_pixels
    ds.PixelData = ds.PixelData[:-2]
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InvalidDicomError, match="truncated: Pixel Data"):
        read_instance_info(path)
