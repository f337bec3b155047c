"""Notices when a queued job (retrieve, send) fails or finishes: status bar and tray.

The status-bar notice names the job and the outcome and offers "Retry"
(failures) and "Show" (the Activity dock with the job selected); a failure
stays until acted on or closed, a success fades after a while. Where the
desktop has a system tray, the same news appears as a tray message (clicking
it shows the job). A job the user cancelled gets no notice.
"""

from __future__ import annotations

import logging
from typing import Any

import qtawesome as qta
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSystemTrayIcon,
    QToolButton,
    QWidget,
)

from gearview.errors import GearviewError
from gearview.jobqueue import DONE, FAILED, JobRecord

log = logging.getLogger(__name__)

#: A success notice disappears after this long; a failure waits for the user.
DONE_NOTICE_MS = 15_000
TRAY_MESSAGE_MS = 8_000
MAX_TEXT_WIDTH = 480


class JobNotice(QWidget):
    """'Send to PACS failed: … [Retry] [Show] [×]' in the status bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_id = ""
        self.icon = QLabel(self)
        self.text = QLabel(self)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.retry_button = QToolButton(self)
        self.retry_button.setText("Retry")
        self.show_button = QToolButton(self)
        self.show_button.setText("Show")
        self.close_button = QToolButton(self)
        self.close_button.setIcon(qta.icon("mdi6.close"))
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAutoRaise(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        for widget in (self.icon, self.text, self.retry_button, self.show_button,
                       self.close_button):
            layout.addWidget(widget)
        self.close_button.clicked.connect(self.hide)
        self.hide()

    def present(self, record: JobRecord) -> None:
        failed = record.state == FAILED
        self.job_id = record.id
        icon = (qta.icon("mdi6.alert-circle", color="#c0392b") if failed
                else qta.icon("mdi6.check-circle", color="#2e8b57"))
        self.icon.setPixmap(icon.pixmap(16, 16))
        full = notice_text(record)
        metrics = self.text.fontMetrics()
        self.text.setText(metrics.elidedText(full, Qt.TextElideMode.ElideRight, MAX_TEXT_WIDTH))
        self.text.setToolTip(full)
        self.retry_button.setVisible(failed)
        self.show()


def notice_text(record: JobRecord) -> str:
    if record.state == FAILED:
        return f"{record.title} failed: {record.error or record.message}"
    return f"{record.title}: {record.message or 'done'}"


class Notifier(QObject):
    """Hears JOB_FINISHED (through the bridge) and tells the user."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.notice = JobNotice(window)
        window.statusBar().addPermanentWidget(self.notice)
        self.notice.retry_button.clicked.connect(self.retry)
        self.notice.show_button.clicked.connect(self.show_job)
        self._fade = QTimer(self)
        self._fade.setSingleShot(True)
        self._fade.timeout.connect(self.notice.hide)
        self.tray = self._make_tray()
        window.bridge.job_finished.connect(self.job_finished)
        window.closing.connect(self._close)

    def _make_tray(self) -> QSystemTrayIcon | None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None
        icon = self.window.windowIcon()
        if icon.isNull():
            icon = QApplication.windowIcon()
        tray = QSystemTrayIcon(icon if not icon.isNull() else qta.icon("mdi6.cog"), self)
        tray.setToolTip("gearview")
        menu = QMenu(self.window)
        menu.addAction("Show gearview", self._raise_window)
        menu.addAction("Show the last job", self.show_job)
        tray.setContextMenu(menu)
        tray.messageClicked.connect(self.show_job)
        tray.activated.connect(lambda _reason: self._raise_window())
        tray.show()
        return tray

    def job_finished(self, record: JobRecord) -> None:
        if record.state not in (DONE, FAILED):
            return
        self.notice.present(record)
        if record.state == DONE:
            self._fade.start(DONE_NOTICE_MS)
        else:
            self._fade.stop()
        if self.tray is not None:
            icon = (QSystemTrayIcon.MessageIcon.Warning if record.state == FAILED
                    else QSystemTrayIcon.MessageIcon.Information)
            self.tray.showMessage("gearview", notice_text(record), icon, TRAY_MESSAGE_MS)

    def retry(self) -> None:
        job_id = self.notice.job_id
        self.notice.hide()
        try:
            self.window.station.jobs.retry(job_id)
        except GearviewError as exc:
            self.window.statusBar().showMessage(f"Cannot retry: {exc.one_line()}", 10_000)

    def show_job(self) -> None:
        """The Activity dock, in front, with the notice's job selected."""
        self._raise_window()
        dock = getattr(self.window, "activity_dock", None)
        if dock is not None:
            dock.show()
            dock.raise_()
        panel = getattr(self.window, "activity_panel", None)
        if panel is not None and self.notice.job_id:
            panel.select_job(self.notice.job_id)

    def _raise_window(self) -> None:
        if self.window.isMinimized():
            self.window.showNormal()
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()

    def _close(self) -> None:
        self._fade.stop()
        if self.tray is not None:
            self.tray.hide()


def install(window: Any) -> None:
    """Notices for finished queue jobs (after the Activity panel, whose dock "Show" opens)."""
    window.notifier = Notifier(window)
