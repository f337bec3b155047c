"""One viewport: a series, the slice shown, its W/L and view state, and the pane for
non-image objects (SR / KOS text, PDF, presentation state summary).

Every frame is rendered on a worker; each request carries a generation number
so a result that arrives after the user has moved on is dropped, and a
request that is already stale when its worker starts does no work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pydicom
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Signal
from PySide6.QtWidgets import QPlainTextEdit, QStackedWidget, QWidget

from gearview.errors import describe_error
from gearview.imaging import RenderOptions, Window
from gearview.imaging import gsps as gsps_mod
from gearview.imaging.decode import ImageSource
from gearview.imaging.measure import ROI_KINDS, Measurement, Measurements, RoiStats
from gearview.imaging.sr import content_text
from gearview.store.records import InstanceRecord
from gearview.ui.viewer.image_view import Graphic, ImageView
from gearview.ui.viewer.model import (
    KIND_GSPS,
    KIND_IMAGE,
    KIND_OTHER,
    KIND_PDF,
    KIND_SR,
    FrameResult,
    SeriesModel,
)
from gearview.ui.workers import PRIORITY_BACKGROUND

log = logging.getLogger(__name__)

PAGE_IMAGE, PAGE_TEXT, PAGE_PDF = 0, 1, 2
PREFETCH = 4


@dataclass
class ViewerServices:
    """What viewports share: the worker pool and the engine-side caches (see ViewerWindow)."""

    submit: Callable[..., int]
    render: Callable[..., FrameResult]
    prefetch: Callable[..., None]
    presentation_for: Callable[[ImageSource, int], gsps_mod.ImagePresentation | None]
    #: An ROI's statistics on a worker: (record, frame, measurement) -> RoiStats.
    roi_stats: Callable[[InstanceRecord, int, Measurement], RoiStats]
    measurements: Measurements


def load_document(path: str, kind: str) -> tuple[str, bytes]:
    """Worker side of a non-image pane: its text, or the PDF bytes."""
    ds = pydicom.dcmread(path, force=True)
    if kind == KIND_SR:
        return content_text(ds), b""
    if kind == KIND_PDF:
        data = ds.get("EncapsulatedDocument")
        if not data:
            return "Encapsulated PDF without a document", b""
        return "", bytes(data)
    if kind == KIND_GSPS:
        return gsps_mod.summary(ds), b""
    return f"{ds.get('SOPClassUID', pydicom.uid.UID('')).name}: nothing to display", b""


class Viewport(QStackedWidget):
    """A series in one cell of the layout."""

    position_changed = Signal(int)
    frame_shown = Signal(object)  # FrameResult
    activated = Signal()

    def __init__(self, services: ViewerServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.view = ImageView(self)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.pdf_view: QWidget | None = None
        self._pdf_doc = None
        self._pdf_buffer: QBuffer | None = None
        self.addWidget(self.view)
        self.addWidget(self.text)
        self.series: SeriesModel | None = None
        self.position = 0
        self.window_override: Window | None = None
        self.window_index = 0
        self.lut_index: int | None = None  # the file's VOI LUT chosen over its windows
        self.invert = False
        self.overlays = True
        self.last: FrameResult | None = None
        self.corner_info: Callable[[Viewport], tuple[str, str, str, str]] | None = None
        self._generation = 0
        self.view.window_dragged.connect(self._drag_window)
        self.view.scrolled.connect(self.step)
        self.view.activated.connect(self.activated)
        self.view.view_changed.connect(self.refresh_corners)
        self.view.measurement_added.connect(self._measured)

    # ---- series and position ---------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self.series.slices) if self.series else 0

    def set_series(self, series: SeriesModel, position: int | None = None) -> None:
        self.series = series
        self.window_override = None
        self.window_index = 0
        self.lut_index = None
        self.last = None
        self.view.graphics = []
        kind = series.kind
        if kind == KIND_IMAGE:
            self.setCurrentIndex(PAGE_IMAGE)
            self.show_position(self.count // 2 if position is None else position)
        else:
            self._show_document(series, kind)

    def _show_document(self, series: SeriesModel, kind: str) -> None:
        self._generation += 1
        generation = self._generation
        record = series.instances[0]
        self.text.setPlainText("loading…")
        self.setCurrentIndex(PAGE_TEXT)

        def done(result: tuple[str, bytes]) -> None:
            if generation == self._generation:
                self._document_loaded(kind, *result)

        def failed(exc: BaseException) -> None:
            if generation == self._generation:
                self.text.setPlainText(f"cannot display: {exc}")

        self.services.submit(
            load_document,
            str(record.path),
            kind if kind != KIND_OTHER else "",
            on_result=done,
            on_error=failed,
        )

    def _document_loaded(self, kind: str, text: str, data: bytes) -> None:
        if kind == KIND_PDF and data:
            self._show_pdf(data)
        else:
            self.text.setPlainText(text)
            self.setCurrentIndex(PAGE_TEXT)

    def _show_pdf(self, data: bytes) -> None:
        from PySide6.QtPdf import QPdfDocument
        from PySide6.QtPdfWidgets import QPdfView

        if self.pdf_view is None:
            self._pdf_doc = QPdfDocument(self)
            view = QPdfView(self)
            view.setDocument(self._pdf_doc)
            view.setPageMode(QPdfView.PageMode.MultiPage)
            view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
            self.pdf_view = view
            self.addWidget(view)
        self._pdf_buffer = QBuffer(self)
        self._pdf_buffer.setData(QByteArray(data))
        self._pdf_buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        self._pdf_doc.load(self._pdf_buffer)
        self.setCurrentIndex(PAGE_PDF)

    @property
    def pdf_document(self):  # noqa: ANN201 - QPdfDocument, imported lazily
        return self._pdf_doc

    def step(self, delta: int) -> None:
        if self.count:
            self.show_position(min(max(self.position + delta, 0), self.count - 1))

    def show_position(self, position: int) -> None:
        """Ask a worker for slice `position`; the view keeps the old frame until it arrives."""
        if not self.series or not self.count:
            return
        position = min(max(position, 0), self.count - 1)
        changed = position != self.position
        self.position = position
        self.request()
        if changed:
            self.position_changed.emit(position)

    def options(self) -> RenderOptions:
        return RenderOptions(
            window=self.window_override,
            window_index=self.window_index,
            voi_lut_index=self.lut_index or 0,
            use_voi_lut=self.lut_index is not None,
            invert=self.invert,
            overlays=self.overlays,
        )

    def request(self) -> None:
        """Render the current slice with the current options (coalesced: latest wins)."""
        if not self.series or self.series.kind != KIND_IMAGE:
            return
        self._generation += 1
        generation = self._generation
        record, frame = self.series.slice(self.position)
        options = self.options()

        def job() -> FrameResult | None:
            if generation != self._generation:
                return None  # the user has already moved on
            return self.services.render(record, frame, options)

        self.services.submit(
            job,
            on_result=lambda r: self._deliver(generation, r),
            on_error=lambda e: self._failed(generation, e),
        )

    def _deliver(self, generation: int, result: FrameResult | None) -> None:
        if result is None or generation != self._generation:
            return
        self.last = result
        presentation = None
        self.view.pixel_spacing = result.info.spacing
        if result.source is not None and result.source.displayable:
            presentation = self.services.presentation_for(result.source, result.frame)
        self.view.graphics = [
            Graphic(a.points, a.closed, a.text)
            for a in (presentation.annotations if presentation else [])
        ]
        if (
            presentation is not None
            and presentation.window is not None
            and self.window_override is None
            and result.rendered is not None
            and not result.rendered.is_color
        ):
            self.window_override = presentation.window
            self.request()
            return
        measurements = (
            self.services.measurements.on((result.record.sop_instance_uid, result.frame))
            if result.image is not None
            else None
        )
        self.view.set_image(result.image, result.error, measurements)
        self.refresh_corners()
        self.frame_shown.emit(result)
        self._prefetch()

    def _failed(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self.view.set_image(None, placeholder=f"cannot display: {exc}")

    def _prefetch(self) -> None:
        """Decode the next few slices into the frame cache while the user looks at this one."""
        if not self.series:
            return
        anchor = self.position
        for pos in range(anchor + 1, min(anchor + 1 + PREFETCH, self.count)):
            record, frame = self.series.slice(pos)
            self.services.submit(
                self._prefetch_one, anchor, record, frame, priority=PRIORITY_BACKGROUND
            )

    def _prefetch_one(self, anchor: int, record: InstanceRecord, frame: int) -> None:
        """Worker side: skip read-ahead the user has already scrolled away from."""
        if abs(self.position - anchor) <= PREFETCH:
            self.services.prefetch(record, frame)

    # ---- measurements ------------------------------------------------------------------

    def _measured(self, measurement: Measurement) -> None:
        """An ROI was drawn on the frame shown: its statistics come from a worker."""
        if measurement.kind not in ROI_KINDS or self.last is None:
            return
        record, frame = self.last.record, self.last.frame

        def done(stats: RoiStats) -> None:
            measurement.stats = stats
            self.view.update()

        def failed(exc: BaseException) -> None:
            measurement.note = f"no statistics: {describe_error(exc)}"
            self.view.update()

        self.services.submit(
            self.services.roi_stats, record, frame, measurement, on_result=done, on_error=failed
        )

    # ---- window / level ---------------------------------------------------------------

    def current_window(self) -> Window | None:
        if self.window_override is not None:
            return self.window_override
        return self.last.rendered.window if self.last and self.last.rendered else None

    def set_window(self, window: Window | None) -> None:
        self.window_override = window
        self.request()

    def use_file_window(self, index: int) -> None:
        self.window_override = None
        self.window_index = index
        self.lut_index = None
        self.request()

    def use_file_lut(self, index: int) -> None:
        self.window_override = None
        self.lut_index = index
        self.request()

    def toggle_overlays(self) -> None:
        self.overlays = not self.overlays
        self.request()

    def toggle_invert(self) -> None:
        self.invert = not self.invert
        self.request()

    def _drag_window(self, d_center: float, d_width: float) -> None:
        base = self.current_window()
        if base is None or (self.last and self.last.rendered and self.last.rendered.is_color):
            return
        scale = max(base.width / 256.0, 0.05)
        width = max(base.width + d_width * scale, 1.0)
        self.set_window(Window(base.center + d_center * scale, width, "", base.function))

    # ---- corner text -------------------------------------------------------------------

    def refresh_corners(self) -> None:
        if self.corner_info is not None:
            self.view.corners = self.corner_info(self)
            self.view.update()
