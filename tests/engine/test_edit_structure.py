"""Structure fixes: move series, split, merge — consistent UIDs, references, undo."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from edit_fixtures import run_killed_at_rename, snapshot
from factory import write_series
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import KeyObjectSelectionDocumentStorage, generate_uid

from gearview.edit.structure import OtherPatientError, merge_studies, move_series, split_study
from gearview.edit.undo import undo_last
from gearview.errors import InvalidValueError
from gearview.store import Cache, audit


def _study(
    cache: Cache, folder: Path, series: int = 2, n: int = 2, **kw: object
) -> tuple[str, list[str]]:
    study = generate_uid()
    uids = []
    for number in range(series):
        series_uid = generate_uid()
        uids.append(series_uid)
        for path in write_series(
            folder / str(number),
            n,
            study_uid=study,
            series_uid=series_uid,
            series_number=number + 1,
            **kw,
        ):
            cache.add_file(path)
    return study, uids


def _kos(cache: Cache, folder: Path, study: str, series_uids: list[str]) -> str:
    """A Key Object Selection in `study` whose evidence references every series given."""
    ds = Dataset()
    ds.SOPClassUID = KeyObjectSelectionDocumentStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "KO"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P1"
    item = Dataset()
    item.StudyInstanceUID = study
    refs = []
    for uid in series_uids:
        ref = Dataset()
        ref.SeriesInstanceUID = uid
        ref.ReferencedSOPSequence = Sequence()
        refs.append(ref)
    item.ReferencedSeriesSequence = Sequence(refs)
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([item])
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = folder / "kos.dcm"
    ds.save_as(path, enforce_file_format=True)
    cache.add_file(path)
    return str(ds.SOPInstanceUID)


def test_split_study_new_uid_and_references(cache: Cache, tmp_path: Path) -> None:
    study, series = _study(cache, tmp_path, series=2, patient_name="Doe^Jane", patient_id="P1")
    kos = _kos(cache, tmp_path, study, series)
    before = snapshot(cache)
    new_uid, result = split_study(cache, study, [series[1]], reason="two exams in one")
    assert new_uid != study and result.undo_id
    assert {r.study_instance_uid for r in cache.instances(series_uid=series[1])} == {new_uid}
    assert {s.series_instance_uid for s in cache.series(study)} >= {series[0]}
    new = cache.study(new_uid)
    assert new.patient_id == "P1" and new.number_of_study_related_instances == 2
    for record in cache.instances(series_uid=series[1]):
        ds = pydicom.dcmread(record.path)
        assert ds.StudyInstanceUID == new_uid and record.path.exists()
        assert (
            ds.OriginalAttributesSequence[-1].ModifiedAttributesSequence[0].StudyInstanceUID
            == study
        )
    evidence = pydicom.dcmread(cache.instance(kos).path).CurrentRequestedProcedureEvidenceSequence
    by_study = {
        i.StudyInstanceUID: [s.SeriesInstanceUID for s in i.ReferencedSeriesSequence]
        for i in evidence
    }
    assert by_study == {study: [series[0]], new_uid: [series[1]]}
    assert audit.read(cache.home)[-1]["action"] == "split-study"
    undo_last(cache, new_uid)
    assert snapshot(cache) == before


def test_move_series_to_other_patient_takes_its_demographics(cache: Cache, tmp_path: Path) -> None:
    source, series = _study(
        cache, tmp_path / "a", series=2, patient_name="Wrong^Pat", patient_id="W1"
    )
    target, _ = _study(cache, tmp_path / "b", series=1, patient_name="Right^Pat", patient_id="R1")
    before = snapshot(cache)
    with pytest.raises(OtherPatientError, match="another patient"):
        move_series(cache, [series[0]], target)
    assert snapshot(cache) == before
    move_series(cache, [series[0]], target, allow_other_patient=True)
    moved = cache.instances(series_uid=series[0])
    assert {r.study_instance_uid for r in moved} == {target}
    ds = pydicom.dcmread(moved[0].path)
    assert (str(ds.PatientName), ds.PatientID) == ("Right^Pat", "R1")
    target_study = cache.study(target)
    assert not target_study.mismatch and target_study.number_of_study_related_series == 2
    assert cache.study(source).number_of_study_related_series == 1
    old_paths = {str(p) for p in cache.files_dir.rglob("*.dcm")}
    assert len(old_paths) == 6  # old paths removed, no duplicates left behind


def test_merge_requires_same_patient_and_removes_source(cache: Cache, tmp_path: Path) -> None:
    first, _ = _study(cache, tmp_path / "a", series=1, patient_id="SAME")
    second, _ = _study(cache, tmp_path / "b", series=2, patient_id="SAME")
    other, _ = _study(cache, tmp_path / "c", series=1, patient_id="OTHER")
    before = snapshot(cache)
    with pytest.raises(InvalidValueError, match="different patients"):
        merge_studies(cache, first, other)
    assert snapshot(cache) == before
    result = merge_studies(cache, first, second, reason="same visit")
    assert first in result.changes.studies_removed
    assert cache.study(first) is None and cache.study(second).number_of_study_related_series == 3
    undo_last(cache, second)
    assert snapshot(cache) == before


def test_split_refuses_all_or_nothing_choices(cache: Cache, tmp_path: Path) -> None:
    study, series = _study(cache, tmp_path, series=2)
    with pytest.raises(InvalidValueError):
        split_study(cache, study, series)
    with pytest.raises(InvalidValueError):
        split_study(cache, study, [])


def test_sigkill_mid_split_is_rolled_back(cache: Cache, tmp_path: Path) -> None:
    """Paths change with the Study UID: recovery removes new-path files and restores old ones."""
    study, series = _study(cache, tmp_path, series=2, n=3)
    before = snapshot(cache)
    run_killed_at_rename(
        cache,
        2,
        "from gearview.edit.structure import split_study",
        f"split_study(Cache(Home.default()), {study!r}, [{series[1]!r}])",
    )
    cache.close()
    reopened = Cache(cache.home)
    try:
        reopened.clear_spool()
        assert snapshot(reopened) == before
    finally:
        reopened.close()
