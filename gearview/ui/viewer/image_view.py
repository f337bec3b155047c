"""The image canvas: paints one QImage with zoom, pan, rotation and flips, corner text,
a distance measurement, presentation-state graphics, and a placeholder when a frame
cannot be shown. It emits intent (W/L drag, scroll, zoom); the viewport decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

TOOL_WINDOW, TOOL_PAN, TOOL_MEASURE = "window", "pan", "measure"


@dataclass
class Graphic:
    """A presentation-state annotation in image pixel coordinates."""

    points: list[tuple[float, float]]
    closed: bool = False
    text: str = ""


class ImageView(QWidget):
    """One image with its view transform; all state changes repaint only."""

    window_dragged = Signal(float, float)  # d-centre, d-width in screen pixels
    scrolled = Signal(int)  # +1 / -1 slices
    activated = Signal()  # clicked: becomes the active viewport
    view_changed = Signal()  # zoom/pan/rotation changed (corner text)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(64, 64)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(False)
        self.image: QImage | None = None
        self.placeholder = ""
        self.corners: tuple[str, str, str, str] = ("", "", "", "")
        self.zoom: float | None = None  # None = fit
        self.pan = QPointF(0, 0)
        self.rotation = 0
        self.flip_h = False
        self.flip_v = False
        self.tool = TOOL_WINDOW
        self.pixel_spacing: tuple[float, float] | None = None
        self.measure: tuple[QPointF, QPointF] | None = None
        self.graphics: list[Graphic] = []
        self.active = False
        self._drag_start: QPointF | None = None
        self._drag_button = Qt.MouseButton.NoButton
        self.paint_count = 0
        self.image_paints = 0  # paints that drew an image (benchmarks wait for the first)

    # ---- state ----------------------------------------------------------------------

    def set_image(self, image: QImage | None, placeholder: str = "") -> None:
        """Show a frame, or (image None) a placeholder with the reason."""
        self.image = image
        self.placeholder = placeholder
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.view_changed.emit()  # the fitted zoom (corner text) follows the size

    def fit(self) -> None:
        self.zoom = None
        self.pan = QPointF(0, 0)
        self.view_changed.emit()
        self.update()

    def actual_size(self) -> None:
        self.zoom = 1.0
        self.pan = QPointF(0, 0)
        self.view_changed.emit()
        self.update()

    def rotate(self, degrees: int) -> None:
        self.rotation = (self.rotation + degrees) % 360
        self.view_changed.emit()
        self.update()

    def flip(self, horizontal: bool) -> None:
        if horizontal:
            self.flip_h = not self.flip_h
        else:
            self.flip_v = not self.flip_v
        self.update()

    def reset_view(self) -> None:
        self.zoom, self.pan, self.rotation = None, QPointF(0, 0), 0
        self.flip_h = self.flip_v = False
        self.measure = None
        self.view_changed.emit()
        self.update()

    def zoom_by(self, factor: float) -> None:
        self.zoom = max(0.02, min(self.effective_zoom() * factor, 64.0))
        self.view_changed.emit()
        self.update()

    def fit_zoom(self) -> float:
        if self.image is None or self.image.isNull():
            return 1.0
        w, h = self.image.width(), self.image.height()
        if self.rotation in (90, 270):
            w, h = h, w
        return max(min(self.width() / w, self.height() / h), 1e-3)

    def effective_zoom(self) -> float:
        return self.fit_zoom() if self.zoom is None else self.zoom

    def transform(self) -> QTransform:
        """Image pixel coordinates → widget coordinates."""
        t = QTransform()
        if self.image is None:
            return t
        t.translate(self.width() / 2 + self.pan.x(), self.height() / 2 + self.pan.y())
        t.rotate(self.rotation)
        z = self.effective_zoom()
        t.scale(-z if self.flip_h else z, -z if self.flip_v else z)
        t.translate(-self.image.width() / 2, -self.image.height() / 2)
        return t

    def to_image(self, pos: QPointF) -> QPointF:
        inverted, ok = self.transform().inverted()
        return inverted.map(pos) if ok else pos

    def measurement_text(self) -> str:
        """Length of the measured line: mm with Pixel Spacing (row, column), else pixels."""
        if self.measure is None:
            return ""
        a, b = self.measure
        dx, dy = b.x() - a.x(), b.y() - a.y()
        if self.pixel_spacing:
            row_mm, col_mm = self.pixel_spacing
            return f"{math.hypot(dx * col_mm, dy * row_mm):.1f} mm"
        return f"{math.hypot(dx, dy):.1f} px"

    # ---- painting -------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        if self.image is not None and not self.image.isNull():
            painter.save()
            painter.setRenderHint(
                QPainter.RenderHint.SmoothPixmapTransform, self.effective_zoom() < 1.0
            )
            painter.setTransform(self.transform())
            painter.drawImage(0, 0, self.image)
            painter.restore()
            self.image_paints += 1
            self._paint_graphics(painter)
            self._paint_measure(painter)
        elif self.placeholder:
            painter.setPen(QColor("#ff9a6a"))
            painter.drawText(
                self.rect().adjusted(12, 12, -12, -12),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )
        self._paint_corners(painter)
        if self.active:
            painter.setPen(QPen(QColor("#3d8bfd"), 2))
            painter.drawRect(self.rect().adjusted(1, 1, -1, -1))
        painter.end()
        self.paint_count += 1

    def _paint_corners(self, painter: QPainter) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() * 0.9, 7))
        painter.setFont(font)
        painter.setPen(QColor("#e8e8e8"))
        rect = self.rect().adjusted(6, 4, -6, -4)
        flags = (
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
        )
        for text, flag in zip(self.corners, flags, strict=True):
            if text:
                painter.drawText(rect, flag, text)

    def _paint_measure(self, painter: QPainter) -> None:
        if self.measure is None:
            return
        t = self.transform()
        a, b = t.map(self.measure[0]), t.map(self.measure[1])
        painter.setPen(QPen(QColor("#ffd400"), 1.5))
        painter.drawLine(a, b)
        painter.drawText(b + QPointF(6, -6), self.measurement_text())

    def _paint_graphics(self, painter: QPainter) -> None:
        if not self.graphics:
            return
        t = self.transform()
        painter.setPen(QPen(QColor("#4cff4c"), 1.5))
        for graphic in self.graphics:
            pts = [t.map(QPointF(x, y)) for x, y in graphic.points]
            for a, b in zip(pts, pts[1:], strict=False):
                painter.drawLine(a, b)
            if graphic.closed and len(pts) > 2:
                painter.drawLine(pts[-1], pts[0])
            if graphic.text and pts:
                painter.drawText(QRectF(pts[0], pts[0] + QPointF(400, 40)), graphic.text)

    # ---- input ----------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.activated.emit()
        self._drag_start = event.position()
        self._drag_button = event.button()
        if self.tool == TOOL_MEASURE and event.button() == Qt.MouseButton.LeftButton:
            p = self.to_image(event.position())
            self.measure = (p, p)
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag_start is None:
            return
        delta = event.position() - self._drag_start
        self._drag_start = event.position()
        left = self._drag_button == Qt.MouseButton.LeftButton
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if self._drag_button == Qt.MouseButton.MiddleButton or (
            left and (shift or self.tool == TOOL_PAN)
        ):
            self.pan += delta
            self.view_changed.emit()
            self.update()
        elif left and self.tool == TOOL_MEASURE and self.measure is not None:
            self.measure = (self.measure[0], self.to_image(event.position()))
            self.update()
        elif left:
            self.window_dragged.emit(delta.y(), delta.x())
        elif self._drag_button == Qt.MouseButton.RightButton:
            self.zoom_by(1.0 + delta.y() * -0.01)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._drag_start = None
        self._drag_button = Qt.MouseButton.NoButton

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.fit()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120
        if not steps:
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15**steps)
        else:
            self.scrolled.emit(-1 if steps > 0 else 1)
        event.accept()
