"""pytest-qt: the De-identify box previews old -> new, refuses burned-in images until allowed;
the Export… dialog writes a de-identified folder and a cancel leaves none; Send queues a
de-identified job."""

from __future__ import annotations

from pathlib import Path

import pydicom
from deid_fixtures import add_referencing_study, add_us_study, dicom_files

from gearview.jobqueue import SEND
from gearview.ui.burn_dialog import BurnDialog
from gearview.ui.deid_options import DeidentifyBox
from gearview.ui.export_dialog import ExportDialog
from gearview.ui.send_dialog import SendDialog, queue_send


def _rows(box: DeidentifyBox) -> dict[str, tuple[str, str]]:
    table = box.table
    return {
        table.item(r, 0).text(): (table.item(r, 1).text(), table.item(r, 2).text())
        for r in range(table.rowCount())
    }


def test_box_previews_old_and_new_values(qtbot, cache, tmp_path: Path) -> None:
    study = add_referencing_study(cache, tmp_path / "src")
    box = DeidentifyBox(cache, [study], checked=True)
    qtbot.addWidget(box)
    qtbot.waitUntil(lambda: box.rows is not None and box.refusals is not None, timeout=10_000)
    rows = _rows(box)
    assert rows["Patient's Name"][0] == "Marker^Patient"
    assert rows["Patient's Name"][1].startswith("ANONYMOUS^GV")
    assert rows["Study Date"][1] == "(empty)"
    assert box.ready() and box.warning.text() == ""
    box.retain_dates.setChecked(True)
    qtbot.waitUntil(lambda: box.rows is not None, timeout=10_000)
    assert _rows(box)["Study Date"][1] == _rows(box)["Study Date"][0] != "(empty)"
    box.patient_id.setText("BAD\\ID")
    qtbot.waitUntil(lambda: bool(box.error), timeout=10_000)
    assert "backslash" in box.warning.text() and not box.ready()
    box.patient_id.setText("CASE1")
    qtbot.waitUntil(lambda: box.rows is not None, timeout=10_000)
    assert _rows(box)["Patient ID"][1] == "CASE1" and box.ready()
    box.setChecked(False)
    assert box.options() is None and box.ready()
    box.shutdown()


def test_box_refuses_burned_in_until_allowed(qtbot, cache, tmp_path: Path) -> None:
    box = DeidentifyBox(cache, [add_us_study(cache, tmp_path / "us")], checked=True)
    qtbot.addWidget(box)
    qtbot.waitUntil(lambda: box.rows is not None and box.refusals is not None, timeout=10_000)
    assert not box.ready()
    assert "1 instance(s) may show the patient's identity" in box.warning.text()
    assert "refused unless you include them" in box.warning.text()
    box.allow_burned_in.setChecked(True)
    assert box.ready() and "copied as they are" in box.warning.text()
    assert box.options().allow_burned_in
    box.shutdown()


def test_export_dialog_writes_a_deidentified_folder(qtbot, cache, tmp_path: Path) -> None:
    study = add_referencing_study(cache, tmp_path / "src")
    dialog = ExportDialog(cache, [study])
    qtbot.addWidget(dialog)
    target = tmp_path / "export"
    dialog.folder.setText(str(target))
    qtbot.waitUntil(dialog.export_button.isEnabled, timeout=10_000)
    dialog.start_export()
    qtbot.waitUntil(lambda: bool(dialog.result_text), timeout=20_000)
    assert "6 de-identified instance(s)" in dialog.result_text
    files = dicom_files(target)
    assert len(files) == 6
    assert all(pydicom.dcmread(p).PatientIdentityRemoved == "YES" for p in files)
    dialog.reject()


def test_export_dialog_cancel_leaves_no_folder(qtbot, cache, tmp_path: Path) -> None:
    study = add_referencing_study(cache, tmp_path / "src", slices=6)
    dialog = ExportDialog(cache, [study])
    qtbot.addWidget(dialog)
    target = tmp_path / "export"
    dialog.folder.setText(str(target))
    qtbot.waitUntil(dialog.export_button.isEnabled, timeout=10_000)
    dialog.start_export()
    dialog.cancel()  # before the worker gets far: the token is checked before each file
    qtbot.waitUntil(lambda: bool(dialog.result_text), timeout=20_000)
    assert dialog.result_text == "Cancelled: nothing was written."
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gvhome", "src"]
    dialog.reject()


def test_send_dialog_queues_a_deidentified_send(qtbot, home, cache, tmp_path, window) -> None:
    study = add_referencing_study(cache, tmp_path / "src")
    dialog = SendDialog(window.config, [study], window, cache=cache)
    qtbot.addWidget(dialog)
    assert dialog.deid is not None and dialog.deidentify() is None
    dialog.deid.setChecked(True)
    dialog.deid.retain_dates.setChecked(True)
    qtbot.waitUntil(lambda: dialog.deid.ready(), timeout=10_000)
    options = dialog.deidentify()
    assert options is not None and options.retain_dates
    job_id = queue_send(window, "NOWHERE", [study], options)
    record = window.station.jobs.get(job_id)
    assert record.kind == SEND and "de-identified" in record.title
    assert record.params["deidentify"]["retain_dates"] is True
    dialog.reject()


def test_burn_dialog_waits_for_the_box(qtbot, cache, tmp_path: Path) -> None:
    study = add_us_study(cache, tmp_path / "us")
    dialog = BurnDialog(cache, [study])
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.burn_button.isEnabled(), timeout=10_000)
    dialog.deid.setChecked(True)
    qtbot.waitUntil(lambda: dialog.deid.refusals is not None, timeout=10_000)
    assert not dialog.burn_button.isEnabled()
    dialog.deid.allow_burned_in.setChecked(True)
    qtbot.waitUntil(lambda: dialog.burn_button.isEnabled(), timeout=10_000)
    assert dialog.options().deidentify.allow_burned_in
    dialog.reject()
