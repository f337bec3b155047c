"""The image canvas: paints one QImage with zoom, pan, rotation and flips, corner text,
the measurements of the frame shown, reference lines, presentation-state graphics, and
a placeholder when a frame cannot be shown. It emits intent (W/L drag, scroll, zoom, a
finished measurement); the viewport decides. What a measurement says is computed by
`imaging.measure`.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from gearview.imaging import measure
from gearview.imaging.geometry import Point
from gearview.imaging.measure import Measurement

TOOL_WINDOW, TOOL_PAN = "window", "pan"
TOOL_DISTANCE, TOOL_ANGLE = measure.DISTANCE, measure.ANGLE
TOOL_RECTANGLE, TOOL_ELLIPSE = measure.RECTANGLE, measure.ELLIPSE
MEASURE_TOOLS = frozenset({TOOL_DISTANCE, TOOL_ANGLE, TOOL_RECTANGLE, TOOL_ELLIPSE})
#: A drag shorter than this (screen pixels) is a click, not a measurement.
CLICK = 3.0
MEASURE_COLOUR = QColor("#ffd400")
DRAWING_COLOUR = QColor("#ffe97a")
REFERENCE_COLOUR = QColor("#35c8ff")
#: Keys the canvas keeps for itself: Delete / Backspace (last measurement of the frame,
#: with Shift all of them) and Escape (the measurement being drawn).
EDIT_KEYS = frozenset({Qt.Key.Key_Delete, Qt.Key.Key_Backspace, Qt.Key.Key_Escape})


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
    measurement_added = Signal(object)  # a finished Measurement, in `measurements`

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
        #: The shown frame's measurements (the viewer's list for that frame: kept with it).
        self.measurements: list[Measurement] = []
        self.drawing: Measurement | None = None
        self.reference_lines: list[tuple[Point, Point]] = []
        self.graphics: list[Graphic] = []
        self.active = False
        self._drag_start: QPointF | None = None
        self._press_at = QPointF(0, 0)
        self._drag_button = Qt.MouseButton.NoButton
        self.paint_count = 0
        self.image_paints = 0  # paints that drew an image (benchmarks wait for the first)

    # ---- state ----------------------------------------------------------------------

    def set_image(
        self,
        image: QImage | None,
        placeholder: str = "",
        measurements: list[Measurement] | None = None,
    ) -> None:
        """Show a frame with its measurements, or (image None) a placeholder with the reason."""
        self.image = image
        self.placeholder = placeholder
        shown = measurements if measurements is not None else []
        if shown is not self.measurements:
            self.measurements = shown
            self.cancel_drawing()  # it belonged to the frame that is gone
        self.update()

    def cancel_drawing(self) -> None:
        """Forget a measurement that is being drawn (Escape, or another frame came)."""
        self.drawing = None
        self.setMouseTracking(False)
        self.update()

    def remove_measurement(self, everything: bool = False) -> None:
        """Delete the last measurement of the shown frame, or all of them."""
        if everything:
            self.measurements.clear()
        elif self.measurements:
            self.measurements.pop()
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

    def to_image(self, pos: QPointF) -> Point:
        inverted, ok = self.transform().inverted()
        mapped = inverted.map(pos) if ok else pos
        return mapped.x(), mapped.y()

    def to_screen(self, point: Point) -> QPointF:
        return self.transform().map(QPointF(*point))

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
            self._paint_reference_lines(painter)
            for item in self.measurements:
                self._paint_measurement(painter, item, MEASURE_COLOUR)
            if self.drawing is not None:
                self._paint_measurement(painter, self.drawing, DRAWING_COLOUR)
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

    def _paint_measurement(self, painter: QPainter, item: Measurement, colour: QColor) -> None:
        """The shape in image coordinates (a cosmetic pen: the same width at any zoom), its
        labels upright beside it."""
        if len(item.points) < 2:
            return
        pen = QPen(colour, 1.5)
        pen.setCosmetic(True)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setTransform(self.transform())
        painter.setPen(pen)
        points = [QPointF(*p) for p in item.points]
        if item.kind in measure.ROI_KINDS:
            box = QRectF(points[0], points[1]).normalized()
            if item.kind == measure.ELLIPSE:
                painter.drawEllipse(box)
            else:
                painter.drawRect(box)
        else:
            painter.drawPolyline(points)
        painter.restore()
        lines = measure.labels(item, self.pixel_spacing)
        if lines:
            self._paint_labels(painter, [self.to_screen(p) for p in item.points], lines, colour)

    def _paint_labels(
        self, painter: QPainter, shape: list[QPointF], lines: list[str], colour: QColor
    ) -> None:
        """Beside the shape's rightmost point, or left of the shape when that would be cut
        off; dark-edged so they read on bright tissue."""
        metrics = painter.fontMetrics()
        height = metrics.height()
        width = max(metrics.horizontalAdvance(line) for line in lines)
        anchor = max(shape, key=lambda q: q.x())
        x = anchor.x() + 8
        if x + width > self.width() - 4:
            x = max(min(q.x() for q in shape) - 8 - width, 4.0)
        y = min(max(anchor.y(), float(metrics.ascent())), self.height() - height * len(lines))
        for i, line in enumerate(lines):
            at = QPointF(x, y + i * height)
            painter.setPen(Qt.GlobalColor.black)
            painter.drawText(at + QPointF(1, 1), line)
            painter.setPen(colour)
            painter.drawText(at, line)

    def _paint_reference_lines(self, painter: QPainter) -> None:
        if not self.reference_lines:
            return
        pen = QPen(REFERENCE_COLOUR, 1.0, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        for a, b in self.reference_lines:
            painter.drawLine(self.to_screen(a), self.to_screen(b))

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
        self._press_at = event.position()
        self._drag_button = event.button()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if (
            self.tool in MEASURE_TOOLS
            and event.button() == Qt.MouseButton.LeftButton
            and not shift
            and self.image is not None
        ):
            self._measure_press(self.to_image(event.position()))

    def _measure_press(self, point: Point) -> None:
        """Start a measurement; an angle takes its vertex and third point on later clicks."""
        drawing = self.drawing
        if drawing is None:
            self.drawing = Measurement(self.tool, [point, point])
        elif len(drawing.points) == 2:
            drawing.points[1] = point
            drawing.points.append(point)
        else:
            drawing.points[-1] = point
            self._finish()
        self.update()

    def _finish(self) -> None:
        drawing, self.drawing = self.drawing, None
        self.setMouseTracking(False)
        if drawing is not None:
            self.measurements.append(drawing)
            self.measurement_added.emit(drawing)
        self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.drawing is not None:
            self.drawing.points[-1] = self.to_image(event.position())
            self.update()
            if self._drag_start is None:
                return  # an angle's next point follows the pointer between clicks
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
        elif left and self.tool == TOOL_WINDOW:
            self.window_dragged.emit(delta.y(), delta.x())
        elif self._drag_button == Qt.MouseButton.RightButton:
            self.zoom_by(1.0 + delta.y() * -0.01)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        dragged = (event.position() - self._press_at).manhattanLength() > CLICK
        self._drag_start = None
        self._drag_button = Qt.MouseButton.NoButton
        drawing = self.drawing
        if drawing is None or event.button() != Qt.MouseButton.LeftButton:
            return
        if drawing.kind != measure.ANGLE:
            if dragged:
                self._finish()
            else:
                self.cancel_drawing()  # a click is not a measurement
        elif len(drawing.points) == 2 and dragged:
            drawing.points.append(drawing.points[1])  # first arm dragged: now the third point
        self.setMouseTracking(self.drawing is not None)

    def event(self, event: QEvent) -> bool:
        """Delete and Escape belong to the measurements here, even where the main window
        has a shortcut on the same key (its Delete removes studies)."""
        if event.type() == QEvent.Type.ShortcutOverride and event.key() in EDIT_KEYS:
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key == Qt.Key.Key_Escape:
            self.cancel_drawing()
        elif key in EDIT_KEYS:
            everything = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.remove_measurement(everything)
        else:
            super().keyPressEvent(event)

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
