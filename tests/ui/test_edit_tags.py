"""pytest-qt: the tag editor tree, search, private read-only, validated edit with a scope."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
from edit_fixtures import restamp
from factory import write_series
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid


def _load(qtbot, window, sop_uid: str):
    editor = window.tag_editor
    editor.load(sop_uid)
    qtbot.waitUntil(lambda: not editor.loading and editor.record is not None, timeout=10_000)
    return editor


def test_tree_search_private_and_sequences(qtbot, window, tmp_path: Path) -> None:
    study = generate_uid()
    path = restamp(get_testdata_file("CT_small.dcm", download=False), tmp_path / "ct.dcm", study)
    stored = window.cache.add_file(path)
    editor = _load(qtbot, window, stored.info.sop_instance_uid)
    private = next(i for i in editor._items() if editor.node(i).private_creator == "GEMS_IDEN_01")
    assert not editor.node(private).editable
    editor.tree.setCurrentItem(private)
    assert not editor.value.isEnabled() and "GEMS_IDEN_01" in editor.field.text()
    sequence = editor.find_item("OtherPatientIDsSequence")
    assert sequence.childCount() == 2 and sequence.child(0).childCount() > 0
    editor.search.setText("0010,0020")
    visible = editor.visible_keywords()
    assert "PatientID" in visible and set(visible) <= {
        "PatientID",
        "OtherPatientIDsSequence",
        "Item",
    }
    editor.search.setText("patientname")
    assert "PatientName" in editor.visible_keywords()
    assert "StudyDate" not in editor.visible_keywords()


def test_edit_value_validated_then_applied_to_series(qtbot, window, tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    for path in write_series(tmp_path / "a", 3, study_uid=study, series_uid=series):
        window.cache.add_file(path)
    for path in write_series(tmp_path / "b", 2, study_uid=study):
        window.cache.add_file(path)
    first = window.cache.instances(series_uid=series)[0]
    editor = _load(qtbot, window, first.sop_instance_uid)
    editor.tree.setCurrentItem(editor.find_item("PatientID"))
    assert editor.value.isEnabled() and editor.value.text() == "PID001"
    editor.value.setText("x" * 70)
    assert not editor.error.isHidden() and "PatientID" in editor.error.text()
    assert not editor.apply_button.isEnabled()
    editor.value.setText("TAG-EDIT")
    assert editor.apply_button.isEnabled()
    editor.scope.setCurrentIndex(editor.scope.findData("series"))
    editor.apply_button.click()
    qtbot.waitUntil(lambda: not window.running_jobs and not editor.loading, timeout=15_000)
    ids = {
        r.sop_instance_uid: pydicom.dcmread(r.path).PatientID
        for r in window.cache.instances(study_uid=study)
    }
    assert sorted(ids.values()) == ["PID001", "PID001", "TAG-EDIT", "TAG-EDIT", "TAG-EDIT"]
    assert window.cache.study(study).mismatch  # the list's badge shows the disagreement
    qtbot.waitUntil(
        lambda: (
            editor.find_item("PatientID") is not None
            and editor.node(editor.find_item("PatientID")).full == "TAG-EDIT"
        ),
        timeout=10_000,
    )
    shutil.rmtree(tmp_path / "a")


def _pdf_first_study(window, tmp_path: Path) -> tuple[str, str, str]:
    """A study whose first series (number 1) is an encapsulated PDF, then a 3-image CT series."""
    from pydicom.uid import EncapsulatedPDFStorage

    study, ct_series = generate_uid(), generate_uid()
    (pdf_path,) = write_series(tmp_path / "pdf", 1, study_uid=study, series_number=1)
    ds = pydicom.dcmread(pdf_path)
    for keyword in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    ds.Modality = "DOC"
    ds.EncapsulatedDocument = b"%PDF-1.4\n%%EOF\n"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.save_as(pdf_path)
    window.cache.add_file(pdf_path)
    for path in write_series(tmp_path / "ct", 3, study_uid=study, series_uid=ct_series,
                             series_number=2):
        window.cache.add_file(path)
    return study, ct_series, ds.SeriesInstanceUID


def test_show_tags_opens_the_first_image_and_any_instance_can_be_picked(qtbot, window, tmp_path):
    study, ct_series, pdf_series = _pdf_first_study(window, tmp_path)
    editor = window.tag_editor
    window.study_list.refresh()
    qtbot.waitUntil(lambda: window.study_list.select_study(study), timeout=10_000)
    next(a for a in window._study_actions if a.text() == "Show tags…").trigger()
    qtbot.waitUntil(lambda: editor.record is not None and not editor.loading, timeout=10_000)
    assert editor.record.series_instance_uid == ct_series  # not the PDF that sorts first
    assert editor.series_combo.count() == 2 and editor.instance_combo.count() == 3
    assert editor.instance_combo.itemText(0).startswith("#1  CT Image Storage")
    editor.instance_combo.setCurrentIndex(2)
    qtbot.waitUntil(lambda: editor.record.instance_number == 3 and not editor.loading,
                    timeout=10_000)
    assert editor.node(editor.find_item("InstanceNumber")).full == "3"
    editor.series_combo.setCurrentIndex(editor.series_combo.findData(pdf_series))
    qtbot.waitUntil(lambda: editor.record.series_instance_uid == pdf_series and not editor.loading,
                    timeout=10_000)
    assert editor.instance_combo.count() == 1
    assert "Encapsulated PDF" in editor.instance_combo.itemText(0)
