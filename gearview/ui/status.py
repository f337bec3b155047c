"""Status-bar widgets: the embedded server's state and running jobs.

`ServerStatus` shows what the admin needs at a glance — AE title and port,
listening or stopped (and why), open associations, the last error — from the
bridge's SERVER_STATE / ASSOCIATION_* / SERVER_ERROR signals. `JobStatus` is
one running job: its title, a progress bar and a Cancel button.
"""

from __future__ import annotations

import html
from typing import Any

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from gearview.events import AssociationChanged
from gearview.jobs import CancelToken, Progress
from gearview.ui.bridge import Bridge

ICON_SIZE = QSize(16, 16)
OK_COLOR = "#2e8b57"
ERROR_COLOR = "#c0392b"
IDLE_COLOR = "#808080"
#: Widest the server status may get in the status bar (pixels); the tooltip has it all.
MAX_TEXT_WIDTH = 640


class ServerStatus(QWidget):
    """'GEARVIEW@11112 · listening · 2 associations' plus the last error."""

    #: emitted after every change of the shown state.
    changed = Signal()

    def __init__(self, bridge: Bridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bridge = bridge
        self.ae_title = ""
        self.port = 0
        self.running = False
        self.associations = 0
        self.last_error = ""
        self._full_text = ""
        self._icon = QLabel(self)
        self._text = QLabel(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self._icon)
        layout.addWidget(self._text)
        bridge.server_state.connect(self.set_state)
        bridge.association_opened.connect(self._on_association)
        bridge.association_closed.connect(self._on_association)
        bridge.server_error.connect(self.set_error)
        self._render()

    @property
    def text(self) -> str:
        """The full status line (the label shows it elided to MAX_TEXT_WIDTH)."""
        return self._full_text

    def set_state(self, state: Any) -> None:
        """Take a `ServerState` (running, ae_title, port, associations, last_error)."""
        if state is None:
            return
        self.running = bool(state.running)
        self.ae_title = state.ae_title
        self.port = state.port
        self.associations = state.associations
        if state.last_error:
            self.last_error = state.last_error
        elif self.running:
            self.last_error = ""
        self._render()

    def set_error(self, message: str) -> None:
        self.last_error = message
        self._render()

    def _on_association(self, change: AssociationChanged) -> None:
        self.associations = change.associations
        self._render()

    def _render(self) -> None:
        where = f"{self.ae_title}@{self.port}" if self.ae_title else "DICOM server"
        if self.running:
            color, icon = OK_COLOR, "mdi6.access-point-network"
            plural = "" if self.associations == 1 else "s"
            text = f"{where} · listening · {self.associations} association{plural}"
        elif self.last_error:
            color, icon = ERROR_COLOR, "mdi6.access-point-network-off"
            text = f"{where} · not listening"
        else:
            color, icon = IDLE_COLOR, "mdi6.access-point-network-off"
            text = f"{where} · stopped"
        if self.last_error:
            text += f" · error: {self.last_error}"
        self._icon.setPixmap(qta.icon(icon, color=color).pixmap(ICON_SIZE))
        self._full_text = text
        metrics = self._text.fontMetrics()
        self._text.setText(metrics.elidedText(text, Qt.TextElideMode.ElideRight, MAX_TEXT_WIDTH))
        tip = f"<b>{html.escape(where)}</b><br>{html.escape(text)}"
        self.setToolTip(tip)
        self.changed.emit()


class JobStatus(QWidget):
    """One running job in the status bar: title, progress and Cancel."""

    cancel_requested = Signal()

    def __init__(self, title: str, token: CancelToken, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self._token = token
        self.label = QLabel(title, self)
        self.bar = QProgressBar(self)
        self.bar.setMaximumWidth(160)
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(False)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setIcon(qta.icon("mdi6.close-circle"))
        self.cancel_button.setToolTip(f"Cancel {title}")
        self.cancel_button.setAutoRaise(True)
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)

    def cancel(self) -> None:
        self._token.cancel()
        self.cancel_button.setEnabled(False)
        self.label.setText(f"{self.title}: cancelling…")
        self.cancel_requested.emit()

    def set_progress(self, progress: Progress) -> None:
        if progress.total:
            self.bar.setRange(0, progress.total)
            self.bar.setValue(min(progress.done, progress.total))
        else:
            self.bar.setRange(0, 0)
        if not self._token.cancelled:
            suffix = f" — {progress.message}" if progress.message else ""
            self.label.setText(f"{self.title}{suffix}")
