"""The status bar's storage indicator: free space, cache size, and a warning before the limits.

'38.2 GB free · cache 11.0 GB of 20.0 GB', amber once within reach of a
limit (free space under 1.5 x `storage.min_free`, the cache over 90 % of
`storage.max_size`, or under 5 % free without a floor), red once over it,
with the tooltip saying what happens then (purge, or new stores refused).
Measured on a worker after the cache changes (at most every few seconds)
and once a minute.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import qtawesome as qta
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from gearview.errors import describe_error
from gearview.lifecycle.space import FULL, OK, WARNING, StorageState, storage_state
from gearview.ui.status import ERROR_COLOR, ICON_SIZE, OK_COLOR

if TYPE_CHECKING:
    from gearview.ui.main_window import MainWindow

WARN_COLOR = "#d98c00"
REFRESH_MS = 60_000
#: Changes of the cache are coalesced: one measurement at most this often.
SETTLE_MS = 3_000
COLORS = {OK: OK_COLOR, WARNING: WARN_COLOR, FULL: ERROR_COLOR}


class StorageStatus(QWidget):
    """Free space and cache size of the storage folder, coloured by how close the limits are."""

    def __init__(self, window: MainWindow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._window = window
        self._busy = False
        self.state: StorageState | None = None
        self._icon = QLabel(self)
        self.label = QLabel(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self._icon)
        layout.addWidget(self.label)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self.refresh)
        window.bridge.cache_changed.connect(self._on_changed)
        window.closing.connect(self._stop)

    def _stop(self) -> None:
        """No more measurements once the window closes (the station goes with it)."""
        self._timer.stop()
        self._settle.stop()

    def _on_changed(self, _: Any) -> None:
        if not self._settle.isActive():
            self._settle.start()

    def refresh(self) -> None:
        """Measure on a worker (the GUI thread never touches the disk)."""
        if self._busy or not self._timer.isActive():
            return
        self._busy = True
        window = self._window
        window.pool.submit(storage_state, window.cache, window.config,
                           on_result=self.show_state, on_error=self._failed)

    def _failed(self, exc: BaseException) -> None:
        self._busy = False
        self.label.setText("storage: unknown")
        self.setToolTip(f"The storage folder could not be measured: {describe_error(exc)}")

    def show_state(self, state: StorageState) -> None:
        self._busy = False
        self.state = state
        color = COLORS[state.level]
        icon = "mdi6.harddisk" if state.level == OK else "mdi6.harddisk-remove"
        self._icon.setPixmap(qta.icon(icon, color=color).pixmap(ICON_SIZE))
        self.label.setText(state.describe())
        self.label.setStyleSheet("" if state.level == OK else f"color: {color};")
        self.setToolTip(self._explain(state))

    def _explain(self, state: StorageState) -> str:
        text = html.escape(state.describe())
        mode = self._window.config.storage.when_full
        crossed = state.limits.crossed(state.usage)
        if state.level == FULL:
            then = ("sent studies are purged, oldest first; studies not yet sent are never "
                    "purged, and new instances are refused once only those are left"
                    if mode == "recycle" else "new instances are refused (A700) until "
                    "`gearview store purge` or a bigger limit makes room")
            return f"<b>Storage full</b>: {html.escape(crossed)}<br>{text}<br>{then}."
        if state.level == WARNING:
            return (f"<b>Storage nearly full</b><br>{text}<br>Send studies on so the "
                    "retention policy can purge them, or free space on the disk.")
        return text


def install(window: MainWindow) -> StorageStatus:
    widget = StorageStatus(window, window)
    window.storage_status = widget
    window.statusBar().addPermanentWidget(widget)
    widget.refresh()
    return widget
