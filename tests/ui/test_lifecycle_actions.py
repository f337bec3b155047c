"""pytest-qt: Delete key asks (patient, instance count) and deletes; Keep marks the row."""

from __future__ import annotations

from pathlib import Path

from factory import write_series
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt

from gearview.jobqueue import SEND
from gearview.net.tasks import send_params
from gearview.store import audit
from gearview.store.check import iter_cache_files
from gearview.ui import lifecycle_actions
from gearview.ui.study_list import COL_STUDY_DATE


def _study(window, qtbot, tmp_path: Path, n: int = 4) -> str:
    uid = generate_uid()
    for path in write_series(tmp_path / uid[-6:], n, study_uid=uid, patient_name="Doe^Jane",
                             patient_id="PID7"):
        window.cache.add_file(path)
    qtbot.waitUntil(lambda: window.study_list.model.row_of(uid) is not None, timeout=10_000)
    assert window.study_list.select_study(uid)
    return uid


def _action(window, text: str):
    return next(a for a in window._study_actions if a.text() == text)


def test_delete_key_asks_naming_patient_and_count_then_deletes(window, qtbot, tmp_path):
    uid = _study(window, qtbot, tmp_path)
    window.study_list.view.setFocus()
    qtbot.keyClick(window.study_list.view, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: getattr(window, "_delete_dialog", None) is not None, timeout=10_000)
    dialog = window._delete_dialog
    assert "1 study of Doe, Jane (ID PID7): 4 instances" in dialog.question.text()
    dialog.reason.setText("sent to the wrong station")
    qtbot.mouseClick(dialog.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.study_list.model.row_of(uid) is None, timeout=10_000)
    assert list(iter_cache_files(window.cache.files_dir)) == []
    (record,) = [r for r in audit.read(window.home) if r["action"] == "delete"]
    assert record["reason"] == "sent to the wrong station" and record["instances"] == 4


def test_cancel_deletes_nothing(window, qtbot, tmp_path):
    uid = _study(window, qtbot, tmp_path)
    _action(window, "Delete…").trigger()
    qtbot.waitUntil(lambda: getattr(window, "_delete_dialog", None) is not None, timeout=10_000)
    window._delete_dialog.reject()
    assert window.cache.study(uid).number_of_study_related_instances == 4


def test_study_used_by_a_job_is_refused_with_the_reason(window, qtbot, tmp_path, monkeypatch):
    uid = _study(window, qtbot, tmp_path)
    shown: list[str] = []
    monkeypatch.setattr(lifecycle_actions.QMessageBox, "warning",
                        lambda parent, title, text: shown.append(text))
    window.station.jobs.stop()  # keep the job queued
    job = window.station.jobs.submit(SEND, "Send to PACS", send_params("PACS", [uid]))
    _action(window, "Delete…").trigger()
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    assert "Nothing was deleted" in shown[0] and job.id in shown[0]
    assert window.cache.study(uid).number_of_study_related_instances == 4


def test_keep_marks_the_row_and_release_clears_it(window, qtbot, tmp_path):
    uid = _study(window, qtbot, tmp_path)
    model = window.study_list.model
    _action(window, "Keep (never purge automatically)").trigger()
    qtbot.waitUntil(lambda: model.is_kept(uid), timeout=10_000)
    index = model.index(model.row_of(uid), COL_STUDY_DATE)
    assert "never purged" in model.data(index, Qt.ItemDataRole.ToolTipRole)
    _action(window, "Release Keep").trigger()
    qtbot.waitUntil(lambda: not model.is_kept(uid), timeout=10_000)
