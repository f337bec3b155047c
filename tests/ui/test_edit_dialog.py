"""pytest-qt: the Edit study form validates inline, and a saved edit updates the list."""

from __future__ import annotations

from pathlib import Path

from factory import write_series
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt

from gearview.store.records import StudyRecord
from gearview.ui.edit_dialog import EditStudyDialog


def _record(**kw: object) -> StudyRecord:
    base = dict(
        study_instance_uid="1.2.3",
        patient_name="Doe^Jon",
        patient_id="P1",
        patient_birth_date="19700101",
        patient_sex="M",
        number_of_study_related_instances=12,
        number_of_study_related_series=2,
    )
    base.update(kw)
    return StudyRecord(**base)


def test_form_refuses_invalid_birth_date_with_visible_message(qtbot) -> None:
    dialog = EditStudyDialog(_record())
    qtbot.addWidget(dialog)
    dialog.show()
    assert "12 instance(s)" in dialog.summary.text()
    assert not dialog.save_button.isEnabled()  # nothing changed yet
    birth = dialog.edits["PatientBirthDate"]
    birth.setText("19700231")
    assert "PatientBirthDate" in dialog.error_for("PatientBirthDate")
    error = dialog.errors["PatientBirthDate"]
    assert error.isVisible()

    def readable() -> bool:  # the dialog grew: whole message shown, field not squeezed
        return (
            error.height() >= error.heightForWidth(error.width())
            and birth.height() >= birth.sizeHint().height()
        )

    qtbot.waitUntil(readable, timeout=2_000)
    assert not dialog.save_button.isEnabled()
    birth.setText("19700131")
    assert dialog.error_for("PatientBirthDate") == ""
    assert not dialog.errors["PatientBirthDate"].isVisible()
    assert dialog.save_button.isEnabled()
    assert dialog.values() == {"PatientBirthDate": "19700131"}


def test_mismatch_forces_patient_fields(qtbot) -> None:
    dialog = EditStudyDialog(_record(mismatch=True))
    qtbot.addWidget(dialog)
    assert dialog.consistent.isChecked() and dialog.save_button.isEnabled()
    assert set(dialog.values()) == {"PatientName", "PatientID", "PatientBirthDate", "PatientSex"}


def test_successful_edit_updates_the_list(qtbot, window, tmp_path: Path) -> None:
    study = generate_uid()
    for path in write_series(tmp_path / "src", 4, study_uid=study, patient_name="Doe^Jon"):
        window.cache.add_file(path)
    model = window.study_list.model
    qtbot.waitUntil(lambda: model.row_of(study) is not None, timeout=10_000)
    assert window.study_list.select_study(study)
    action = next(a for a in window._study_actions if a.text() == "Edit study…")
    action.trigger()
    qtbot.waitUntil(lambda: getattr(window, "_edit_dialog", None) is not None, timeout=10_000)
    dialog = window._edit_dialog
    dialog.edits["PatientName"].setText("Doe^John")
    dialog.reason.setText("typo")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    def renamed() -> bool:
        row = model.row_of(study)
        return row is not None and model.record(row).patient_name == "Doe^John"

    qtbot.waitUntil(renamed, timeout=15_000)
    qtbot.waitUntil(lambda: not window.running_jobs, timeout=10_000)
    assert window.cache.study(study).patient_name == "Doe^John"

    undo = next(a for a in window._study_actions if a.text() == "Undo last edit")
    undo.trigger()
    qtbot.waitUntil(
        lambda: model.record(model.row_of(study)).patient_name == "Doe^Jon", timeout=15_000
    )


def test_split_study_from_the_list(qtbot, window, tmp_path: Path) -> None:
    study, keep, split = generate_uid(), generate_uid(), generate_uid()
    for folder, series, number in (("a", keep, 1), ("b", split, 2)):
        for path in write_series(
            tmp_path / folder, 2, study_uid=study, series_uid=series, series_number=number
        ):
            window.cache.add_file(path)
    model = window.study_list.model
    qtbot.waitUntil(lambda: model.row_of(study) is not None, timeout=10_000)
    assert window.study_list.select_study(study)
    next(a for a in window._study_actions if a.text() == "Split study…").trigger()
    qtbot.waitUntil(lambda: getattr(window, "_series_dialog", None) is not None, timeout=10_000)
    dialog = window._series_dialog
    assert not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()
    dialog.check(split)
    dialog.accept()
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=15_000)
    qtbot.waitUntil(lambda: not window.running_jobs, timeout=10_000)
    assert {r.study_instance_uid for r in window.cache.instances(series_uid=split)} != {study}


def test_edit_from_the_viewer_tab_targets_its_study(qtbot, window, tmp_path: Path) -> None:
    from gearview.ui.viewer import close_viewer, open_study

    study = generate_uid()
    for path in write_series(tmp_path / "src", 2, study_uid=study):
        window.cache.add_file(path)
    viewer = open_study(window, study)
    try:
        window.study_list.view.clearSelection()
        next(a for a in window._study_actions if a.text() == "Edit study…").trigger()
        qtbot.waitUntil(lambda: getattr(window, "_edit_dialog", None) is not None, timeout=10_000)
        assert window._edit_dialog.record.study_instance_uid == study
        window._edit_dialog.reject()
    finally:
        close_viewer(window, viewer)
