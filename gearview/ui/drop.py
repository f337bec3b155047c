"""Drop a folder, a disc, an ISO image or a zip onto the main window to import it.

The drop opens the import dialog on the dropped path and starts scanning it
there (on the dialog's workers); what cannot be imported is said by the scan,
so deciding whether to accept the drag needs no disk access on the GUI
thread. Several dropped items: the first is scanned, the status bar says so.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, QUrl
from PySide6.QtGui import QDropEvent

STATUS_MS = 10_000


def local_paths(urls: list[QUrl]) -> list[str]:
    return [url.toLocalFile() for url in urls if url.isLocalFile() and url.toLocalFile()]


class DropToImport(QObject):
    """An event filter on the main window: local files and folders dropped -> import."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        window.setAcceptDrops(True)
        window.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        kinds = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)
        if event.type() in kinds and isinstance(event, QDropEvent):  # the drag events too
            paths = local_paths(event.mimeData().urls())
            if paths:
                event.acceptProposedAction()
                if event.type() == QEvent.Type.Drop:
                    self.dropped(paths)
                return True
        return super().eventFilter(watched, event)

    def dropped(self, paths: list[str]) -> None:
        from gearview.ui.import_dialog import open_import_dialog

        self.window.import_dialog = open_import_dialog(self.window, paths[0])
        if len(paths) > 1:
            self.window.statusBar().showMessage(
                f"{len(paths)} items dropped: scanning the first; drop the others one at a time",
                STATUS_MS,
            )


def install(window: Any) -> None:
    window.drop_to_import = DropToImport(window)
