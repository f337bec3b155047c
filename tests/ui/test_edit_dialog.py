"""pytest-qt: the Edit study form validates inline, and a saved edit updates the list."""

from __future__ import annotations

from pathlib import Path

from factory import write_series
from pydicom.uid import generate_uid
from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import QComboBox

from gearview.store.records import StudyRecord
from gearview.ui.edit_dialog import EditStudyDialog


def studies_of(cache, series_uid: str) -> set[str]:
    return {r.study_instance_uid for r in cache.instances(series_uid=series_uid)}


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


def _geometry(dialog: EditStudyDialog) -> dict[str, object]:
    shown = {k: e.geometry() for k, e in dialog.edits.items()}
    return {"dialog": dialog.size(), "reason": dialog.reason.geometry(), **shown}


def test_invalid_date_is_refused_and_the_form_does_not_move(qtbot) -> None:
    dialog = EditStudyDialog(_record())
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert "12 instance(s)" in dialog.summary.text()
    assert not dialog.save_button.isEnabled()  # nothing changed yet
    before = _geometry(dialog)
    birth = dialog.edits["PatientBirthDate"]
    birth.setFocus()
    birth.selectAll()
    qtbot.keyClick(birth, Qt.Key.Key_Backspace)
    for key in "19700231":  # every keystroke validates: incomplete, then not a calendar date
        qtbot.keyClicks(birth, key)
        qtbot.wait(10)
        assert _geometry(dialog) == before
    assert birth.text() == "1970-02-31" and birth.value() == "19700231"
    assert "PatientBirthDate" in dialog.error_for("PatientBirthDate")
    assert dialog.message.text() == dialog.error_for("PatientBirthDate")
    assert birth.property("invalid") is True
    assert not dialog.save_button.isEnabled()
    birth.set_value("19700131")
    assert dialog.error_for("PatientBirthDate") == "" and dialog.message.text() == ""
    assert birth.property("invalid") is False
    assert _geometry(dialog) == before
    assert dialog.values() == {"PatientBirthDate": "19700131"}
    assert not dialog.save_button.isEnabled()  # no reason yet
    dialog.reason.setEditText("wrong date at the modality")
    assert dialog.save_button.isEnabled()


def test_sex_is_a_choice_and_changed_fields_are_marked(qtbot) -> None:
    dialog = EditStudyDialog(_record())
    qtbot.addWidget(dialog)
    sex = dialog.edits["PatientSex"]
    assert isinstance(sex, QComboBox)
    assert [sex.itemData(i) for i in range(sex.count())] == ["", "F", "M", "O"]
    assert sex.value() == "M" and sex.property("changed") is not True
    sex.setCurrentIndex(sex.findData("F"))
    assert dialog.values() == {"PatientSex": "F"}
    assert sex.property("changed") is True and "was: M" in sex.toolTip()
    assert dialog.form.labelForField(sex).font().bold()
    name = dialog.edits["PatientName"]
    assert name.property("changed") is not True
    assert "shown as: Doe, Jon" in name.toolTip()
    assert not dialog.form.labelForField(name).font().bold()


def test_an_odd_stored_sex_is_kept_until_changed(qtbot) -> None:
    dialog = EditStudyDialog(_record(patient_sex="X"))
    qtbot.addWidget(dialog)
    assert dialog.edits["PatientSex"].value() == "X" and dialog.values() == {}


def test_date_picked_from_the_calendar(qtbot) -> None:
    dialog = EditStudyDialog(_record(patient_birth_date=""))
    qtbot.addWidget(dialog)
    birth = dialog.edits["PatientBirthDate"]
    assert birth.value() == ""
    birth.show_calendar()
    birth.calendar.clicked.emit(QDate(1981, 2, 3))
    assert birth.value() == "19810203" and birth.text() == "1981-02-03"
    assert dialog.values() == {"PatientBirthDate": "19810203"}


def test_reason_is_required_and_recent_reasons_are_offered(qtbot) -> None:
    dialog = EditStudyDialog(_record(), reasons=["typo at the modality", "wrong patient"])
    qtbot.addWidget(dialog)
    dialog.edits["PatientName"].set_value("Doe^John")
    assert not dialog.save_button.isEnabled() and dialog.reason_text() == ""
    assert [dialog.reason.itemText(i) for i in range(dialog.reason.count())] == [
        "typo at the modality",
        "wrong patient",
    ]
    dialog.reason.setCurrentIndex(1)
    assert dialog.reason_text() == "wrong patient" and dialog.save_button.isEnabled()


def test_mismatch_forces_patient_fields(qtbot) -> None:
    dialog = EditStudyDialog(_record(mismatch=True))
    qtbot.addWidget(dialog)
    assert dialog.consistent.isChecked() and not dialog.save_button.isEnabled()
    dialog.reason.setEditText("demographics disagree")
    assert dialog.save_button.isEnabled()
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
    dialog.edits["PatientName"].set_value("Doe^John")
    dialog.reason.setEditText("typo")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    def renamed() -> bool:
        row = model.row_of(study)
        return row is not None and model.record(row).patient_name == "Doe^John"

    qtbot.waitUntil(renamed, timeout=15_000)
    qtbot.waitUntil(lambda: not window.running_jobs, timeout=10_000)
    assert window.cache.study(study).patient_name == "Doe^John"

    from gearview.ui.gui_settings import recent_reasons

    assert recent_reasons(window.home) == ["typo"]
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


def test_move_into_another_patients_study_warns_first(qtbot, window, tmp_path, monkeypatch):
    from gearview.ui import edit_dialog

    source, target, series = generate_uid(), generate_uid(), generate_uid()
    for path in write_series(tmp_path / "a", 2, study_uid=source, series_uid=series,
                             patient_name="Wrong^Pat", patient_id="W1"):
        window.cache.add_file(path)
    for path in write_series(tmp_path / "b", 1, study_uid=target, patient_name="Right^Pat",
                             patient_id="R1"):
        window.cache.add_file(path)
    model = window.study_list.model
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=10_000)
    answers = [edit_dialog.QMessageBox.StandardButton.Cancel,
               edit_dialog.QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def warning(parent, title, text, *args):
        asked.append(text)
        return answers[len(asked) - 1]

    monkeypatch.setattr(edit_dialog.QMessageBox, "warning", warning)
    for attempt in range(2):
        assert window.study_list.select_study(source)
        next(a for a in window._study_actions if a.text() == "Move series to study…").trigger()
        qtbot.waitUntil(lambda: getattr(window, "_series_dialog", None) is not None,
                        timeout=10_000)
        dialog = window._series_dialog
        dialog.check(series)
        dialog.target.setCurrentIndex(dialog.target.findData(target))
        window._series_dialog = None
        dialog.accept()
        if attempt == 0:  # cancelled: nothing moves
            assert "Right^Pat (ID R1), not Wrong^Pat (ID W1)" in asked[0]
            assert not window.running_jobs
            assert studies_of(window.cache, series) == {source}
    qtbot.waitUntil(lambda: not window.running_jobs, timeout=15_000)
    qtbot.waitUntil(lambda: studies_of(window.cache, series) == {target}, timeout=10_000)
