"""The "Edit study…" form: common patient/study fields, inline VR validation, reason.

The form only validates (pure functions, no disk); the edit itself runs as a
job on a worker with progress and Cancel in the status bar
(`MainWindow.run_job`), and the study list refreshes from the cache's
CACHE_CHANGED event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gearview.edit.structure import merge_studies, move_series, split_study
from gearview.edit.study_edit import edit_study
from gearview.edit.undo import undo_last
from gearview.edit.values import COMMON_FIELDS, resolve_field, validate
from gearview.errors import GearviewError, describe_error
from gearview.identity.lookup import PatientIdentity
from gearview.store.attributes import field_for
from gearview.store.records import SeriesRecord, StudyRecord
from gearview.ui.reconcile_panel import CandidatePicker, form_values

if TYPE_CHECKING:
    from gearview.ui.main_window import MainWindow

log = logging.getLogger(__name__)

PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
ERROR_STYLE = "color: #d32f2f;"
#: Wide enough for a field's error message ("PatientBirthDate (0010,0030): ...") on two lines.
FIELD_WIDTH = 340


class EditStudyDialog(QDialog):
    """Edit the common fields of one study; `values()` holds only what changes."""

    def __init__(
        self,
        record: StudyRecord,
        parent: QWidget | None = None,
        pick: Callable[[EditStudyDialog], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.record = record
        self.setWindowTitle("Edit study")
        self.edits: dict[str, QLineEdit] = {}
        self.errors: dict[str, QLabel] = {}
        self.initial: dict[str, str] = {}
        layout = QVBoxLayout(self)
        self.summary = QLabel(
            f"{record.number_of_study_related_instances} instance(s) in "
            f"{record.number_of_study_related_series} series will be rewritten; "
            "the previous values are kept in each instance and in the audit log."
        )
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        form = QFormLayout()
        for keyword, label in COMMON_FIELDS:
            self._add_field(form, keyword, label)
        layout.addLayout(form)
        if pick is not None:
            self.pick_button = QPushButton("Fill from a worklist order or the local patient…")
            self.pick_button.clicked.connect(lambda: pick(self))
            layout.addWidget(self.pick_button)
        self.consistent = QCheckBox("Set the patient fields on every instance (they disagree now)")
        self.consistent.setVisible(record.mismatch)
        self.consistent.setChecked(record.mismatch)
        self.consistent.toggled.connect(self._revalidate)
        layout.addWidget(self.consistent)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("why (e.g. wrong patient selected at the modality)")
        reason_form = QFormLayout()
        reason_form.addRow("Reason", self.reason)
        layout.addLayout(reason_form)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._revalidate()

    @property
    def save_button(self) -> Any:
        return self.buttons.button(QDialogButtonBox.StandardButton.Save)

    def _add_field(self, form: QFormLayout, keyword: str, label: str) -> None:
        attr = field_for(keyword)
        value = str(getattr(self.record, attr, "") or "") if attr else ""
        edit = QLineEdit(value)
        edit.setObjectName(keyword)
        edit.setMinimumWidth(FIELD_WIDTH)
        if attr is None:
            edit.setPlaceholderText("unchanged unless filled in")
        edit.textChanged.connect(self._revalidate)
        error = QLabel()
        error.setStyleSheet(ERROR_STYLE)
        error.setWordWrap(True)
        error.setVisible(False)
        column = QVBoxLayout()
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(edit)
        column.addWidget(error)
        holder = QWidget()
        holder.setLayout(column)
        form.addRow(label, holder)
        self.edits[keyword] = edit
        self.errors[keyword] = error
        self.initial[keyword] = value

    def error_for(self, keyword: str) -> str:
        """The inline message shown under a field ('' when valid)."""
        label = self.errors[keyword]
        return label.text() if not label.isHidden() else ""

    def _revalidate(self) -> None:
        valid = True
        shown_before = {k for k, label in self.errors.items() if not label.isHidden()}
        for keyword, edit in self.edits.items():
            label = self.errors[keyword]
            try:
                validate(resolve_field(keyword), edit.text())
                label.clear()
                label.setVisible(False)
            except GearviewError as exc:
                label.setText(exc.message)
                label.setVisible(True)
                valid = False
        if {k for k, label in self.errors.items() if not label.isHidden()} != shown_before:
            # A wrapped message needs more height than the layout's minimum knows of.
            self.adjustSize()
        self.save_button.setEnabled(valid and bool(self.values()))

    def values(self) -> dict[str, str]:
        """Keyword -> new value for every field that changes (all patient fields when forced)."""
        changed = {
            keyword: edit.text()
            for keyword, edit in self.edits.items()
            if edit.text() != self.initial[keyword]
        }
        if self.consistent.isChecked():
            for keyword in PATIENT_KEYWORDS:
                changed.setdefault(keyword, self.edits[keyword].text())
        return changed

    def reason_text(self) -> str:
        return self.reason.text().strip()

    def fill(self, values: dict[str, str]) -> None:
        """Put a picked order's or local patient's values into the fields (still editable)."""
        for keyword, value in values.items():
            if keyword in self.edits:
                self.edits[keyword].setText(value)


def _selected(window: MainWindow, uids: list[str]) -> str | None:
    """The viewer's study when a viewer tab is in front (Ctrl+E there), else the list's."""
    current = window.tabs.currentWidget()
    viewer_study = getattr(current, "study_uid", None)
    if isinstance(viewer_study, str) and viewer_study:
        return viewer_study
    if not uids:
        window.statusBar().showMessage("Select a study first", 5000)
        return None
    return uids[0]


def open_edit_dialog(window: MainWindow, uids: list[str]) -> None:
    """Load the study's record off the GUI thread, then show the form."""
    uid = _selected(window, uids)
    if uid is None:
        return

    def show(record: StudyRecord | None) -> None:
        if record is None:
            window.statusBar().showMessage("The study is no longer in the cache", 5000)
            return
        dialog = EditStudyDialog(record, window, pick=lambda form: _pick(window, record, form))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(
            lambda: _run_edit(window, record, dialog.values(), dialog.reason_text())
        )
        window._edit_dialog = dialog  # noqa: SLF001 - reachable for tests and to keep it alive
        dialog.open()

    window.pool.submit(
        window.cache.study, uid, on_result=show, on_error=lambda e: _failed(window, e)
    )


