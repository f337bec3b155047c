"""The Activity panel: retrieve and send jobs from the persistent queue.

Shows every job, newest on top, with its progress, state and message (a
send waiting for its automatic retry after a network error says when it
runs; a job killed with its process is `interrupted`); Cancel, Retry (a send
resends only what is missing, a retrieve fetches only what is not here yet)
and Remove act on the selected job, and Cancel with nothing selected stops
the running one (a row's context menu has the same actions); the
per-instance failures and warnings of a job are listed beside the table.
Updates arrive as engine events through the bridge (queued to the GUI
thread); the station's queue runs the jobs on its own thread, so nothing here
blocks, and the station stops it when it closes (interrupted jobs stay queued
on disk and resume at the next start).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from PySide6.QtCore import QPoint, QSize, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gearview.errors import GearviewError
from gearview.jobqueue import (
    DONE,
    INTERRUPTED,
    QUEUED,
    RETRYABLE,
    RUNNING,
    JobQueue,
    JobRecord,
)

log = logging.getLogger(__name__)
COLUMNS = ("Job", "State", "Progress", "Message", "Started")
#: Job rows the dock shows without scrolling when it first opens.
VISIBLE_ROWS = 5
JOB_COLUMN_CHARS = 36
#: States Cancel acts on (an interrupted job waits for a retry until cancelled).
ACTIVE = (QUEUED, RUNNING, INTERRUPTED)


class ActivityPanel(QWidget):
    """A table of jobs with Cancel / Retry / Remove and the selected job's details."""

    def __init__(self, queue: JobQueue, bridge: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, self.fontMetrics().averageCharWidth() * JOB_COLUMN_CHARS)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.details = QPlainTextEdit(self)
        self.details.setReadOnly(True)
        self.details.setPlaceholderText("Per-instance failures and warnings of the selected job")
        self.cancel_button = QPushButton("Cancel", self)
        self.retry_button = QPushButton("Retry", self)
        self.remove_button = QPushButton("Remove", self)
        buttons = QHBoxLayout()
        for button in (self.cancel_button, self.retry_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        # Details beside the jobs, not under them: the dock's height is all job rows.
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(splitter)
        self._rows: dict[str, int] = {}
        self._records: dict[str, JobRecord] = {}
        self.cancel_button.clicked.connect(self.cancel)
        self.retry_button.clicked.connect(lambda: self._act(self.queue.retry))
        self.remove_button.clicked.connect(self._remove)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        bridge.job_progress.connect(self._on_job)
        bridge.job_finished.connect(self._on_job)
        for record in queue.jobs():
            self.show_job(record.snapshot())
        self._selection_changed()

    def sizeHint(self) -> QSize:  # noqa: N802 - room for the recent jobs, newest on top
        header = self.table.horizontalHeader().sizeHint().height()
        rows = self.table.verticalHeader().defaultSectionSize() * VISIBLE_ROWS
        buttons = self.cancel_button.sizeHint().height()
        return QSize(800, header + rows + buttons + 24)

    def _on_job(self, record: JobRecord) -> None:
        self.show_job(record)

    def show_job(self, record: JobRecord) -> None:
        """Add or update the row of one job."""
        self._records[record.id] = record
        row = self._rows.get(record.id)
        if row is None:
            row = 0  # newest on top
            self.table.insertRow(row)
            self._rows = {job_id: r + 1 for job_id, r in self._rows.items()}
            self._rows[record.id] = row
            bar = QProgressBar(self.table)
            bar.setTextVisible(True)
            self.table.setCellWidget(row, 2, bar)
        started = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        message = record.shown_message
        for column, text in ((0, record.title), (1, record.state), (3, message), (4, started)):
            item = self.table.item(row, column)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(row, column, item)
            item.setText(text)
            item.setToolTip(text)
            item.setData(Qt.ItemDataRole.UserRole, record.id)
        bar = self.table.cellWidget(row, 2)
        if isinstance(bar, QProgressBar):
            bar.setRange(0, max(record.total, 1))
            bar.setValue(
                min(record.done, max(record.total, 1))
                if record.total
                else (1 if record.state == DONE else 0)
            )
            bar.setFormat(f"{record.done}/{record.total}" if record.total else "%p%")
        if record.id == self.selected_job_id():
            self._selection_changed()
        else:
            self._update_buttons()

    def selected_job_id(self) -> str | None:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        for job_id, row in self._rows.items():
            if row in rows:
                return job_id
        return None

    def job_state(self, job_id: str) -> str:
        return self._records[job_id].state

    def select_job(self, job_id: str) -> None:
        """Select a job's row and scroll to it ("Show" of a notification)."""
        row = self._rows.get(job_id)
        if row is not None:
            self.table.selectRow(row)
            self.table.scrollToItem(self.table.item(row, 0))

    def cancel_target(self) -> str | None:
        """The job Cancel acts on: the selected one, or else the one running."""
        job_id = self.selected_job_id()
        if job_id is not None:
            return job_id
        running = [j for j, r in self._records.items() if r.state == RUNNING]
        return running[0] if running else None

    def cancel(self) -> None:
        job_id = self.cancel_target()
        if job_id is not None:
            self._act(self.queue.cancel, job_id)

    def _context_menu(self, pos: QPoint) -> None:
        item = self.table.itemAt(pos)
        if item is None:
            return
        self.table.selectRow(item.row())
        self._selection_changed()
        menu = QMenu(self)
        for button in (self.cancel_button, self.retry_button, self.remove_button):
            action = menu.addAction(button.text(), button.click)
            action.setEnabled(button.isEnabled())
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _act(self, action: Any, job_id: str | None = None) -> None:
        job_id = job_id or self.selected_job_id()
        if job_id is None:
            return
        try:
            record = action(job_id)
        except GearviewError as exc:
            self.details.setPlainText(exc.one_line())
            return
        if isinstance(record, JobRecord):
            self.show_job(record.snapshot())

    def _remove(self) -> None:
        job_id = self.selected_job_id()
        if job_id is None:
            return
        try:
            self.queue.remove(job_id)
        except GearviewError as exc:
            self.details.setPlainText(exc.one_line())
            return
        row = self._rows.pop(job_id)
        self._records.pop(job_id, None)
        self.table.removeRow(row)
        self._rows = {j: (r - 1 if r > row else r) for j, r in self._rows.items()}

    def _update_buttons(self) -> None:
        job_id = self.selected_job_id()
        record = self._records.get(job_id) if job_id else None
        target = self._records.get(self.cancel_target() or "")
        self.cancel_button.setEnabled(target is not None and target.state in ACTIVE)
        self.cancel_button.setToolTip(
            f"Cancel {target.title}" if target is not None and target.state in ACTIVE else ""
        )
        self.retry_button.setEnabled(record is not None and record.state in RETRYABLE)
        self.remove_button.setEnabled(record is not None and record.state != RUNNING)

    def _selection_changed(self) -> None:
        self._update_buttons()
        job_id = self.selected_job_id()
        record = self._records.get(job_id) if job_id else None
        if record is None:
            self.details.clear()
            return
        lines = [f"{record.title} - {record.state}", record.shown_message]
        if record.result:
            lines.append(", ".join(f"{k}: {v}" for k, v in record.result.items()))
        lines += [f"failed   {uid}: {text}" for uid, text in record.failures.items()]
        lines += [f"warning  {uid}: {text}" for uid, text in record.warnings.items()]
        self.details.setPlainText("\n".join(line for line in lines if line))


def install(window: Any) -> None:
    """Dock the Activity panel (bottom) over the station's job queue."""
    panel = ActivityPanel(window.station.jobs, window.bridge, window)
    window.activity_panel = panel
    dock = window.add_dock(panel, "Activity", Qt.DockWidgetArea.BottomDockWidgetArea)
    window.resizeDocks([dock], [panel.sizeHint().height()], Qt.Orientation.Vertical)
    window.activity_dock = dock
