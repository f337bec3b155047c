"""The study viewer (issue 5): `ViewerWindow(cache, study_uid)` and `install(window)`."""

from __future__ import annotations

from typing import Any

import qtawesome as qta
from PySide6.QtCore import QCoreApplication, QEvent, QObject
from PySide6.QtWidgets import QTabBar, QToolButton

from gearview.imaging.isolate import IsolatedDecoder
from gearview.ui.viewer.window import ViewerWindow

__all__ = ["ViewerWindow", "close_viewer", "install", "open_study", "shutdown_viewers"]


def open_study(window: Any, study_uid: str) -> ViewerWindow:
    """Open (or bring forward) a viewer tab for `study_uid` in the main window."""
    tabs = window.tabs
    for i in range(tabs.count()):
        widget = tabs.widget(i)
        if (
            isinstance(widget, ViewerWindow)
            and widget.study_uid == study_uid
            and not widget._closed
        ):
            tabs.setCurrentIndex(i)
            return widget
    viewer = ViewerWindow(window.cache, study_uid, window.config, isolated=_decoder_for(window))
    viewer.setWindowFlags(viewer.windowFlags() & ~viewer.windowFlags().Window)
    record = window.cache.study(study_uid)
    title = (record.patient_name or record.patient_id or "Study") if record else "Study"
    index = window.add_tab(viewer, title)
    close = QToolButton(tabs)
    close.setIcon(qta.icon("mdi6.close"))
    close.setAutoRaise(True)
    close.setToolTip("Close this study")
    close.clicked.connect(lambda: close_viewer(window, viewer))
    tabs.tabBar().setTabButton(index, QTabBar.ButtonPosition.RightSide, close)
    tabs.setCurrentIndex(index)
    return viewer


def close_viewer(window: Any, viewer: ViewerWindow) -> None:
    """Stop the viewer's decoding threads and remove its tab."""
    index = window.tabs.indexOf(viewer)
    viewer.shutdown()
    if index >= 0:
        window.tabs.removeTab(index)
    viewer.deleteLater()


class _CloseWatcher(QObject):
    """Stops the viewers and their decoder processes when the main window closes."""

    def __init__(self, window: Any, decoder: IsolatedDecoder) -> None:
        super().__init__(window)
        self._window = window
        self._decoder = decoder

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if obj is self._window and event.type() == QEvent.Type.Close:
            shutdown_viewers(self._window)
        return False


def shutdown_viewers(window: Any) -> None:
    """Stop every viewer tab's threads and the shared decoder processes (idempotent)."""
    for i in range(window.tabs.count()):
        widget = window.tabs.widget(i)
        if isinstance(widget, ViewerWindow):
            widget.shutdown()
    decoder = getattr(window, "_viewer_decoder", None)
    if decoder is not None:
        decoder.close()


def _decoder_for(window: Any) -> IsolatedDecoder:
    """One set of decoder processes per main window, started with its first viewer and
    kept for the next ones (starting them costs ~0.4 s); stopped when the window closes."""
    decoder = getattr(window, "_viewer_decoder", None)
    if decoder is None:
        decoder = IsolatedDecoder(workers=2)
        decoder.start()
        window._viewer_decoder = decoder
        window.installEventFilter(_CloseWatcher(window, decoder))
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(decoder.close)
    return decoder


def _cache_changed(window: Any, changes: Any) -> None:
    for i in range(window.tabs.count()):
        widget = window.tabs.widget(i)
        if isinstance(widget, ViewerWindow):
            widget.on_cache_changed(changes)


def install(window: Any) -> None:
    """Open the viewer on double-click / Enter in the study list and from the Study menu;
    open viewers follow the cache (new, edited and removed instances)."""
    window.bridge.cache_changed.connect(lambda changes: _cache_changed(window, changes))
    window.study_activated.connect(lambda uid: open_study(window, uid))
    window.add_study_action(
        "Open in viewer", lambda uids: [open_study(window, u) for u in uids[:4]]
    )
