"""The "De-identify" box the Send, Burn and Export dialogs share.

A checkable group: keep dates, a pseudonym (or a generated one), allow
images that may show burned-in text (with a warning and the count of such
instances), and a preview of what changes (old -> new of the main
attributes) computed by the engine on a worker - the same code the export
runs, so the preview is what will be written.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gearview.deid import DeidOptions, Refusal, find_burned_in
from gearview.deid.preview import PreviewRow, preview
from gearview.display import format_date, format_person_name
from gearview.errors import describe_error
from gearview.store import Cache
from gearview.ui.workers import WorkerPool

WARNING_STYLE = "color: #c62828;"
TABLE_HEIGHT = 200


class DeidentifyBox(QGroupBox):
    """Options of a de-identified copy; `options()` is None when the box is not ticked."""

    changed = Signal()

    def __init__(
        self,
        cache: Cache,
        study_uids: list[str],
        checked: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("De-identify (PS3.15 Basic Application Confidentiality Profile)", parent)
        self.cache = cache
        self.study_uids = list(study_uids)
        self.pool = WorkerPool(self)
        self.refusals: list[Refusal] | None = None
        self.rows: list[PreviewRow] | None = None
        self.titles: dict[str, str] = {}
        self.error = ""
        self._generation = 0
        self.setCheckable(True)
        self.setChecked(checked)
        self._build()
        self.toggled.connect(lambda _on: self.refresh())
        self.refresh()

    def _build(self) -> None:
        self.retain_dates = QCheckBox(
            "Keep dates and times (Retain Longitudinal Temporal Information)"
        )
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("generated: ANONYMOUS^<pseudonym ID>")
        self.patient_id = QLineEdit()
        self.patient_id.setPlaceholderText(
            "generated from the patient ID (the same on every export)"
        )
        self.allow_burned_in = QCheckBox("Include images that may show burned-in text")
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(WARNING_STYLE)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Attribute", "Original", "De-identified copy"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(TABLE_HEIGHT)
        self.details = QWidget(self)
        form = QFormLayout()
        form.addRow("", self.retain_dates)
        form.addRow("Pseudonym name", self.patient_name)
        form.addRow("Pseudonym ID", self.patient_id)
        form.addRow("", self.allow_burned_in)
        inner = QVBoxLayout(self.details)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addLayout(form)
        inner.addWidget(self.warning)
        inner.addWidget(self.table)
        QVBoxLayout(self).addWidget(self.details)
        self.details.setVisible(self.isChecked())
        self.toggled.connect(self.details.setVisible)
        self.retain_dates.toggled.connect(lambda _b: self.refresh())
        self.patient_name.textChanged.connect(lambda _t: self.refresh())
        self.patient_id.textChanged.connect(lambda _t: self.refresh())
        self.allow_burned_in.toggled.connect(lambda _b: self._show_refusals())

    def options(self) -> DeidOptions | None:
        if not self.isChecked():
            return None
        return DeidOptions(
            retain_dates=self.retain_dates.isChecked(),
            patient_name=self.patient_name.text().strip(),
            patient_id=self.patient_id.text().strip(),
            allow_burned_in=self.allow_burned_in.isChecked(),
        )

    def ready(self) -> bool:
        """True when what the box says can be exported (always, when not ticked)."""
        if not self.isChecked():
            return True
        if self.error or self.rows is None or self.refusals is None:
            return False
        return not self.refusals or self.allow_burned_in.isChecked()

    # ---- work on the pool ---------------------------------------------------

    def refresh(self) -> None:
        """Recompute the preview (and, once, the burned-in check) for the current options."""
        self.rows = None
        self.error = ""
        self._generation += 1
        if not self.isChecked():
            self._show_preview()
            return
        options = self.options()
        generation = self._generation

        def job() -> tuple[dict[str, str], list[PreviewRow]]:
            studies = self.cache.studies_by_uid(self.study_uids)
            titles = {
                s.study_instance_uid: f"{format_person_name(s.patient_name)}  "
                f"{format_date(s.study_date)}  {s.study_description}".strip()
                for s in studies
            }
            return titles, preview(self.cache.home, studies, options)

        self.pool.submit(
            job,
            on_result=lambda result: self._previewed(generation, *result),
            on_error=lambda exc: self._preview_failed(generation, exc),
        )
        if self.refusals is None:
            self.pool.submit(self._scan, on_result=self._scanned, on_error=self._scan_failed)
        self._show_preview()

    def _scan(self) -> list[Refusal]:
        paths = [r.path for uid in self.study_uids for r in self.cache.instances(study_uid=uid)]
        return find_burned_in(paths)

    def _previewed(self, generation: int, titles: dict[str, str], rows: list[PreviewRow]) -> None:
        if generation == self._generation:
            self.titles, self.rows = titles, rows
            self._show_preview()

    def _preview_failed(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self.error = describe_error(exc)
            self._show_preview()

    def _scanned(self, refusals: list[Refusal]) -> None:
        self.refusals = refusals
        self._show_refusals()

    def _scan_failed(self, exc: BaseException) -> None:
        self.refusals = []
        self.error = describe_error(exc)
        self._show_preview()

    # ---- display ------------------------------------------------------------

    def _show_preview(self) -> None:
        """The rows, under a title line per study when there are several."""
        self.table.clearSpans()
        self.table.setRowCount(0)
        study = None
        for row in self.rows or []:
            if len(self.study_uids) > 1 and row.study_uid != study:
                study = row.study_uid
                self._add_row([self.titles.get(study, study)])
                self.table.setSpan(self.table.rowCount() - 1, 0, 1, 3)
            self._add_row([row.label, row.old, row.new])
        self._show_refusals()

    def _add_row(self, texts: list[str]) -> None:
        index = self.table.rowCount()
        self.table.insertRow(index)
        for column, text in enumerate(texts):
            self.table.setItem(index, column, QTableWidgetItem(text))

    def _show_refusals(self) -> None:
        if self.error:
            self.warning.setText(self.error)
        elif self.isChecked() and self.refusals:
            lines = "\n".join(r.line() for r in self.refusals[:5])
            more = f"\n… and {len(self.refusals) - 5} more" if len(self.refusals) > 5 else ""
            verdict = (
                "They will be copied as they are: check that they show no name."
                if self.allow_burned_in.isChecked()
                else "They are refused unless you include them."
            )
            self.warning.setText(
                f"Warning: {len(self.refusals)} instance(s) may show the patient's identity in "
                f"their pixels or document, which de-identification does not remove. "
                f"{verdict}\n{lines}{more}"
            )
        else:
            self.warning.setText("")
        self.changed.emit()

    def shutdown(self) -> None:
        self.pool.shutdown()
