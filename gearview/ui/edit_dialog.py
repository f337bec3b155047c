"""The "Edit study…" form: common patient/study fields, inline VR validation, reason.

Sex is a choice and dates have a calendar (`edit_fields`); a changed field
is tinted, an invalid one framed red with its message in one fixed-height
line under the form, so validating as the user types never moves a field.
A reason is required; the last ones used are offered. The form only
validates (pure functions, no disk); the edit itself runs as a job on a
worker with progress and Cancel in the status bar (`MainWindow.run_job`),
and the study list refreshes from the cache's CACHE_CHANGED event.
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

from gearview.display import format_date, format_person_name
from gearview.edit.structure import merge_studies, move_series, same_patient, split_study
from gearview.edit.study_edit import edit_study
from gearview.edit.undo import undo_last
from gearview.edit.values import COMMON_FIELDS, resolve_field, validate
from gearview.errors import GearviewError, describe_error
from gearview.identity.lookup import PatientIdentity
from gearview.store.attributes import field_for
from gearview.store.records import SeriesRecord, StudyRecord
from gearview.ui.edit_fields import FIELD_STYLE, FieldEditor, field_editor, mark
from gearview.ui.gui_settings import recent_reasons, remember_reason
from gearview.ui.reconcile_panel import CandidatePicker, form_values

if TYPE_CHECKING:
    from gearview.ui.main_window import MainWindow

log = logging.getLogger(__name__)

PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
PERSON_NAMES = ("PatientName", "ReferringPhysicianName")
ERROR_STYLE = "color: #d32f2f;"
FIELD_WIDTH = 340
#: Lines kept for the validation message: room for the longest one, reserved even when valid.
MESSAGE_LINES = 2


class EditStudyDialog(QDialog):
    """Edit the common fields of one study; `values()` holds only what changes."""

    def __init__(
        self,
        record: StudyRecord,
        parent: QWidget | None = None,
        pick: Callable[[EditStudyDialog], None] | None = None,
        reasons: list[str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.record = record
        self.setWindowTitle(f"Edit study — {format_person_name(record.patient_name)}")
        self.setStyleSheet(FIELD_STYLE)
        self.edits: dict[str, FieldEditor] = {}
        self.errors: dict[str, str] = {}
        self.initial: dict[str, str] = {}
        layout = QVBoxLayout(self)
        self.summary = QLabel(
            f"{format_person_name(record.patient_name)}, {format_date(record.study_date)} "
            f"{record.study_description}: {record.number_of_study_related_instances} instance(s) "
            f"in {record.number_of_study_related_series} series will be rewritten; the previous "
            "values are kept in each instance and in the audit log."
        )
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.form = QFormLayout()
        for keyword, label in COMMON_FIELDS:
            self._add_field(self.form, keyword, label)
        layout.addLayout(self.form)
        self.message = QLabel()
        self.message.setObjectName("validation")
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.message.setFixedHeight(self.fontMetrics().lineSpacing() * MESSAGE_LINES + 4)
        layout.addWidget(self.message)
        if pick is not None:
            self.pick_button = QPushButton("Fill from a worklist order or the local patient…")
            self.pick_button.clicked.connect(lambda: pick(self))
            layout.addWidget(self.pick_button)
        self.consistent = QCheckBox("Set the patient fields on every instance (they disagree now)")
        self.consistent.setVisible(record.mismatch)
        self.consistent.setChecked(record.mismatch)
        self.consistent.toggled.connect(self._revalidate)
        layout.addWidget(self.consistent)
        self.reason = QComboBox()
        self.reason.setEditable(True)
        self.reason.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.reason.addItems(reasons or [])
        self.reason.setCurrentIndex(-1)
        self.reason.setToolTip("Required: it is written to the audit log with the edit")
        line = self.reason.lineEdit()
        line.setPlaceholderText("required: why (e.g. wrong patient selected at the modality)")
        line.textChanged.connect(self._revalidate)
        reason_form = QFormLayout()
        reason_form.addRow("Reason *", self.reason)
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
        edit = field_editor(keyword, value)
        edit.setObjectName(keyword)
        edit.setMinimumWidth(FIELD_WIDTH)
        if attr is None and isinstance(edit, QLineEdit):
            edit.setPlaceholderText("unchanged unless filled in")
        edit.changed.connect(self._revalidate)
        form.addRow(label, edit)
        self.edits[keyword] = edit
        self.initial[keyword] = value

    def error_for(self, keyword: str) -> str:
        """The validation message of a field ('' when valid)."""
        return self.errors.get(keyword, "")

    def _revalidate(self) -> None:
        self.errors = {}
        for keyword, edit in self.edits.items():
            try:
                validate(resolve_field(keyword), edit.value())
            except GearviewError as exc:
                self.errors[keyword] = exc.message
            changed = edit.value() != self.initial[keyword]
            mark(edit, "invalid", keyword in self.errors)
            mark(edit, "changed", changed)
            edit.setToolTip(self._tooltip(keyword, changed))
            label = self.form.labelForField(edit)
            if label is not None:
                font = label.font()
                font.setBold(changed)
                label.setFont(font)
        focused = next((k for k, e in self.edits.items() if e.hasFocus()), None)
        shown = focused if focused in self.errors else next(iter(self.errors), None)
        self.message.setText(self.errors[shown] if shown else "")
        self.save_button.setEnabled(
            not self.errors and bool(self.values()) and bool(self.reason_text())
        )
        self.save_button.setToolTip("" if self.reason_text() else "Give a reason first")

    def _tooltip(self, keyword: str, changed: bool) -> str:
        lines = [self.errors[keyword]] if keyword in self.errors else []
        value = self.edits[keyword].value()
        if keyword in PERSON_NAMES and value:
            lines.append(f"shown as: {format_person_name(value)}  (Family^Given^Middle)")
        if changed:
            lines.append(f"was: {self.initial[keyword] or '(empty)'}")
        return "\n".join(lines)

    def values(self) -> dict[str, str]:
        """Keyword -> new value for every field that changes (all patient fields when forced)."""
        changed = {
            keyword: edit.value()
            for keyword, edit in self.edits.items()
            if edit.value() != self.initial[keyword]
        }
        if self.consistent.isChecked():
            for keyword in PATIENT_KEYWORDS:
                changed.setdefault(keyword, self.edits[keyword].value())
        return changed

    def reason_text(self) -> str:
        return self.reason.currentText().strip()

    def fill(self, values: dict[str, str]) -> None:
        """Put a picked order's or local patient's values into the fields (still editable)."""
        for keyword, value in values.items():
            if keyword in self.edits:
                self.edits[keyword].set_value(value)


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
        dialog = EditStudyDialog(
            record,
            window,
            pick=lambda form: _pick(window, record, form),
            reasons=recent_reasons(window.home),
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def save() -> None:
            remember_reason(window.home, dialog.reason_text())
            _run_edit(window, record, dialog.values(), dialog.reason_text())

        dialog.accepted.connect(save)
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
                f"{format_person_name(study.patient_name)} ({study.patient_id}) "
                f"{format_date(study.study_date)} {study.study_description}",
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

    def load() -> tuple[list[SeriesRecord], list[StudyRecord], StudyRecord | None]:
        others = [
            s for s in window.cache.studies() if s.study_instance_uid != uid
        ] if move else []
        return window.cache.series(uid), others, window.cache.study(uid)

    def show(result: tuple[list[SeriesRecord], list[StudyRecord], StudyRecord | None]) -> None:
        series, others, source = result
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
            target_record = next((s for s in others if s.study_instance_uid == target), None)
            if (move and source is not None and target_record is not None
                    and not same_patient(source, target_record)
                    and not confirm_other_patient(window, source, target_record)):
                return

            def job(progress: Any, token: Any) -> Any:
                if move:
                    return move_series(
                        window.cache,
                        chosen,
                        target,
                        source_study_uid=uid,
                        reason=reason,
                        allow_other_patient=True,
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


def confirm_other_patient(window: MainWindow, source: StudyRecord,
                          target: StudyRecord) -> bool:
    """Moving series into another patient's study rewrites who they belong to: ask first."""
    answer = QMessageBox.warning(
        window, "Move series",
        f"The target study belongs to another patient:\n\n"
        f"{target.patient_name} (ID {target.patient_id or '-'}), not "
        f"{source.patient_name} (ID {source.patient_id or '-'}).\n\n"
        "The moved series take that patient's name, ID and birth date. Move them anyway?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel,
    )
    return answer == QMessageBox.StandardButton.Yes


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
