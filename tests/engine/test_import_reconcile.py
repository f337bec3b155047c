"""Imports never hide or overwrite other data; a multi-patient source needs a mapping each."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest
from factory import write_series
from pydicom.uid import generate_uid

from gearview.errors import InvalidValueError
from gearview.identity import mappings
from gearview.media.importer import Reconcile, ReconcileRequest, import_path, preview
from gearview.media.reconcile import parse_map
from gearview.store import Cache, audit


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _two_patient_disc(folder: Path) -> None:
    write_series(folder / "A", 2, patient_id="EXT-1", patient_name="Outside^Anna", issuer="HOSP_A")
    write_series(folder / "B", 1, patient_id="EXT-2", patient_name="Outside^Bert", issuer="HOSP_A")


def _local(cache: Cache, tmp_path: Path, pid: str, name: str, sex: str = "F") -> None:
    for path in write_series(
        tmp_path / f"local-{pid}",
        1,
        patient_id=pid,
        patient_name=name,
        sex=sex,
        issuer="LOCAL",
        birth_date="19650301",
    ):
        cache.add_file(path)


def test_sop_uid_cached_under_another_patient_is_not_replaced(cache: Cache, tmp_path: Path):
    sop = generate_uid()
    (cached,) = write_series(tmp_path / "here", 1, patient_id="MRN-1", sop_uid=sop)
    cache.add_file(cached)
    before = _digest(cache.instance(sop).path)
    write_series(tmp_path / "cd", 1, patient_id="OTHER", sop_uid=sop)
    write_series(tmp_path / "cd" / "more", 1, patient_id="OTHER")
    report = import_path(tmp_path / "cd", cache)
    assert report.imported == 1
    (conflict,) = report.conflicts
    assert conflict.sop_uid == sop and conflict.cached_patient == ("MRN-1", "")
    assert "already cached under another patient 'MRN-1'" in conflict.reason
    assert "1 not replaced" in report.summary() and "Conflicts" in report.to_text()
    assert _digest(cache.instance(sop).path) == before
    assert cache.study(cache.instance(sop).study_instance_uid).patient_id == "MRN-1"


def test_sop_uid_of_another_study_is_replaced_only_when_asked(cache: Cache, tmp_path: Path):
    sop = generate_uid()
    (cached,) = write_series(tmp_path / "here", 1, sop_uid=sop)
    cache.add_file(cached)
    write_series(tmp_path / "cd", 1, sop_uid=sop)  # same patient, a new study UID
    assert "another study" in import_path(tmp_path / "cd", cache).conflicts[0].reason
    report = import_path(tmp_path / "cd", cache, replace=True)
    assert report.imported == 1 and report.conflicts_replaced == 1 and not report.conflicts
    (record,) = [r for r in audit.read(cache.home) if r.get("conflicts_replaced")]
    assert record["conflicts_replaced"] == 1


def test_same_disc_again_is_an_ordinary_reimport(cache: Cache, tmp_path: Path):
    write_series(tmp_path / "cd", 2)
    import_path(tmp_path / "cd", cache)
    report = import_path(tmp_path / "cd", cache)
    assert report.imported == 2 and report.replaced == 2 and not report.conflicts


def test_reconciled_study_is_not_reverted_by_the_outside_disc(cache: Cache, tmp_path: Path):
    write_series(tmp_path / "cd", 2, patient_id="EXT-1")
    import_path(tmp_path / "cd", cache, ReconcileRequest(patient=Reconcile("MRN-5")))
    report = import_path(tmp_path / "cd", cache)
    assert report.imported == 0 and len(report.conflicts) == 2
    assert {s.patient_id for s in cache.studies()} == {"MRN-5"}


def test_patient_id_on_a_two_patient_source_is_refused_naming_them(cache: Cache, tmp_path):
    _two_patient_disc(tmp_path / "cd")
    with pytest.raises(InvalidValueError) as caught:
        import_path(tmp_path / "cd", cache, ReconcileRequest(patient=Reconcile("MRN-1")))
    message = caught.value.one_line()
    assert "2 patients" in message and "'EXT-1'" in message and "'EXT-2'" in message
    assert "--map" in message
    assert cache.studies() == []


def test_a_mapping_per_patient_reconciles_each_to_its_local_record(cache: Cache, tmp_path):
    _local(cache, tmp_path, "MRN-1", "Local^Anna")
    _local(cache, tmp_path, "MRN-2", "Local^Bert", sex="M")
    _two_patient_disc(tmp_path / "cd")
    maps = dict(parse_map(m) for m in ("EXT-1=MRN-1@LOCAL", "EXT-2=MRN-2@LOCAL"))
    report = import_path(tmp_path / "cd", cache, ReconcileRequest(maps=maps))
    assert report.imported == 3
    per_patient: dict[str, int] = {}
    for study in cache.studies():
        per_patient[study.patient_id] = (
            per_patient.get(study.patient_id, 0) + study.number_of_study_related_instances
        )
    assert per_patient == {"MRN-1": 3, "MRN-2": 2}  # the local instance + the disc's
    for sop in (
        i.sop_instance_uid
        for s in cache.studies()
        for i in cache.instances(s.study_instance_uid)
    ):
        ds = pydicom.dcmread(cache.instance(sop).path)
        if "OtherPatientIDsSequence" not in ds:
            continue  # a local instance
        outside = ds.OtherPatientIDsSequence[0]
        expected = {"EXT-1": ("MRN-1", "Local^Anna", "F"), "EXT-2": ("MRN-2", "Local^Bert", "M")}
        assert (ds.PatientID, str(ds.PatientName), ds.PatientSex) == expected[outside.PatientID]
        assert (ds.IssuerOfPatientID, ds.PatientBirthDate) == ("LOCAL", "19650301")
        assert outside.IssuerOfPatientID == "HOSP_A"


def test_mapping_of_an_id_not_on_the_source_is_refused(cache: Cache, tmp_path: Path):
    _two_patient_disc(tmp_path / "cd")
    maps = dict([parse_map("EXT-9=MRN-1")])
    with pytest.raises(InvalidValueError, match="no outside patient 'EXT-9'.*'EXT-1'"):
        import_path(tmp_path / "cd", cache, ReconcileRequest(maps=maps))
    assert cache.studies() == []


def test_unmapped_patients_are_imported_as_they_are_and_said_so(cache: Cache, tmp_path):
    _two_patient_disc(tmp_path / "cd")
    maps = dict([parse_map("EXT-1=MRN-1")])
    report = import_path(tmp_path / "cd", cache, ReconcileRequest(maps=maps))
    assert report.imported == 3
    assert any("imported as they are" in w and "'EXT-2'" in w for w in report.warnings)
    assert sorted(s.patient_id for s in cache.studies()) == ["EXT-2", "MRN-1"]


@pytest.mark.parametrize("text", ["EXT-1", "=MRN", "EXT-1=", "EXT-1=a\\b"])
def test_bad_mappings_are_refused(text: str):
    with pytest.raises(InvalidValueError):
        parse_map(text)


def test_the_next_disc_from_the_same_hospital_proposes_the_mapping(cache: Cache, tmp_path):
    _two_patient_disc(tmp_path / "cd1")
    maps = dict([parse_map("EXT-1=MRN-1@LOCAL")])
    import_path(tmp_path / "cd1", cache, ReconcileRequest(maps=maps))
    assert mappings.remembered(cache.home, "EXT-1", "HOSP_A").identity.patient_id == "MRN-1"
    write_series(
        tmp_path / "cd2", 1, patient_id="EXT-1", patient_name="Outside^Anna", issuer="HOSP_A"
    )
    report = import_path(tmp_path / "cd2", cache)
    assert any("--map EXT-1=MRN-1@LOCAL" in w for w in report.warnings)


def test_preview_patients_feed_the_plan(cache: Cache, tmp_path: Path):
    """The GUI plans per outside patient of a preview: the keys are (ID, issuer)."""
    from gearview.media.reconcile import outside_patients

    _two_patient_disc(tmp_path / "cd")
    with preview(tmp_path / "cd", cache) as found:
        patients = outside_patients(f.info for f in found.instances)
    assert sorted(patients) == [("EXT-1", "HOSP_A"), ("EXT-2", "HOSP_A")]
    assert patients[("EXT-1", "HOSP_A")].instances == 2
