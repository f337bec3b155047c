"""pytest-qt: Delete key asks (patient, instance count, not yet sent) and deletes; Keep marks."""

from __future__ import annotations

import time
from pathlib import Path

from factory import write_series
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from gearview.jobqueue import SEND
from gearview.net.tasks import send_params
from gearview.store import audit
from gearview.store.check import iter_cache_files
from gearview.store.ledger import Send
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


def _dialog(window, qtbot):
    qtbot.waitUntil(lambda: getattr(window, "_delete_dialog", None) is not None, timeout=10_000)
    return window._delete_dialog


def test_delete_key_asks_naming_patient_count_and_not_sent_then_deletes(window, qtbot, tmp_path):
    uid = _study(window, qtbot, tmp_path)
    window.study_list.view.setFocus()
    qtbot.keyClick(window.study_list.view, Qt.Key.Key_Delete)
    dialog = _dialog(window, qtbot)
    assert "1 study of Doe, Jane (ID PID7): 4 instances" in dialog.question.text()
    assert dialog.not_sent.isVisibleTo(dialog)
    assert "Not yet sent: 1 study of Doe, Jane (ID PID7)" in dialog.not_sent.text()
    assert "only copy" in dialog.not_sent.text()
    assert dialog.delete_button.text() == "Delete anyway"
    dialog.reason.setText("sent to the wrong station")
    qtbot.mouseClick(dialog.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.study_list.model.row_of(uid) is None, timeout=10_000)
    assert list(iter_cache_files(window.cache.files_dir)) == []
    (record,) = [r for r in audit.read(window.home) if r["action"] == "delete"]
    assert record["reason"] == "sent to the wrong station" and record["instances"] == 4
    assert record["not_sent"] is True


def test_a_sent_study_is_deleted_without_the_warning_and_forgets_its_sends(window, qtbot,
                                                                           tmp_path):
    uid = _study(window, qtbot, tmp_path)
    window.cache.ledger.record_send([Send(uid, "PACS", time.time(), 4, 0, job="j1")])
    window.action(lifecycle_actions.DELETE_ACTION).trigger()
    dialog = _dialog(window, qtbot)
    assert not dialog.not_sent.isVisibleTo(dialog) and dialog.delete_button.text() == "Delete"
    dialog.accept()
    qtbot.waitUntil(lambda: window.cache.study(uid) is None and not window.running_jobs,
                    timeout=10_000)
    assert window.cache.ledger.sends([uid]) == {}
    (record,) = [r for r in audit.read(window.home) if r["action"] == "delete"]
    assert record["not_sent"] is False


def test_the_delete_key_elsewhere_leaves_the_studies_alone(window, qtbot, tmp_path):
    _study(window, qtbot, tmp_path)
    fired: list[bool] = []
    delete = window.action(lifecycle_actions.DELETE_ACTION)
    delete.triggered.connect(lambda *_: fired.append(True))
    window.study_list.view.setFocus()
    qtbot.keyClick(window.study_list.view, Qt.Key.Key_Delete)
    assert len(fired) == 1  # shortcuts are dispatched as the key arrives
    other = QPushButton("a page of another tab")
    window.add_tab(other, "Other")
    window.tabs.setCurrentWidget(other)
    other.setFocus()
    qtbot.waitUntil(other.hasFocus, timeout=5_000)
    qtbot.keyClick(other, Qt.Key.Key_Delete)
    assert len(fired) == 1
    _dialog(window, qtbot).reject()  # the one the list's Delete asked for


def test_cancel_deletes_nothing(window, qtbot, tmp_path):
    uid = _study(window, qtbot, tmp_path)
    _action(window, "Delete…").trigger()
    _dialog(window, qtbot).reject()
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
