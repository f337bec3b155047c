"""De-identified copies (PS3.15 Basic Profile): nothing identifying leaves, references hold."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from deid_fixtures import (
    MARK,
    Planted,
    add_referencing_study,
    add_us_study,
    dicom_files,
    files_under,
    keyword,
    uids_in,
    walk,
)
from edit_fixtures import add_mixed_study
from factory import write_series
from pydicom.dataset import Dataset

from gearview.deid import BurnedInRefused, Deidentifier, DeidOptions, find_burned_in
from gearview.deid.keys import KEY_MODE, KeyedMapping, key_path, station_key
from gearview.deid.preview import preview
from gearview.errors import Cancelled, GearviewError, InvalidValueError, StorageFullError
from gearview.jobs import CancelToken
from gearview.media.export import BurnOptions, export_folder
from gearview.store import audit


def _export(cache, study_uids, target: Path, options: DeidOptions | None = None, **kw):
    return export_folder(
        cache, study_uids, target, BurnOptions(deidentify=options or DeidOptions()), **kw
    )


def _hashes(cache) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files_under(cache.files_dir)
        if ".spool" not in p.parts
    }


def _by_sop(folder: Path) -> dict[str, Dataset]:
    return {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, dicom_files(folder))}


@pytest.fixture
def planted_study(cache, tmp_path):
    planted = Planted()
    study = add_referencing_study(cache, tmp_path / "src", planted)
    originals = set()
    for record in cache.instances(study_uid=study):
        originals |= uids_in(pydicom.dcmread(record.path))
    originals -= set(pydicom.uid.UID_dictionary)
    return study, planted, originals


def test_no_planted_marker_or_original_uid_in_any_output_byte(cache, tmp_path, planted_study):
    study, planted, originals = planted_study
    assert planted.count > 600 and len(planted.tags) > 600  # every listed attribute was planted
    before = _hashes(cache)
    _export(cache, [study], tmp_path / "out")
    files = files_under(tmp_path / "out")
    assert len(files) == 1 + 6  # DICOMDIR + 3 CT + SR + KOS + GSPS
    for path in files:
        data = path.read_bytes()
        assert MARK not in data, f"{path.name}: {data[data.find(MARK) - 40 : data.find(MARK) + 20]}"
        assert b"Marker" not in data and b"MRKPID01" not in data and b"ACME" not in data
        leaked = [uid for uid in originals if uid.encode() in data]
        assert not leaked, f"{path.name} still holds original UIDs {leaked[:3]}"
    for ds in _by_sop(tmp_path / "out").values():
        for elem in walk(ds):
            assert not elem.tag.is_private, elem
            if elem.VR in ("DA", "DT", "TM") and elem.value:
                assert str(elem.value)[:8] not in planted.temporal, elem
            if elem.tag in planted.numbers:
                assert elem.value != planted.numbers[elem.tag], elem
            assert not 0x6000 <= elem.tag.group <= 0x601E, f"overlay left: {keyword(elem.tag)}"
        assert ds.PatientIdentityRemoved == "YES"
        assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert _hashes(cache) == before  # the cache is never changed


def test_counts_kept_and_references_resolve_within_the_copy(cache, tmp_path):
    study = add_referencing_study(cache, tmp_path / "src", slices=4)
    _export(cache, [study], tmp_path / "out")
    copies = _by_sop(tmp_path / "out")
    original = [pydicom.dcmread(r.path) for r in cache.instances(study_uid=study)]
    assert len(copies) == len(original) == 7
    series = Counter(str(ds.SeriesInstanceUID) for ds in copies.values())
    assert sorted(series.values()) == sorted(
        Counter(str(ds.SeriesInstanceUID) for ds in original).values()
    )
    assert len({str(ds.StudyInstanceUID) for ds in copies.values()}) == 1
    (new_study,) = {str(ds.StudyInstanceUID) for ds in copies.values()}
    frames = {str(ds.FrameOfReferenceUID) for ds in copies.values() if "FrameOfReferenceUID" in ds}
    assert len(frames) == 1
    sops, all_series = set(copies), set(series)
    by_class = {ds.Modality: ds for ds in copies.values()}
    for modality in ("SR", "KO", "PR"):
        doc = by_class[modality]
        refs = {
            str(e.value) for e in walk(doc) if e.keyword == "ReferencedSOPInstanceUID" and e.value
        }
        assert refs and refs <= sops, modality
        referenced_series = {str(e.value) for e in walk(doc) if e.keyword == "SeriesInstanceUID"}
        assert referenced_series <= all_series, modality
    kos = by_class["KO"]
    assert kos.CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID == new_study
    assert len(kos.ContentSequence) == 4  # the whole content tree is kept, codes and all
    assert [i.ValueType for i in kos.ContentSequence] == ["IMAGE"] * 4
    assert kos.ConceptNameCodeSequence[0].CodeMeaning == "Of Interest"
    sr = by_class["SR"]
    assert sr.ContentSequence[0].TextValue == "ANONYMIZED"  # free text of the report


def test_pixel_data_bytes_unchanged_for_every_syntax(cache, tmp_path):
    """Compressed, big endian, implicit, multi-frame and deflated files: the pixels are copied."""
    study = add_mixed_study(cache, tmp_path / "src")
    _export(cache, [study], tmp_path / "out", DeidOptions(allow_burned_in=True))
    mapping = KeyedMapping(station_key(cache.home))
    copies = _by_sop(tmp_path / "out")
    records = cache.instances(study_uid=study)
    assert len(copies) == len(records) == 10
    for record in records:
        source = pydicom.dcmread(record.path)
        copy = copies[mapping.uid(record.sop_instance_uid)]
        assert copy.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
        assert copy.PixelData == source.PixelData, record.sop_instance_uid


def test_second_export_gives_the_same_uids_and_another_key_does_not(cache, tmp_path):
    study = add_referencing_study(cache, tmp_path / "src")
    _export(cache, [study], tmp_path / "one")
    _export(cache, [study], tmp_path / "two")
    first, second = _by_sop(tmp_path / "one"), _by_sop(tmp_path / "two")
    assert set(first) == set(second)
    assert {str(d.PatientID) for d in first.values()} == {str(d.PatientID) for d in second.values()}
    key = station_key(cache.home)
    other = KeyedMapping(os.urandom(len(key)))
    others = {other.uid(r.sop_instance_uid) for r in cache.instances(study_uid=study)}
    assert others.isdisjoint(first)


def test_station_key_is_private_and_stable(home):
    key = station_key(home)
    assert stat.S_IMODE(key_path(home).stat().st_mode) == KEY_MODE
    key_path(home).chmod(0o644)
    assert station_key(home) == key
    assert stat.S_IMODE(key_path(home).stat().st_mode) == KEY_MODE
    uid = KeyedMapping(key).uid("1.2.3.4")
    assert uid.startswith("2.25.") and len(uid) <= 64
    assert KeyedMapping(station_key(home)).uid("1.2.3.4") == uid


def test_damaged_station_key_is_reported_not_replaced(home):
    key_path(home).write_bytes(b"short")
    with pytest.raises(GearviewError, match="damaged"):
        station_key(home)
    assert key_path(home).read_bytes() == b"short"


def test_retain_dates_keeps_dates_but_not_the_birth_date(cache, tmp_path):
    study = add_referencing_study(cache, tmp_path / "src")
    _export(cache, [study], tmp_path / "kept", DeidOptions(retain_dates=True))
    _export(cache, [study], tmp_path / "gone")
    kept = next(d for d in _by_sop(tmp_path / "kept").values() if d.Modality == "CT")
    gone = next(d for d in _by_sop(tmp_path / "gone").values() if d.Modality == "CT")
    assert (kept.StudyDate, kept.StudyTime) == ("20240102", "101500")
    assert kept.PatientBirthDate == "" and gone.PatientBirthDate == ""
    assert [i.CodeValue for i in kept.DeidentificationMethodCodeSequence] == ["113100", "113106"]
    assert kept.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert gone.StudyDate == "" and gone.StudyTime == ""
    sr_kept = next(d for d in _by_sop(tmp_path / "kept").values() if d.Modality == "SR")
    sr_gone = next(d for d in _by_sop(tmp_path / "gone").values() if d.Modality == "SR")
    assert sr_kept.ContentDate == "20230405" and sr_gone.ContentDate == "19000101"  # type 1: D


def test_ultrasound_without_burned_in_annotation_is_refused(cache, tmp_path):
    study = add_us_study(cache, tmp_path / "src")
    with pytest.raises(BurnedInRefused) as refused:
        _export(cache, [study], tmp_path / "out")
    assert [r.modality for r in refused.value.refusals] == ["US"]
    assert "Burned In Annotation is not set" in refused.value.refusals[0].line()
    assert not (tmp_path / "out").exists()
    _export(cache, [study], tmp_path / "out", DeidOptions(allow_burned_in=True))
    (copy,) = _by_sop(tmp_path / "out").values()
    assert "not de-identified" in " ".join(copy.DeidentificationMethod)


def test_burned_in_rules(cache, tmp_path):
    paths = {
        value: cache.instances(study_uid=add_us_study(cache, tmp_path / str(value), value))[0].path
        for value in ("YES", "NO", None)
    }
    refused = {r.reason for r in find_burned_in([paths["YES"], paths["NO"], paths[None]])}
    assert refused == {
        "Burned In Annotation is YES",
        "Burned In Annotation is not set and US images usually show text",
    }


def test_chosen_pseudonym_and_a_bad_one(cache, tmp_path):
    study = add_referencing_study(cache, tmp_path / "src")
    _export(cache, [study], tmp_path / "out", DeidOptions(patient_name="Case^One", patient_id="C1"))
    assert {(str(d.PatientName), d.PatientID) for d in _by_sop(tmp_path / "out").values()} == {
        ("Case^One", "C1")
    }
    for bad in (DeidOptions(patient_id="A\\B"), DeidOptions(patient_name="Müller")):
        with pytest.raises(InvalidValueError):
            _export(cache, [study], tmp_path / "bad", bad)
    assert not (tmp_path / "bad").exists()


def test_cancel_leaves_no_partial_output(cache, tmp_path):
    study = add_referencing_study(cache, tmp_path / "src", slices=6)
    token = CancelToken()

    def early(p):
        if p.message == "de-identifying" and p.done == 3:  # three copies written
            token.cancel()

    with pytest.raises(Cancelled):
        _export(cache, [study], tmp_path / "out", progress=early, token=token)
    assert sorted(os.listdir(tmp_path)) == ["gvhome", "src"]
    assert not list(cache.spool_dir.glob("export-*"))
    # cancelled while writing the folder (after de-identifying everything)
    token = CancelToken()

    def late(p):
        if "writing" in p.message:
            token.cancel()

    with pytest.raises(Cancelled):
        _export(cache, [study], tmp_path / "out", progress=late, token=token)
    assert sorted(os.listdir(tmp_path)) == ["gvhome", "src"]


def test_export_audited_without_phi(cache, tmp_path):
    study = add_referencing_study(cache, tmp_path / "src")
    _export(cache, [study], tmp_path / "out", DeidOptions(retain_dates=True))
    line = audit.read(cache.home)[-1]
    assert line["action"] == "media.export" and line["studies"] == [study]
    assert line["folder"] == str(tmp_path / "out") and line["user"]
    assert line["deidentified"]["codes"] == ["113100", "113106"]
    text = cache.home.audit_log.read_text()
    assert "Marker" not in text and "MRKPID01" not in text and "19600202" not in text


def test_preview_shows_what_the_export_writes(cache, tmp_path):
    study = add_referencing_study(cache, tmp_path / "src")
    rows = {r.label: r for r in preview(cache.home, cache.studies_by_uid([study]), DeidOptions())}
    _export(cache, [study], tmp_path / "out")
    ct = next(d for d in _by_sop(tmp_path / "out").values() if d.Modality == "CT")
    assert rows["Patient's Name"].old == "Marker^Patient"
    assert rows["Patient's Name"].new == str(ct.PatientName)
    assert rows["Patient ID"].new == ct.PatientID
    assert rows["Study Instance UID"].new == ct.StudyInstanceUID
    assert rows["Referring Physician"].old != "(empty)"
    assert rows["Referring Physician"].new == "(empty)"  # Z
    assert rows["Institution"].new == "(empty)"
    assert all(
        r.new == "(empty)" for r in rows.values() if r.old == "(empty)" and "Patient" not in r.label
    )


def test_unlisted_uids_are_remapped_but_registered_ones_kept(home):
    ds = Dataset()
    ds.SOPClassUID = pydicom.uid.CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.5"
    item = Dataset()
    item.CodingSchemeUID = "2.16.840.1.113883.6.1"
    item.ConcatenationUID = "1.2.3.4.6"  # in the table
    item.DimensionIndexPointer = 0x00200032
    item.ReferencedFrameOfReferenceUID = "1.2.3.4.7"
    item.PrivateRecordUID = "1.2.3.4.8"  # not in the table: an instance UID all the same
    ds.DimensionIndexSequence = [item]
    deid = Deidentifier.for_home(home, DeidOptions())
    deid.apply(ds)
    mapping = KeyedMapping(station_key(home))
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert ds.SOPInstanceUID == mapping.uid("1.2.3.4.5")
    inner = ds.DimensionIndexSequence[0]
    assert inner.CodingSchemeUID == "2.16.840.1.113883.6.1"
    assert inner.ConcatenationUID == mapping.uid("1.2.3.4.6")
    assert inner.PrivateRecordUID == mapping.uid("1.2.3.4.8")


def test_folder_export_to_a_full_stick_leaves_nothing(cache, tmp_path):
    mnt = tmp_path / "stick"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a 2 MiB tmpfs is not permitted here (needs root)")
    try:
        for path in write_series(tmp_path / "big", 30, rows=256, cols=256):
            cache.add_file(path)
        before = _hashes(cache)
        with pytest.raises(StorageFullError):
            _export(cache, [s.study_instance_uid for s in cache.studies()], mnt / "export")
        assert list(mnt.iterdir()) == []
        assert _hashes(cache) == before
        assert not list(cache.spool_dir.glob("export-*"))
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
