"""pytest-qt: a flagged study shows why; Send and Burn refuse it without a reason."""

from __future__ import annotations

from pathlib import Path

from factory import make_ct, write_series
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt

from gearview.config import Node, save_config
from gearview.jobqueue import SEND
from gearview.store import audit
from gearview.ui.burn_dialog import BurnDialog
from gearview.ui.main_window import MainWindow
from gearview.ui.send_dialog import open_send_dialog


def _mixed_study(window: MainWindow, tmp_path: Path) -> str:
    study, series = generate_uid(), generate_uid()
    for number, patient_id in enumerate(("PID-A", "PID-A", "PID-B"), 1):
        path = tmp_path / f"{number}.dcm"
        make_ct(study, series, number, patient_id=patient_id).save_as(
            path, enforce_file_format=True
        )
        window.cache.add_file(path)
    return study


def test_send_dialog_shows_findings_and_needs_a_reason(qtbot, window: MainWindow, tmp_path):
    window.config.nodes = [Node("PACS", "PACS", "127.0.0.1", 1, roles=["send"])]
    save_config(window.home, window.config)
    study = _mixed_study(window, tmp_path)
    dialog = open_send_dialog(window, [study])
    qtbot.waitUntil(lambda: dialog.checks.checked, timeout=10_000)
    items = [dialog.checks.list.item(i).text() for i in range(dialog.checks.list.count())]
    assert any(t.startswith("mixed-patient:") and "'PID-B' (1 instance)" in t for t in items)
    assert dialog.send_button.text() == "Send anyway…"
    assert not dialog.send_button.isEnabled()
    dialog.accept()  # refused: no reason given
    assert dialog.isVisible()
    dialog.checks.reason.setText("the radiologist needs it now; PID fixed at PACS")
    assert dialog.send_button.isEnabled()
    dialog.send_button.click()
    queue = window.station.jobs
    qtbot.waitUntil(lambda: any(j.kind == SEND for j in queue.jobs()), timeout=10_000)
    (job,) = [j for j in queue.jobs() if j.kind == SEND]
    assert job.params["override"]["reason"].startswith("the radiologist")
    (override,) = [r for r in audit.read(window.home) if r["action"] == "override"]
    assert override["operation"] == "send" and override["studies"] == [study]
    assert {f["code"] for f in override["findings"]} >= {"mixed-patient", "foreign-instance"}


def test_burn_dialog_refuses_a_flagged_study_without_a_reason(qtbot, window, tmp_path):
    study = _mixed_study(window, tmp_path)
    dialog = BurnDialog(window.cache, [study])
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.checks.checked and dialog.planned is not None,
                    timeout=10_000)
    assert dialog.burn_button.text() == "Burn anyway…" and not dialog.burn_button.isEnabled()
    dialog.checks.reason.setText("patient leaves today")
    assert dialog.burn_button.isEnabled()
    dialog.iso_path.setText(str(tmp_path / "out.iso"))
    dialog.start_burn()
    qtbot.waitUntil(lambda: bool(dialog.result_text), timeout=20_000)
    assert any(r["action"] == "override" and r["operation"] == "burn"
               for r in audit.read(window.home))
    dialog.reject()


def test_clean_study_sends_without_a_second_question(qtbot, window, tmp_path):
    for path in write_series(tmp_path / "ok", 2):
        window.cache.add_file(path)
    study = window.cache.studies()[0].study_instance_uid
    dialog = open_send_dialog(window, [study])
    qtbot.waitUntil(lambda: dialog.checks.checked, timeout=10_000)
    assert not dialog.checks.findings and not dialog.checks.reason.isVisible()
    dialog.reject()


def test_the_warning_sign_opens_the_values_per_instance(qtbot, window: MainWindow, tmp_path):
    _mixed_study(window, tmp_path)
    study_list = window.study_list
    qtbot.waitUntil(lambda: study_list.model.rowCount() == 1
                    and bool(study_list.model.record(0).findings), timeout=10_000)
    view = study_list.view
    index = study_list.proxy.index(0, 0)
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view.warning_rect(index).center())
    qtbot.waitUntil(lambda: study_list.mismatch_view is not None, timeout=5_000)
    shown = study_list.mismatch_view
    qtbot.waitUntil(lambda: shown.table.rowCount() == 3, timeout=10_000)
    assert "Patient ID" in shown.summary.text()
    assert shown.odd_cells() == [(2, "PatientID")]  # the one instance of PID-B
    ids = [shown.table.item(r, 3 + 1).text() for r in range(3)]
    assert ids == ["PID-A", "PID-A", "PID-B"]
    assert shown.findings.count() >= 2
    shown.reject()
