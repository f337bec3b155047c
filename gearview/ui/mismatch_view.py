"""What a study's warning sign means: its safety findings and, per instance, the patient
values its instances disagree on (the values that differ from most instances in bold red).

Opened by clicking the sign in the study list; the data is read on a worker.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydicom.datadict import dictionary_description
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gearview.qc.checks import IDENTITY, Finding, InstanceIdentity, check_studies, disagreements
from gearview.store import Cache
from gearview.ui.workers import WorkerPool

ODD = QColor("#c62828")
FIXED_COLUMNS = ("Series", "Modality", "Instance")


def load(cache: Cache, study_uid: str) -> tuple[list[Finding], list[str], list[InstanceIdentity]]:
    """Worker side: the study's findings and its instances' patient values."""
    findings = check_studies(cache, [study_uid])
    keywords, instances = disagreements(cache, study_uid)
    return findings, keywords, instances


class MismatchView(QDialog):
    """Findings and the per-instance values of one study."""

    def __init__(self, cache: Cache, study_uid: str, pool: WorkerPool,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Why this study is flagged")
        self.resize(820, 480)
        self.study_uid = study_uid
        layout = QVBoxLayout(self)
        self.summary = QLabel("Reading the study…")
        self.summary.setWordWrap(True)
        self.findings = QListWidget()
        self.findings.setMaximumHeight(140)
        self.table = QTableWidget(0, len(FIXED_COLUMNS) + len(IDENTITY))
        self.table.setHorizontalHeaderLabels(
            [*FIXED_COLUMNS, *(dictionary_description(a.keyword) for a in IDENTITY)])
        self.table.verticalHeader().hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        for widget in (self.summary, self.findings, self.table, buttons):
            layout.addWidget(widget)
        pool.submit(load, cache, study_uid, on_result=self.show_values, on_error=self._failed)

    def show_values(self, result: tuple[list[Finding], list[str], list[InstanceIdentity]]
                    ) -> None:
        findings, keywords, instances = result
        for finding in findings:
            self.findings.addItem(f"{finding.code}: {finding.message}")
        self.findings.setVisible(bool(findings))
        names = ", ".join(dictionary_description(k) for k in keywords)
        self.summary.setText(
            f"{len(instances)} instance(s); they disagree on {names}." if keywords
            else f"{len(instances)} instance(s) agree on the patient."
        )
        common = {a.keyword: Counter(i.values[a.keyword] for i in instances).most_common(1)
                  for a in IDENTITY}
        self.table.setRowCount(len(instances))
        for row, instance in enumerate(instances):
            fixed: tuple[Any, ...] = (instance.series_number, instance.modality,
                                      instance.instance_number)
            for column, value in enumerate(fixed):
                self.table.setItem(row, column, QTableWidgetItem("" if value is None else
                                                                 str(value)))
            for offset, attr in enumerate(IDENTITY):
                value = instance.values[attr.keyword]
                item = QTableWidgetItem(value)
                if attr.keyword in keywords and value != common[attr.keyword][0][0]:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                    item.setForeground(QBrush(ODD))
                self.table.setItem(row, len(FIXED_COLUMNS) + offset, item)
        self.table.resizeColumnsToContents()

    def odd_cells(self) -> list[tuple[int, str]]:
        """(row, keyword) of the values shown as differing (what a test or a reader checks)."""
        cells = []
        for row in range(self.table.rowCount()):
            for offset, attr in enumerate(IDENTITY):
                item = self.table.item(row, len(FIXED_COLUMNS) + offset)
                if item is not None and item.font().bold():
                    cells.append((row, attr.keyword))
        return cells

    def _failed(self, exc: BaseException) -> None:
        self.summary.setText(f"Cannot read the study: {exc}")
