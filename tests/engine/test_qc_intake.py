"""The QC promise at the cache's door: a correction stays made, nothing cached is overwritten
by another instance, and a Series UID shared by two studies hides neither."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pydicom
import pytest
from factory import make_ct, write_series
from pydicom.uid import generate_uid

from gearview.config import load_config
from gearview.edit.corrections import open_cache
from gearview.edit.structure import split_study
from gearview.edit.study_edit import edit_study
from gearview.edit.undo import undo_last
from gearview.home import Home
from gearview.media.importer import import_path
from gearview.store import Cache, audit
from gearview.store.check import rebuild_index
from gearview.store.ledger import NOT_CORRECTED, OTHER_PATIENT

NEW = {"PatientName": "Right^Patient", "PatientID": "RIGHT-1", "StudyDescription": "Fixed"}


def _ids(cache: Cache, study: str) -> set[tuple[str, str, str]]:
    return {
        (str(ds.PatientName), ds.PatientID, ds.StudyDescription)
        for ds in (pydicom.dcmread(r.path) for r in cache.instances(study_uid=study))
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def edited(cache: Cache, tmp_path: Path) -> tuple[str, list[Path]]:
    study = generate_uid()
    paths = write_series(tmp_path / "modality", 3, study_uid=study, patient_name="Wrong^Name",
                         patient_id="WRONG-9")
    for path in paths:
        cache.add_file(path, "MODALITY")
    edit_study(cache, study, NEW, reason="wrong patient picked at the modality")
    return study, paths


def test_a_resent_study_keeps_its_correction(cache: Cache, edited) -> None:
    study, paths = edited
    for path in paths:
        stored = cache.add_file(path, "MODALITY")
        assert stored.stored and set(stored.corrected) == set(NEW)
    assert _ids(cache, study) == {("Right^Patient", "RIGHT-1", "Fixed")}
    assert not cache.study(study).mismatch
    ds = pydicom.dcmread(cache.instances(study_uid=study)[0].path)
    previous = ds.OriginalAttributesSequence[-1].ModifiedAttributesSequence[0]
    assert previous.PatientName == "Wrong^Name" and previous.PatientID == "WRONG-9"
    lines = [r for r in audit.read(cache.home) if r["action"] == "correction re-applied"]
    assert len(lines) == 3 and lines[0]["source"] == "MODALITY"


def test_a_new_instance_of_an_edited_study_gets_the_correction(cache: Cache, edited, tmp_path):
    study, paths = edited
    new = make_ct(study, pydicom.dcmread(paths[0]).SeriesInstanceUID, 9,
                  patient_name="Wrong^Name", patient_id="WRONG-9")
    new.save_as(tmp_path / "late.dcm", enforce_file_format=True)
    cache.add_file(tmp_path / "late.dcm")
    assert len(cache.instances(study_uid=study)) == 4
    assert _ids(cache, study) == {("Right^Patient", "RIGHT-1", "Fixed")}


def test_undo_forgets_the_correction(cache: Cache, edited) -> None:
    study, paths = edited
    undo_last(cache, study)
    for path in paths:
        assert cache.add_file(path).corrected == {}
    assert _ids(cache, study) == {("Wrong^Name", "WRONG-9", "Synthetic CT")}


def test_another_process_edit_is_seen_by_a_running_cache(home: Home, tmp_path: Path) -> None:
    """The server keeps its cache open while `gearview edit` runs in another process."""
    study = generate_uid()
    paths = write_series(tmp_path / "src", 2, study_uid=study, patient_id="WRONG-9")
    server_side = open_cache(home, load_config(home))
    try:
        for path in paths:
            server_side.add_file(path)
        assert not server_side.ledger.has_rules(study, "")
        editor = open_cache(home, load_config(home))
        edit_study(editor, study, {"PatientID": "RIGHT-1"})
        editor.close()
        server_side.add_file(paths[0])
        assert {r.path.exists() for r in server_side.instances(study_uid=study)} == {True}
        assert pydicom.dcmread(server_side.instances(study_uid=study)[0].path).PatientID == (
            "RIGHT-1"
        )
    finally:
        server_side.close()


def test_without_reapplying_the_study_is_flagged_not_silently_reverted(
    home: Home, tmp_path: Path
) -> None:
    config = load_config(home)
    config.qc.reapply_corrections = False
    cache = open_cache(home, config)
    try:
        study = generate_uid()
        paths = write_series(tmp_path / "src", 2, study_uid=study)
        for path in paths:
            cache.add_file(path)
        edit_study(cache, study, {"StudyDescription": "Fixed"})
        cache.add_file(paths[0])
        descriptions = {pydicom.dcmread(r.path).StudyDescription
                        for r in cache.instances(study_uid=study)}
        assert descriptions == {"Fixed", "Synthetic CT"}
        (flag,) = cache.ledger.conflicts([study])[study]
        assert flag.kind == NOT_CORRECTED
        assert any(r["action"] == "correction not re-applied" for r in audit.read(home))
    finally:
        cache.close()


def test_a_split_study_stays_split_when_the_original_arrives_again(cache: Cache, tmp_path):
    study = generate_uid()
    first = write_series(tmp_path / "a", 2, study_uid=study)
    second = write_series(tmp_path / "b", 2, study_uid=study, series_number=2)
    for path in first + second:
        cache.add_file(path)
    series_b = pydicom.dcmread(second[0]).SeriesInstanceUID
    new_uid, _ = split_study(cache, study, [series_b], reason="two exams")
    for path in first + second:
        cache.add_file(path)
    assert len(cache.instances(study_uid=study)) == 2
    assert {r.series_instance_uid for r in cache.instances(study_uid=new_uid)} == {series_b}


def test_a_disc_instance_cached_for_another_patient_is_not_overwritten(cache: Cache, tmp_path):
    sop = generate_uid()
    mine = make_ct(generate_uid(), generate_uid(), sop_uid=sop, patient_id="LOCAL-1")
    mine.save_as(tmp_path / "mine.dcm", enforce_file_format=True)
    cached = cache.add_file(tmp_path / "mine.dcm").path
    before = _sha(cached)
    disc = tmp_path / "disc"
    disc.mkdir()
    outside = make_ct(mine.StudyInstanceUID, generate_uid(), sop_uid=sop, patient_id="OUT-7")
    outside.save_as(disc / "IM000001", enforce_file_format=True)
    report = import_path(disc, cache)
    assert report.imported == 0 and _sha(cached) == before
    ((name, reason),) = report.not_imported
    assert "another patient 'LOCAL-1'" in reason
    (conflict,) = cache.ledger.conflicts([mine.StudyInstanceUID])[mine.StudyInstanceUID]
    assert conflict.kind == OTHER_PATIENT and conflict.source == "import" and not conflict.kept


def _two_studies_one_series(cache: Cache, tmp_path: Path) -> tuple[str, str, str]:
    series = generate_uid()
    study_a, study_b = generate_uid(), generate_uid()
    for path in write_series(tmp_path / "a", 2, study_uid=study_a, series_uid=series):
        cache.add_file(path)
    for path in write_series(tmp_path / "b", 3, study_uid=study_b, series_uid=series,
                             patient_id="OTHER"):
        cache.add_file(path)
    return study_a, study_b, series


def test_a_series_uid_in_two_studies_keeps_both(cache: Cache, tmp_path: Path) -> None:
    study_a, study_b, series = _two_studies_one_series(cache, tmp_path)
    counts = {s.study_instance_uid: (s.number_of_study_related_series,
                                     s.number_of_study_related_instances)
              for s in cache.studies()}
    assert counts == {study_a: (1, 2), study_b: (1, 3)}
    assert [s.number_of_series_related_instances for s in cache.series(study_a)] == [2]
    assert [s.number_of_series_related_instances for s in cache.series(study_b)] == [3]
    cache.close()
    rebuild_index(cache.home, cache.files_dir)
    fresh = Cache(cache.home)
    try:
        assert {s.study_instance_uid: (s.number_of_study_related_series,
                                       s.number_of_study_related_instances)
                for s in fresh.studies()} == counts
    finally:
        fresh.close()


def test_an_index_of_schema_2_gets_its_hidden_series_back(cache: Cache, tmp_path: Path) -> None:
    """Schema 2 kept one series row per UID: the other study showed 0 series."""
    study_a, study_b, series = _two_studies_one_series(cache, tmp_path)
    conn = sqlite3.connect(cache.home.index_file)
    conn.executescript(f"""
        CREATE TABLE series_v2 (series_instance_uid TEXT PRIMARY KEY,
            study_instance_uid TEXT NOT NULL, series_number INTEGER,
            modality TEXT NOT NULL DEFAULT '', series_description TEXT NOT NULL DEFAULT '',
            body_part_examined TEXT NOT NULL DEFAULT '');
        INSERT INTO series_v2 SELECT series_instance_uid, study_instance_uid, series_number,
            modality, series_description, body_part_examined FROM series
            WHERE study_instance_uid = '{study_b}';
        DROP TABLE series;
        ALTER TABLE series_v2 RENAME TO series;
        PRAGMA user_version=2;
    """)
    conn.close()
    cache.close()
    migrated = Cache(cache.home)
    try:
        assert {s.study_instance_uid: s.number_of_study_related_series
                for s in migrated.studies()} == {study_a: 1, study_b: 1}
        assert [s.series_instance_uid for s in migrated.series(study_a)] == [series]
    finally:
        migrated.close()