def _pick(window: MainWindow, record: StudyRecord, form: EditStudyDialog) -> None:
    """The worklist / lookup picker; its choice fills the form."""
    current = PatientIdentity(
        record.patient_id,
        record.issuer_of_patient_id,
        record.patient_name,
        record.patient_birth_date,
        record.patient_sex,
    )
    picker = CandidatePicker(window.pool, window.config, lambda: window.cache.conn, current, form)
    picker.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def chosen() -> None:
        if picker.chosen is not None:
            form.fill(form_values(picker.chosen))

    picker.accepted.connect(chosen)
    form._picker = picker  # noqa: SLF001 - reachable for tests and kept alive
    picker.open()


def _run_edit(window: MainWindow, record: StudyRecord, values: dict[str, str], reason: str) -> None:
    def job(progress: Any, token: Any) -> Any:
        return edit_study(
            window.cache,
            record.study_instance_uid,
            values,
            reason=reason,
            progress=progress,
            token=token,
        )

    def done(result: Any) -> None:
        window.statusBar().showMessage(
            f"Edited {len(result.instances)} instance(s); Study ▸ Undo last edit reverts it", 8000
        )

    window.run_job(job, "Edit study", on_done=done, on_error=lambda e: _failed(window, e))


def _undo(window: MainWindow, uids: list[str]) -> None:
    uid = _selected(window, uids)
    if uid is None:
        return

    def job(progress: Any, token: Any) -> Any:
        return undo_last(window.cache, uid)

    window.run_job(job, "Undo edit", on_error=lambda e: _failed(window, e))


def _failed(window: MainWindow, exc: BaseException) -> None:
    message = describe_error(exc)
    log.error("edit failed: %s", message)
    QMessageBox.warning(window, "Edit study", f"Nothing was changed.\n\n{message}")


