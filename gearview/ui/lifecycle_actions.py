"""The cache's lifecycle in the GUI: Delete… (Delete key), Keep / Release Keep, retention.

Delete asks first, naming the patients and how many instances go - and,
in red, the studies that were not sent to any node (or changed since), whose
only copy it would delete - and takes an optional reason for the audit log;
the delete itself (all or nothing, refused while a job needs the study) runs
as a job on a worker. Keep marks
studies the retention policy never purges; the list shows them with a lock.
The station's retention monitor is started when the window opens (also
with `--no-server`; the server starts it too), and the status bar shows
free space (`storage_status.py`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from gearview.errors import describe_error
from gearview.lifecycle.delete import Deletion, delete_studies, prepare_delete
from gearview.lifecycle.keep import kept, set_kept
from gearview.store.records import StudyRecord
from gearview.ui.storage_status import install as install_storage_status
from gearview.ui.study_list import format_person_name

if TYPE_CHECKING:
    from gearview.ui.main_window import MainWindow

log = logging.getLogger(__name__)
#: The name the window gives the Delete… action (`window.action(DELETE_ACTION)`; the toolbar).
DELETE_ACTION = "delete"
#: Patients named one by one in the question; more are counted.
NAMED_PATIENTS = 5


def describe(records: list[StudyRecord]) -> str:
    """'1 study of Doe, Jane (PID 123): 500 instances' and the like."""
    patients: dict[tuple[str, str], int] = {}
    for record in records:
        key = (format_person_name(record.patient_name) or "(no name)", record.patient_id)
        patients[key] = patients.get(key, 0) + 1
    names = [f"{name} (ID {pid or '-'})" for name, pid in list(patients)[:NAMED_PATIENTS]]
    if len(patients) > NAMED_PATIENTS:
        names.append(f"{len(patients) - NAMED_PATIENTS} more patients")
    count = len(records)
    instances = sum(r.number_of_study_related_instances for r in records)
    return (f"{count} stud{'y' if count == 1 else 'ies'} of {', '.join(names)}: "
            f"{instances} instance{'' if instances == 1 else 's'}")


class DeleteDialog(QDialog):
    """'Delete N studies of …? This cannot be undone.' with a reason; names what is not sent."""

    def __init__(self, deletion: Deletion, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.deletion = deletion
        self.records = deletion.studies
        self.setWindowTitle("Delete studies")
        self.question = QLabel(
            f"Delete {describe(self.records)}?\n\nThe files are removed from this computer's "
            "cache; this cannot be undone.", self)
        self.question.setWordWrap(True)
        self.not_sent = QLabel(self)
        self.not_sent.setWordWrap(True)
        self.not_sent.setStyleSheet("color: #c62828; font-weight: bold")
        unsent = deletion.unsent_studies
        if unsent:
            self.not_sent.setText(
                f"Not yet sent: {describe(unsent)}. No node holds "
                f"{'this study' if len(unsent) == 1 else 'these studies'} as cached here (never "
                "sent, or changed since): deleting loses the only copy.")
        self.not_sent.setVisible(bool(unsent))
        self.reason = QLineEdit(self)
        self.reason.setPlaceholderText("why (audit log), e.g. duplicate of a PACS study")
        form = QFormLayout()
        form.addRow("Reason", self.reason)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.delete_button.setText("Delete anyway" if unsent else "Delete")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.question)
        layout.addWidget(self.not_sent)
        layout.addLayout(form)
        layout.addWidget(self.buttons)

    @property
    def delete_button(self) -> Any:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)


def ask_delete(window: MainWindow, uids: list[str]) -> None:
    """Check the studies off the GUI thread (known, no job using them, sent?), then ask.

    The entry point of every Delete in the GUI (Study menu, Delete key, toolbar).
    """
    if not uids:
        window.statusBar().showMessage("Select the studies to delete first", 5000)
        return
    queue = window.station.jobs

    def show(deletion: Deletion) -> None:
        dialog = DeleteDialog(deletion, window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: _run_delete(window, deletion, dialog.reason.text()))
        window._delete_dialog = dialog  # noqa: SLF001 - reachable for tests and kept alive
        dialog.open()

    window.pool.submit(prepare_delete, window.cache, window.config, uids, queue, on_result=show,
                       on_error=lambda exc: _failed(window, exc))


def _run_delete(window: MainWindow, deletion: Deletion, reason: str) -> None:
    uids = [r.study_instance_uid for r in deletion.studies]
    summary = describe(deletion.studies)
    queue = window.station.jobs

    def job(progress: Any, token: Any) -> Any:
        return delete_studies(window.cache, uids, reason=reason.strip(), queue=queue,
                              not_sent=deletion.not_sent)

    window.run_job(job, "Delete studies",
                   on_done=lambda _: window.statusBar().showMessage(f"Deleted {summary}", 8000),
                   on_error=lambda exc: _failed(window, exc))


def _failed(window: MainWindow, exc: BaseException) -> None:
    message = describe_error(exc)
    log.error("delete refused: %s", message)
    QMessageBox.warning(window, "Delete studies", f"Nothing was deleted.\n\n{message}")


def _set_keep(window: MainWindow, uids: list[str], keep: bool) -> None:
    if not uids:
        window.statusBar().showMessage("Select studies first", 5000)
        return

    def done(changed: list[str]) -> None:
        verb = "kept" if keep else "released"
        window.statusBar().showMessage(f"{len(changed)} of {len(uids)} studies {verb}", 5000)
        load_kept(window)

    window.pool.submit(set_kept, window.home, uids, keep, on_result=done,
                       on_error=lambda exc: window.statusBar().showMessage(
                           f"Keep not changed: {describe_error(exc)}"))


def load_kept(window: MainWindow) -> None:
    """Show the Keep marks in the list (read on a worker)."""
    window.pool.submit(kept, window.home, on_result=lambda marks: window.study_list.model
                       .set_kept(set(marks)),
                       on_error=lambda exc: log.error("Keep marks not shown: %s",
                                                      describe_error(exc)))


def install(window: MainWindow) -> None:
    """Delete and Keep on the selected studies; the retention monitor; the storage indicator."""
    window.add_study_action("Keep (never purge automatically)",
                            lambda uids: _set_keep(window, uids, True))
    window.add_study_action("Release Keep", lambda uids: _set_keep(window, uids, False))
    delete = window.add_study_action("Delete…", lambda uids: ask_delete(window, uids),
                                     QKeySequence(QKeySequence.StandardKey.Delete))
    # the Delete key deletes studies only where they are listed (other tabs use the key)
    delete.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    window.study_list.addAction(delete)
    window.study_list.model.modelReset.connect(lambda: load_kept(window))
    window.pool.submit(window.station.start_retention,  # the station stops it when it closes
                       on_error=lambda exc: log.error("the retention policy did not start: %s",
                                                      describe_error(exc)))
    install_storage_status(window)
