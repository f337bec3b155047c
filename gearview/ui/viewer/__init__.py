"""The study viewer (issue 5): `ViewerWindow(cache, study_uid)` and `install(window)`.

In the main window, `ViewerTabs` keeps one tab per open study: it opens them
on activation, follows the cache through the bridge, and stops them when the
window closes. Compressed frames decode in the station's decoder processes,
shared by every tab (the station stops them when it closes).
"""

from __future__ import annotations

from typing import Any

import qtawesome as qta
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QTabBar, QToolButton

from gearview.events import CacheChanged
from gearview.ui.viewer.window import ViewerWindow

__all__ = ["ViewerTabs", "ViewerWindow", "close_viewer", "install", "open_study"]

#: A tab's title until the study's record has been read (on a worker).
PENDING_TITLE = "Study"


class ViewerTabs(QObject):
    """The viewer tabs of one main window (a child of it, so its connections end with it)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self._window = window
        window.bridge.cache_changed.connect(self.on_cache_changed)
        window.study_activated.connect(self.open_study)
        window.closing.connect(self.shutdown)

    def viewers(self) -> list[ViewerWindow]:
        tabs = self._window.tabs
        return [w for i in range(tabs.count()) if isinstance(w := tabs.widget(i), ViewerWindow)]

    def open_study(self, study_uid: str) -> ViewerWindow:
        """Open (or bring forward) the tab of `study_uid`."""
        tabs = self._window.tabs
        for viewer in self.viewers():
            if viewer.study_uid == study_uid and not viewer.closed:
                tabs.setCurrentWidget(viewer)
                return viewer
        window = self._window
        viewer = ViewerWindow(
            window.cache, study_uid, window.config, isolated=window.station.decoder
        )
        viewer.setWindowFlags(viewer.windowFlags() & ~viewer.windowFlags().Window)
        index = window.add_tab(viewer, PENDING_TITLE)
        viewer.study_loaded.connect(self._retitle)
        close = QToolButton(tabs)
        close.setIcon(qta.icon("mdi6.close"))
        close.setAutoRaise(True)
        close.setToolTip("Close this study")
        close.clicked.connect(lambda: self.close_viewer(viewer))
        tabs.tabBar().setTabButton(index, QTabBar.ButtonPosition.RightSide, close)
        tabs.setCurrentIndex(index)
        return viewer

    def _retitle(self) -> None:
        """The tab shows the patient once the viewer has read the study (and after edits)."""
        viewer = self.sender()
        index = self._window.tabs.indexOf(viewer)
        if isinstance(viewer, ViewerWindow) and index >= 0:
            self._window.tabs.setTabText(index, viewer.patient_label() or PENDING_TITLE)

    def close_viewer(self, viewer: ViewerWindow) -> None:
        """Stop the viewer's decoding threads and remove its tab."""
        index = self._window.tabs.indexOf(viewer)
        viewer.shutdown()
        if index >= 0:
            self._window.tabs.removeTab(index)
        viewer.deleteLater()

    def on_cache_changed(self, event: CacheChanged) -> None:
        for viewer in self.viewers():
            viewer.on_cache_changed(event.changes)

    def shutdown(self) -> None:
        """Stop every tab's threads (the main window is closing)."""
        for viewer in self.viewers():
            viewer.shutdown()


def open_study(window: Any, study_uid: str) -> ViewerWindow:
    """Open (or bring forward) a viewer tab for `study_uid` in the main window."""
    return window.viewers.open_study(study_uid)


def close_viewer(window: Any, viewer: ViewerWindow) -> None:
    window.viewers.close_viewer(viewer)


def install(window: Any) -> None:
    """Open the viewer on double-click / Enter in the study list and from the Study menu;
    open viewers follow the cache (new, edited and removed instances)."""
    window.viewers = ViewerTabs(window)
    window.add_study_action(
        "Open in viewer", lambda uids: [open_study(window, u) for u in uids[:4]]
    )