class SeriesDialog(QDialog):
    """Pick series of a study (split / move) and, for a move, the target study."""

    def __init__(
        self,
        title: str,
        series: list[SeriesRecord],
        targets: list[StudyRecord] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Series:"))
        self.series = QListWidget()
        for record in series:
            item = QListWidgetItem(
                f"#{record.series_number or '-'} {record.modality} {record.series_description} "
                f"({record.number_of_series_related_instances} instances)"
            )
            item.setData(Qt.ItemDataRole.UserRole, record.series_instance_uid)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.series.addItem(item)
        self.series.itemChanged.connect(self._changed)
        layout.addWidget(self.series)
        self.target = QComboBox()
        for study in targets or []:
            self.target.addItem(
                f"{study.patient_name} ({study.patient_id}) {study.study_date} "
                f"{study.study_description}",
                study.study_instance_uid,
            )
        if targets is not None:
            layout.addWidget(QLabel("Into study:"))
            layout.addWidget(self.target)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("reason (audit log)")
        layout.addWidget(self.reason)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._changed()

    def checked(self) -> list[str]:
        return [
            self.series.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.series.count())
            if self.series.item(i).checkState() == Qt.CheckState.Checked
        ]

    def check(self, series_uid: str) -> None:
        for i in range(self.series.count()):
            if self.series.item(i).data(Qt.ItemDataRole.UserRole) == series_uid:
                self.series.item(i).setCheckState(Qt.CheckState.Checked)

    def _changed(self, *_: Any) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(
            bool(self.checked()) and (self.target.count() > 0 or not self.target.isVisibleTo(self))
        )


def _open_series_dialog(window: MainWindow, uids: list[str], move: bool) -> None:
    uid = _selected(window, uids)
    if uid is None:
        return

    def load() -> tuple[list[SeriesRecord], list[StudyRecord]]:
        others = [
            s for s in window.cache.studies() if s.study_instance_uid != uid
        ] if move else []
        return window.cache.series(uid), others

    def show(result: tuple[list[SeriesRecord], list[StudyRecord]]) -> None:
        series, others = result
        dialog = SeriesDialog(
            "Move series" if move else "Split study", series, others if move else None, window
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def run() -> None:
            chosen, reason, target = (
                dialog.checked(),
                dialog.reason.text().strip(),
                dialog.target.currentData(),
            )

            def job(progress: Any, token: Any) -> Any:
                if move:
                    return move_series(
                        window.cache,
                        chosen,
                        target,
                        source_study_uid=uid,
                        reason=reason,
                        progress=progress,
                        token=token,
                    )
                return split_study(
                    window.cache, uid, chosen, reason=reason, progress=progress, token=token
                )

            window.run_job(
                job, "Move series" if move else "Split study", on_error=lambda e: _failed(window, e)
            )

        dialog.accepted.connect(run)
        window._series_dialog = dialog  # noqa: SLF001 - reachable for tests and kept alive
        dialog.open()

    window.pool.submit(load, on_result=show, on_error=lambda e: _failed(window, e))


def _merge(window: MainWindow, uids: list[str]) -> None:
    """Merge the first selected study into the second (same patient required)."""
    if len(uids) != 2:
        window.statusBar().showMessage("Select exactly two studies of one patient to merge", 5000)
        return
    source, target = uids

    def job(progress: Any, token: Any) -> Any:
        return merge_studies(window.cache, source, target, progress=progress, token=token)

    window.run_job(job, "Merge studies", on_error=lambda e: _failed(window, e))


def install(window: MainWindow) -> None:
    """Study menu + list context menu: edit, undo and the structure fixes."""
    window.add_study_action("Edit study…", lambda uids: open_edit_dialog(window, uids), "Ctrl+E")
    window.add_study_action("Undo last edit", lambda uids: _undo(window, uids))
    window.add_study_action("Split study…", lambda uids: _open_series_dialog(window, uids, False))
    window.add_study_action(
        "Move series to study…", lambda uids: _open_series_dialog(window, uids, True)
    )
    window.add_study_action("Merge studies", lambda uids: _merge(window, uids))
