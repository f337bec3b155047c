"""The viewer's series strip: one thumbnail per series of the study.

Thumbnails are rendered on the viewer's workers at background priority;
one that arrives after the list was refilled (the study changed) is dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from gearview.ui.viewer.model import (
    KIND_GSPS,
    KIND_IMAGE,
    KIND_PDF,
    KIND_SR,
    FrameResult,
    SeriesModel,
    StudyModel,
)

THUMB = 96
#: Asks for a series' thumbnail: (series, deliver) -> None, `deliver` called on the GUI thread.
ThumbnailRequest = Callable[[SeriesModel, Callable[[FrameResult], None]], None]


def kind_icon(kind: str) -> QIcon:
    name = {
        KIND_SR: "mdi6.file-document-outline",
        KIND_PDF: "mdi6.file-pdf-box",
        KIND_GSPS: "mdi6.layers-outline",
    }.get(kind, "mdi6.image-outline")
    return qta.icon(name, color="#9aa0a6")


class SeriesList(QListWidget):
    """Series thumbnails top to bottom; `chosen` says which one the user picked."""

    chosen = Signal(object)  # SeriesModel

    def __init__(self, request_thumbnail: ThumbnailRequest, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._request_thumbnail = request_thumbnail
        self._generation = 0
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.TopToBottom)
        self.setWrapping(False)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setMovement(QListWidget.Movement.Static)
        self.setMinimumWidth(THUMB + 40)
        self.itemActivated.connect(self._activated)
        self.itemClicked.connect(self._activated)

    def fill(self, model: StudyModel) -> None:
        self._generation += 1
        generation = self._generation
        self.clear()
        for row, series in enumerate(model.series):
            text = f"{series.title}\n{len(series.slices)} im"
            item = QListWidgetItem(kind_icon(series.kind), text)
            item.setData(Qt.ItemDataRole.UserRole, series)
            item.setToolTip(series.title)
            self.addItem(item)
            if series.kind == KIND_IMAGE:
                self._request_thumbnail(
                    series, lambda result, row=row: self._thumbnail(generation, row, result)
                )

    def _thumbnail(self, generation: int, row: int, result: FrameResult) -> None:
        if generation == self._generation and result.image is not None:
            self.item(row).setIcon(QIcon(QPixmap.fromImage(result.image)))

    def _activated(self, item: QListWidgetItem) -> None:
        series = item.data(Qt.ItemDataRole.UserRole)
        if series is not None:
            self.chosen.emit(series)
