""" "Export…": a copy of the selected studies in a new folder, de-identified by default.

The folder gets a DICOM File-set (DICOMDIR + DICOM/...) that any viewer or
`gearview import` reads. The De-identify box (ticked) shows what changes;
writing runs on the dialog's worker pool with progress and Cancel, and a
cancelled or failed export leaves no folder behind.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gearview.errors import Cancelled, describe_error
from gearview.jobs import CancelToken, Progress
from gearview.media.export import BurnOptions, export_folder
from gearview.store import Cache
from gearview.ui.deid_options import DeidentifyBox
from gearview.ui.workers import WorkerPool


def default_target() -> Path:
    return Path.home() / f"gearview-export-{dt.datetime.now():%Y%m%d-%H%M%S}"


class ExportDialog(QDialog):
    def __init__(self, cache: Cache, study_uids: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export to a folder")
        self.resize(680, 640)
        self.cache = cache
        self.study_uids = list(study_uids)
        self.pool = WorkerPool(self)
        self.result_text = ""
        self._token: CancelToken | None = None
        count = len(self.study_uids)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{count} stud{'y' if count == 1 else 'ies'} selected"))
        target = QHBoxLayout()
        self.folder = QLineEdit(str(default_target()))
        browse = QPushButton("…")
        browse.clicked.connect(self._pick_folder)
        target.addWidget(QLabel("New folder"))
        target.addWidget(self.folder)
        target.addWidget(browse)
        layout.addLayout(target)
        self.deid = DeidentifyBox(cache, self.study_uids, checked=True, parent=self)
        self.deid.changed.connect(self._update)
        layout.addWidget(self.deid)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.start_export)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        for widget in (self.progress, self.cancel_button, self.export_button, close):
            buttons.addWidget(widget)
        layout.addLayout(buttons)
        self._update()

    def _pick_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Export into", str(Path.home()))
        if chosen:
            self.folder.setText(str(Path(chosen) / default_target().name))

    def _update(self) -> None:
        busy = self._token is not None
        self.export_button.setEnabled(not busy and bool(self.study_uids) and self.deid.ready())

    def cancel(self) -> None:
        if self._token is not None:
            self._token.cancel()

    def _on_progress(self, progress: Progress) -> None:
        self.progress.setMaximum(progress.total or 0)
        self.progress.setValue(progress.done if progress.total else 0)
        self.status.setText(progress.message)

    def start_export(self) -> None:
        target = Path(self.folder.text().strip()).expanduser()
        options = BurnOptions(label="EXPORT", deidentify=self.deid.options())

        def job(progress: Any, token: CancelToken) -> str:
            result = export_folder(self.cache, self.study_uids, target, options, progress, token)
            kind = "de-identified " if options.deidentify else ""
            return f"Written {result.instances} {kind}instance(s) to {target}"

        self.progress.setVisible(True)
        self.cancel_button.setEnabled(True)
        self._token = self.pool.submit_job(
            job, on_result=self._done, on_error=self._failed, on_progress=self._on_progress
        )[1]
        self._update()

    def _finish(self, text: str) -> None:
        self._token = None
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.result_text = text
        self.status.setText(text)
        self._update()

    def _done(self, text: str) -> None:
        self._finish(text)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            self._finish("Cancelled: nothing was written.")
        else:
            self._finish(f"Failed: {describe_error(exc)}")

    def done(self, result: int) -> None:  # noqa: D401 - Qt override
        self.cancel()
        self.pool.shutdown()
        self.deid.shutdown()
        super().done(result)


def open_export_dialog(window: Any, study_uids: list[str]) -> ExportDialog | None:
    if not study_uids:
        window.statusBar().showMessage("Select one or more studies to export first.", 5000)
        return None
    dialog = ExportDialog(window.cache, study_uids, parent=window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


def install(window: Any) -> None:
    """Study menu + study list context menu: Export… (a de-identified copy by default)."""
    window.add_study_action(
        "Export…", lambda uids: open_export_dialog(window, uids), "Ctrl+Shift+E"
    )
