"""The study viewer: series thumbnails, 1×1 / 1×2 / 2×2 viewports, W/L presets, cine,
tools and measurements, synchronised scrolling, reference lines, corner text and the
tag view of the current instance.

`ViewerWindow(cache, study_uid)` works standalone (tests, `python -m`) and as a
tab of the main window (`install(window)` in `gearview.ui.viewer`). What it
shows is computed by the engine (corner text in `imaging.corners`, presets in
`imaging.presets`, measurements in `imaging.measure`, slice planes, the nearest
slice and reference lines in `imaging.geometry`, the element tree in
`edit.tags`); the toolbar and keys live in `controls.py`, the series strip in
`series_list.py`.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable
from typing import Any

import pydicom
import qtawesome as qta
from pydicom.dataset import Dataset
from PySide6.QtCore import QCoreApplication, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QGridLayout,
    QMainWindow,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from gearview.changes import Changes
from gearview.config import Config, ViewerConfig
from gearview.edit.tags import dataset_tree
from gearview.imaging import FrameCache, RenderOptions, Window
from gearview.imaging import gsps as gsps_mod
from gearview.imaging.corners import Corners, Place, ViewState, corner_text
from gearview.imaging.decode import ImageSource
from gearview.imaging.geometry import reference_line
from gearview.imaging.isolate import IsolatedDecoder
from gearview.imaging.measure import Measurements
from gearview.imaging.presets import Preset, presets_for
from gearview.store import Cache
from gearview.ui.tag_tree import TagTree
from gearview.ui.viewer.controls import LAYOUTS, build_toolbar, install_shortcuts
from gearview.ui.viewer.geometry_reader import GeometryReader
from gearview.ui.viewer.model import (
    KIND_GSPS,
    KIND_IMAGE,
    Decoder,
    FrameResult,
    SeriesModel,
    StudyModel,
    load_study,
    needs_isolation,
    prefetch_job,
    render_job,
    roi_job,
    rule_window_job,
)
from gearview.ui.viewer.series_list import THUMB, SeriesList
from gearview.ui.viewer.viewport import ViewerServices, Viewport
from gearview.ui.workers import PRIORITY_BACKGROUND, WorkerPool

log = logging.getLogger(__name__)

MAX_TAG_ITEMS = 5000
DECODE_THREADS = 2


class ViewerWindow(QMainWindow):
    """One study in the viewer."""

    study_loaded = Signal()
    load_failed = Signal(str)

    def __init__(
        self,
        cache: Cache,
        study_uid: str,
        config: Config | ViewerConfig | None = None,
        parent: QWidget | None = None,
        isolated: IsolatedDecoder | None = None,
    ) -> None:
        super().__init__(parent)
        viewer_cfg = config.viewer if isinstance(config, Config) else (config or ViewerConfig())
        self.cache = cache
        self.study_uid = study_uid
        self.model: StudyModel | None = None
        self.pool = WorkerPool(self, max_threads=DECODE_THREADS)
        self.frames = FrameCache(viewer_cfg.frame_cache_bytes)
        # compressed frames decode in worker processes; a main window shares the station's
        self._owns_isolated = isolated is None
        self.isolated = isolated or IsolatedDecoder(workers=DECODE_THREADS)
        self.decoder = Decoder(self.frames, isolated=self.isolated)
        self._presentations: list[Dataset] = []
        self.measurements = Measurements()
        self.services = ViewerServices(
            submit=self._submit,
            render=lambda record, frame, options: render_job(self.decoder, record, frame, options),
            prefetch=lambda record, frame: prefetch_job(self.decoder, record, frame),
            presentation_for=self._presentation_for,
            roi_stats=lambda record, frame, m: roi_job(self.decoder, record, frame, m),
            measurements=self.measurements,
        )
        self.sync = False
        self._syncing = False
        self.reference_lines = True
        #: Slice planes of the shown series (read when sync is turned on).
        self.geometry = GeometryReader(
            self._submit, self.decoder, lambda: self._closed, self._geometry_read
        )
        self._shown_presets: list[str] = []
        self.viewports: list[Viewport] = []
        self.active: Viewport | None = None
        self.cine = QTimer(self)
        self.cine.timeout.connect(self._cine_tick)
        self._closed = False
        self._shown = 1
        self._tags_of = ""
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.setWindowTitle("gearview viewer")
        self.resize(1100, 760)
        self._build()
        self.set_layout("1×1")
        self.reload()

    @property
    def closed(self) -> bool:
        return self._closed

    def patient_label(self) -> str:
        """Who the study belongs to (the main window's tab title); empty until it is read."""
        record = self.model.record if self.model else None
        return (record.patient_name or record.patient_id) if record else ""

    def _submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        """Viewports keep asking after the viewer closed (resizes, late frames): ignore them."""
        return 0 if self._closed else self.pool.submit(fn, *args, **kwargs)

    # ---- construction -------------------------------------------------------------------

    def _build(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        self.grid_host = QWidget(central)
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        outer.addWidget(self.grid_host, 1)
        self.slider = QSlider(Qt.Orientation.Horizontal, central)
        self.slider.valueChanged.connect(self._slider_moved)
        outer.addWidget(self.slider)
        self.setCentralWidget(central)

        self.thumbs = SeriesList(self._request_thumbnail, self)
        self.thumbs.chosen.connect(self._series_chosen)
        dock = QDockWidget("Series", self)
        dock.setObjectName("viewer-series")
        dock.setWidget(self.thumbs)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        self.tags = TagTree(self)
        for column, width in enumerate((110, 170, 32)):
            self.tags.setColumnWidth(column, width)
        self.tags_dock = QDockWidget("Tags", self)
        self.tags_dock.setObjectName("viewer-tags")
        self.tags_dock.setWidget(self.tags)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.tags_dock)
        self.tags_dock.hide()
        controls = build_toolbar(self)
        self.layout_box, self.preset_box = controls.layout_box, controls.preset_box
        self.play_action, self.fps = controls.play_action, controls.fps
        self.status = controls.status
        self.tool_actions = controls.tools
        self.sync_action, self.lines_action = controls.sync_action, controls.lines_action
        install_shortcuts(self)

    # ---- study loading ---------------------------------------------------------------------

    def _study_loaded(self, model: StudyModel) -> None:
        first_load = self.model is None
        self.model = model
        if model.record is not None:
            self.setWindowTitle(f"{model.record.patient_name} — {model.record.study_description}")
        if not model.series:
            self._study_failed("the study has no instances in the local cache")
            return
        firsts = (i for s in model.series for i in s.instances[:1])
        if any(needs_isolation(i.transfer_syntax_uid) for i in firsts):
            self.isolated.start()  # spawn the decoder processes while the header is read
        self.thumbs.fill(model)
        self.geometry.clear()
        if first_load:
            self._presentations.clear()
            for series in (s for s in model.series if s.kind == KIND_GSPS):
                self.pool.submit(
                    pydicom.dcmread,
                    str(series.instances[0].path),
                    on_result=self._presentation_loaded,
                )
            first = next((s for s in model.series if s.kind == KIND_IMAGE), model.series[0])
            images = [s for s in model.series if s.kind == KIND_IMAGE] or model.series
            for i, viewport in enumerate(self.viewports):
                viewport.set_series(images[i % len(images)] if i else first)
        else:
            self._keep_viewports(model)
        self._sync_slider()
        self._want_geometry()
        self.study_loaded.emit()

    def _keep_viewports(self, model: StudyModel) -> None:
        """After a reload, each viewport stays on its series and slice where they still exist."""
        by_uid = {s.record.series_instance_uid: s for s in model.series}
        for viewport in self.viewports:
            old = viewport.series
            new = by_uid.get(old.record.series_instance_uid) if old is not None else None
            if new is None:
                viewport.set_series(model.series[0])
            elif new.kind == KIND_IMAGE and old.kind == KIND_IMAGE:
                viewport.series = new
                viewport.show_position(min(viewport.position, len(new.slices) - 1))
            else:
                viewport.set_series(new)

    def reload(self) -> None:
        """Read the study from the index on a worker (again when instances arrived, were
        edited or removed)."""
        self._submit(
            load_study,
            self.cache,
            self.study_uid,
            on_result=self._study_loaded,
            on_error=lambda exc: self._study_failed(str(exc)),
        )

    def on_cache_changed(self, changes: Changes) -> None:
        """Follow the cache: forget changed instances' headers and frames, then reload."""
        if self.study_uid not in changes.studies:
            return
        stale = changes.instances_updated | changes.instances_removed
        self.measurements.forget(changes.instances_removed)
        if stale:
            self.decoder.forget(stale)
            if self._tags_of in stale:
                self._tags_of = ""  # the Tags dock reads the new file with the next frame
        if self.study_uid in changes.studies_removed:
            self._study_failed("the study was removed from the local cache")
            return
        self.reload()

    def _study_failed(self, message: str) -> None:
        for viewport in self.viewports:
            viewport.view.set_image(None, placeholder=f"cannot open study: {message}")
        self.load_failed.emit(message)

    def _request_thumbnail(
        self, series: SeriesModel, deliver: Callable[[FrameResult], None]
    ) -> None:
        record, frame = series.slice(len(series.slices) // 2)

        def job() -> FrameResult:
            return render_job(self.decoder, record, frame, RenderOptions(), thumb=THUMB)

        self._submit(job, on_result=deliver, priority=PRIORITY_BACKGROUND)

    def _presentation_loaded(self, ds: Dataset) -> None:
        self._presentations.append(ds)
        for viewport in self.viewports:
            viewport.window_override = None
            viewport.request()

    def _presentation_for(
        self, source: ImageSource, frame: int
    ) -> gsps_mod.ImagePresentation | None:
        geo = source.geometry
        for ds in self._presentations:
            found = gsps_mod.presentation_for(ds, source.sop_uid, (geo.rows, geo.columns))
            if found is not None:
                return found
        return None

    # ---- layout and viewports ----------------------------------------------------------------

    def set_layout(self, name: str) -> None:
        rows, cols = LAYOUTS[name]
        wanted = rows * cols
        self._shown = wanted
        while len(self.viewports) < wanted:
            viewport = Viewport(self.services, self.grid_host)
            viewport.corner_info = self._corners
            viewport.activated.connect(lambda v=viewport: self.set_active(v))
            viewport.position_changed.connect(
                lambda pos, v=viewport: self._position_changed(v, pos)
            )
            viewport.frame_shown.connect(lambda result, v=viewport: self._frame_shown(v, result))
            self.viewports.append(viewport)
            if self.model and self.model.series:
                images = [s for s in self.model.series if s.kind == KIND_IMAGE] or self.model.series
                viewport.set_series(images[(len(self.viewports) - 1) % len(images)])
        for viewport in self.viewports:
            self.grid.removeWidget(viewport)
            viewport.hide()
        for i, viewport in enumerate(self.viewports[:wanted]):
            self.grid.addWidget(viewport, i // cols, i % cols)
            viewport.show()
        if self.active is None or self.active not in self.viewports[:wanted]:
            self.set_active(self.viewports[0])
        else:
            self.set_active(self.active)  # the highlight depends on how many are shown
        if self.layout_box.currentText() != name:
            self.layout_box.setCurrentText(name)
        self._want_geometry()

    def set_active(self, viewport: Viewport) -> None:
        if self.active is not None:
            self.active.view.active = False
            self.active.view.update()
        self.active = viewport
        viewport.view.active = self._shown > 1
        viewport.view.update()
        self._sync_slider()
        self._refresh_presets()
        self._update_reference_lines()
        if viewport.last is not None:
            self._show_tags(viewport.last)

    def shown_viewports(self) -> list[Viewport]:
        return self.viewports[: self._shown]

    def on_view(self, fn: Callable[[Any], None]) -> None:
        """Apply `fn` to the active viewport's image view (the view tools)."""
        if self.active is not None:
            fn(self.active.view)

    def set_tool(self, tool: str) -> None:
        """Every viewport's mouse tool; the toolbar shows which one is on."""
        for viewport in self.viewports:
            viewport.view.cancel_drawing()
            viewport.view.tool = tool
        self.tool_actions[tool].setChecked(True)

    def toggle_overlays(self) -> None:
        if self.active is not None:
            self.active.toggle_overlays()

    def toggle_invert(self) -> None:
        if self.active is not None:
            self.active.toggle_invert()

    def reset(self) -> None:
        if self.active is not None:
            self.active.view.reset_view()
            self.active.invert = False
            self.active.use_file_window(0)

    def toggle_tags(self) -> None:
        self.tags_dock.setVisible(not self.tags_dock.isVisible())
        if self.tags_dock.isVisible() and self.active is not None and self.active.last is not None:
            self._show_tags(self.active.last)

    # ---- scrolling and cine ---------------------------------------------------------------------

    def step(self, delta: int) -> None:
        if self.active is not None:
            self.active.step(delta)

    def go_to(self, position: int) -> None:
        if self.active is not None and self.active.count:
            self.active.show_position(min(position, self.active.count - 1))

    def _slider_moved(self, value: int) -> None:
        if self.active is not None and value != self.active.position:
            self.active.show_position(value)

    def _sync_slider(self) -> None:
        viewport = self.active
        self.slider.blockSignals(True)
        self.slider.setRange(0, max((viewport.count if viewport else 1) - 1, 0))
        self.slider.setValue(viewport.position if viewport else 0)
        self.slider.blockSignals(False)

    def _position_changed(self, viewport: Viewport, position: int) -> None:
        if viewport is self.active:
            self._sync_slider()
        if self.sync and not self._syncing:
            self._sync_from(viewport)  # whichever viewport the user scrolls leads

    # ---- synchronised scrolling and reference lines ----------------------------------------------

    def toggle_sync(self) -> None:
        """Scroll the shown series together: the one scrolled leads, the others go to the
        slice nearest in position."""
        self.sync = not self.sync
        self.sync_action.setChecked(self.sync)
        self._want_geometry()
        if self.sync and self.active is not None:
            self._sync_from(self.active)

    def _want_geometry(self) -> None:
        """Read the slice planes of the shown series (on workers) when sync needs them."""
        if not self.sync:
            return
        for viewport in self.shown_viewports():
            if viewport.series is not None and viewport.series.kind == KIND_IMAGE:
                self.geometry.want(viewport.series)

    def _geometry_read(self, series: SeriesModel) -> None:
        if self.sync and self.active is not None:
            self._sync_from(self.active)

    def _sync_from(self, source: Viewport) -> None:
        """Each other shown viewport goes to its slice nearest the source's slice plane."""
        geometry = self.geometry.get(source.series)
        plane = geometry.plane(source.position) if geometry else None
        if plane is None:
            return
        self._syncing = True  # the followers' position changes lead nowhere
        try:
            for viewport in self.shown_viewports():
                target = self.geometry.get(viewport.series)
                if viewport is source or target is None:
                    continue
                nearest = target.nearest(plane)
                if nearest is not None and nearest != viewport.position:
                    viewport.show_position(nearest)
        finally:
            self._syncing = False

    def toggle_reference_lines(self) -> None:
        self.reference_lines = not self.reference_lines
        self.lines_action.setChecked(self.reference_lines)
        self._update_reference_lines()

    def _update_reference_lines(self) -> None:
        """Where the active viewport's slice cuts each other shown image (same frame of
        reference, not parallel), from the planes of the frames on screen."""
        active = self.active
        plane = active.last.info.plane if active is not None and active.last else None
        for viewport in self.viewports:
            lines = []
            other = viewport.last.info.plane if viewport.last is not None else None
            if (
                self.reference_lines
                and self._shown > 1
                and viewport is not active
                and viewport in self.shown_viewports()
                and plane is not None
                and other is not None
            ):
                line = reference_line(plane, other)
                lines = [line] if line is not None else []
            if lines != viewport.view.reference_lines:
                viewport.view.reference_lines = lines
                viewport.view.update()

    def toggle_cine(self) -> None:
        if self.cine.isActive():
            self.stop_cine()
        else:
            self.start_cine()

    def start_cine(self) -> None:
        self.cine.start(max(1, round(1000 / self.fps.value())))
        self.play_action.setChecked(True)
        self.play_action.setIcon(qta.icon("mdi6.stop"))

    def stop_cine(self) -> None:
        self.cine.stop()
        self.play_action.setChecked(False)
        self.play_action.setIcon(qta.icon("mdi6.play"))

    def fps_changed(self, fps: int) -> None:
        if self.cine.isActive():
            self.cine.setInterval(max(1, round(1000 / fps)))

    def _cine_tick(self) -> None:
        viewport = self.active
        if viewport is None or viewport.count < 2:
            self.stop_cine()
            return
        viewport.show_position((viewport.position + 1) % viewport.count)

    # ---- presets ------------------------------------------------------------------------------

    def presets(self) -> list[Preset]:
        """Keys 1..: the presets of the active viewport's frame, by modality (imaging.presets)."""
        viewport = self.active
        last = viewport.last if viewport is not None else None
        if last is not None and last.info.presets:
            return list(last.info.presets)
        if last is not None and last.rendered is not None:
            return []  # a frame without presets: a colour image
        series = viewport.series if viewport is not None else None
        return presets_for(None, modality=series.record.modality if series else "")

    def apply_preset(self, number: int) -> None:
        """Preset `number` (1-based, as the keys 1–9)."""
        presets = self.presets()
        viewport = self.active
        if viewport is None or not 1 <= number <= len(presets):
            return
        preset = presets[number - 1]
        if preset.window is not None:
            viewport.set_window(preset.window)
        elif preset.file_window is not None:
            viewport.use_file_window(preset.file_window)
        elif preset.file_lut is not None:
            viewport.use_file_lut(preset.file_lut)
        elif viewport.last is not None and viewport.last.rendered is not None:
            self._apply_rule(viewport, preset.rule)

    def _apply_rule(self, viewport: Viewport, rule: str) -> None:
        """A computed preset: the window comes from the shown frame's values, on a worker."""
        last, series = viewport.last, viewport.series

        def computed(window: Window) -> None:
            if viewport.series is series:  # not meanwhile replaced by another series
                viewport.set_window(window)

        self._submit(
            rule_window_job, self.decoder, last.record, last.frame, rule, on_result=computed
        )

    def _refresh_presets(self) -> None:
        """The preset box lists the active frame's presets (rebuilt only when they differ)."""
        labels = [preset.label for preset in self.presets()]
        if labels == self._shown_presets:
            return
        self._shown_presets = labels
        self.preset_box.blockSignals(True)
        self.preset_box.clear()
        for i, label in enumerate(labels, 1):
            self.preset_box.addItem(f"{i}  {label}" if i <= 9 else label)
        self.preset_box.setCurrentIndex(-1)  # shows the placeholder: no preset is applied
        self.preset_box.blockSignals(False)

    # ---- per-frame updates ----------------------------------------------------------------------

    def _series_chosen(self, series: SeriesModel) -> None:
        if self.active is not None:
            self.active.set_series(series)
            self._sync_slider()
            self._want_geometry()
            if self.sync:
                self._sync_from(self.active)

    def _frame_shown(self, viewport: Viewport, result: FrameResult) -> None:
        if self._shown > 1:
            self._update_reference_lines()
        if viewport is not self.active:
            return
        self._sync_slider()
        self._refresh_presets()
        if self.tags_dock.isVisible():
            self._show_tags(result)

    def _corners(self, viewport: Viewport) -> Corners:
        result = viewport.last
        ds = result.source.ds if result and result.source else Dataset()
        series = viewport.series
        place = None
        if series and result is not None:
            image, frame = series.slices[viewport.position]
            frames = result.record.number_of_frames or 1
            place = Place(image, len(series.instances), frame, frames)
        view = viewport.view
        return corner_text(
            ds,
            self.model.record if self.model else None,
            series.title if series else "",
            place,
            result.rendered if result else None,
            ViewState(view.effective_zoom(), view.rotation, viewport.invert),
        )

    def _show_tags(self, result: FrameResult) -> None:
        """Fill the Tags dock with the shown instance's elements, read on a worker."""
        if not self.tags_dock.isVisible() or result.source is None:
            return
        sop_uid = result.record.sop_instance_uid
        if sop_uid == self._tags_of:
            return
        self._tags_of = sop_uid
        ds = result.source.ds

        def shown(nodes: list) -> None:
            if self._tags_of == sop_uid:
                self.tags.show_nodes(nodes)

        self._submit(dataset_tree, ds, MAX_TAG_ITEMS, on_result=shown)

    # ---- shutdown ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop cine, drop pending renders and wait for the decoding threads."""
        if self._closed:
            return
        self._closed = True
        self.cine.stop()
        self.pool.shutdown(drop_queued=True)
        if self._owns_isolated:
            self.isolated.close()
        self.frames.clear()
        self.decoder.sources.forget(set(self.decoder.sources.uids()))
        release_memory()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)


def release_memory() -> None:
    """Hand freed frame memory back to the OS: glibc keeps a closed viewer's gigabyte otherwise."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        log.debug("malloc_trim is not available")
