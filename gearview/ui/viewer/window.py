"""The study viewer: series thumbnails, 1×1 / 1×2 / 2×2 viewports, W/L presets, cine,
tools, corner text and the tag view of the current instance.

`ViewerWindow(cache, study_uid)` works standalone (tests, `python -m`) and as a
tab of the main window (`install(window)` in `gearview.ui.viewer`).
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable

import pydicom
import qtawesome as qta
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from PySide6.QtCore import QCoreApplication, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QIcon,
    QKeySequence,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QSlider,
    QSpinBox,
    QToolBar,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gearview.changes import Changes
from gearview.config import Config, ViewerConfig
from gearview.imaging import FrameCache, RenderOptions, Window
from gearview.imaging import gsps as gsps_mod
from gearview.imaging.decode import ImageSource, peek
from gearview.imaging.isolate import IsolatedDecoder
from gearview.imaging.luts import frame_params
from gearview.store import Cache
from gearview.ui.viewer.decoder import PRIORITY_PREFETCH, DecodePool
from gearview.ui.viewer.image_view import TOOL_MEASURE, TOOL_PAN, TOOL_WINDOW
from gearview.ui.viewer.model import (
    KIND_GSPS,
    KIND_IMAGE,
    KIND_PDF,
    KIND_SR,
    Decoder,
    FrameResult,
    SeriesModel,
    StudyModel,
    load_study,
    needs_isolation,
    prefetch_job,
    render_job,
)
from gearview.ui.viewer.viewport import ViewerServices, Viewport

log = logging.getLogger(__name__)

#: (label, centre, width) — keys 1..5; the file's own windows follow on 6..9.
CT_PRESETS: tuple[tuple[str, float, float], ...] = (
    ("CT brain", 40, 80),
    ("CT lung", -600, 1500),
    ("CT bone", 400, 1800),
    ("CT abdomen", 40, 400),
    ("CT mediastinum", 50, 350),
)
LAYOUTS = {"1×1": (1, 1), "1×2": (1, 2), "2×2": (2, 2)}
THUMB = 96
MAX_TAG_ITEMS = 5000


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
        self.pool = DecodePool(self, threads=2)
        self.frames = FrameCache(viewer_cfg.frame_cache_bytes)
        # compressed frames decode in worker processes; shared between the tabs of a main window
        self._owns_isolated = isolated is None
        self.isolated = isolated or IsolatedDecoder(workers=2)
        self.decoder = Decoder(self.frames, isolated=self.isolated)
        self._presentations: list[Dataset] = []
        self.services = ViewerServices(
            submit=self.pool.submit,
            render=lambda record, frame, options: render_job(self.decoder, record, frame, options),
            prefetch=lambda record, frame: prefetch_job(self.decoder, record, frame),
            presentation_for=self._presentation_for,
        )
        self.viewports: list[Viewport] = []
        self.active: Viewport | None = None
        self.cine = QTimer(self)
        self.cine.timeout.connect(self._cine_tick)
        self._closed = False
        self._shown = 1
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.setWindowTitle("gearview viewer")
        self.resize(1100, 760)
        self._build()
        self.set_layout("1×1")
        self.pool.submit(
            load_study,
            cache,
            study_uid,
            on_result=self._study_loaded,
            on_error=lambda exc: self._study_failed(str(exc)),
        )

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

        self.thumbs = QListWidget(self)
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setFlow(QListWidget.Flow.TopToBottom)
        self.thumbs.setWrapping(False)
        self.thumbs.setIconSize(QSize(THUMB, THUMB))
        self.thumbs.setMovement(QListWidget.Movement.Static)
        self.thumbs.setMinimumWidth(THUMB + 40)
        self.thumbs.itemActivated.connect(self._thumb_activated)
        self.thumbs.itemClicked.connect(self._thumb_activated)
        dock = QDockWidget("Series", self)
        dock.setObjectName("viewer-series")
        dock.setWidget(self.thumbs)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

        self.tags = QTreeWidget(self)
        self.tags.setHeaderLabels(["Tag", "Name", "VR", "Value"])
        for column, width in enumerate((110, 170, 32)):
            self.tags.setColumnWidth(column, width)
        self.tags_dock = QDockWidget("Tags", self)
        self.tags_dock.setObjectName("viewer-tags")
        self.tags_dock.setWidget(self.tags)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.tags_dock)
        self.tags_dock.hide()
        self._build_toolbar()
        self._build_shortcuts()

    def _action(
        self, bar: QToolBar, icon: str, text: str, slot: Callable[[], None], checkable: bool = False
    ) -> QAction:
        action = QAction(qta.icon(icon), text, self)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        bar.addAction(action)
        return action

    def _build_toolbar(self) -> None:
        bar = QToolBar("Viewer", self)
        bar.setObjectName("viewer-tools")
        self.addToolBar(bar)
        self.layout_box = QComboBox(bar)
        self.layout_box.addItems(list(LAYOUTS))
        self.layout_box.currentTextChanged.connect(self.set_layout)
        bar.addWidget(self.layout_box)
        self.preset_box = QComboBox(bar)
        self.preset_box.setMinimumContentsLength(14)
        self.preset_box.setPlaceholderText("W/L presets (1–9)")
        self.preset_box.activated.connect(lambda i: self.apply_preset(i + 1))
        bar.addWidget(self.preset_box)
        tools = QActionGroup(self)
        for icon, text, tool in (
            ("mdi6.contrast-box", "Window/level (drag)", TOOL_WINDOW),
            ("mdi6.pan", "Pan (drag)", TOOL_PAN),
            ("mdi6.ruler", "Measure distance (drag)", TOOL_MEASURE),
        ):
            action = self._action(bar, icon, text, lambda t=tool: self.set_tool(t), checkable=True)
            action.setChecked(tool == TOOL_WINDOW)
            tools.addAction(action)
        bar.addSeparator()
        self._action(bar, "mdi6.fit-to-screen", "Fit (F)", lambda: self._on_view(lambda v: v.fit()))
        self._action(
            bar, "mdi6.numeric-1-box", "1:1 (A)", lambda: self._on_view(lambda v: v.actual_size())
        )
        self._action(
            bar, "mdi6.rotate-left", "Rotate left", lambda: self._on_view(lambda v: v.rotate(-90))
        )
        self._action(
            bar,
            "mdi6.rotate-right",
            "Rotate right (R)",
            lambda: self._on_view(lambda v: v.rotate(90)),
        )
        self._action(
            bar,
            "mdi6.flip-horizontal",
            "Flip horizontal (H)",
            lambda: self._on_view(lambda v: v.flip(True)),
        )
        self._action(
            bar,
            "mdi6.flip-vertical",
            "Flip vertical (V)",
            lambda: self._on_view(lambda v: v.flip(False)),
        )
        self._action(bar, "mdi6.invert-colors", "Invert (I)", self.toggle_invert)
        self._action(bar, "mdi6.layers-off-outline", "Overlays on/off (O)", self.toggle_overlays)
        self._action(bar, "mdi6.restore", "Reset (0)", self.reset)
        bar.addSeparator()
        self.play_action = self._action(
            bar, "mdi6.play", "Cine play/stop (Space)", self.toggle_cine, checkable=True
        )
        self.fps = QSpinBox(bar)
        self.fps.setRange(1, 120)
        self.fps.setValue(15)
        self.fps.setSuffix(" fps")
        self.fps.valueChanged.connect(self._fps_changed)
        bar.addWidget(self.fps)
        bar.addSeparator()
        self._action(bar, "mdi6.tag-text", "Tags (T)", self.toggle_tags)
        self.status = QLabel(bar)
        bar.addWidget(self.status)

    def _build_shortcuts(self) -> None:
        keys: list[tuple[str | QKeySequence.StandardKey, Callable[[], None]]] = [
            ("Down", lambda: self.step(1)),
            ("Right", lambda: self.step(1)),
            ("Up", lambda: self.step(-1)),
            ("Left", lambda: self.step(-1)),
            ("PgDown", lambda: self.step(10)),
            ("PgUp", lambda: self.step(-10)),
            ("Home", lambda: self.go_to(0)),
            ("End", lambda: self.go_to(10**9)),
            ("F", lambda: self._on_view(lambda v: v.fit())),
            ("A", lambda: self._on_view(lambda v: v.actual_size())),
            ("R", lambda: self._on_view(lambda v: v.rotate(90))),
            ("H", lambda: self._on_view(lambda v: v.flip(True))),
            ("V", lambda: self._on_view(lambda v: v.flip(False))),
            ("I", self.toggle_invert),
            ("O", self.toggle_overlays),
            ("T", self.toggle_tags),
            ("Space", self.toggle_cine),
            ("0", self.reset),
            ("M", lambda: self.set_tool(TOOL_MEASURE)),
            ("Ctrl++", lambda: self._on_view(lambda v: v.zoom_by(1.25))),
            ("Ctrl+-", lambda: self._on_view(lambda v: v.zoom_by(0.8))),
        ]
        keys += [(str(n), lambda n=n: self.apply_preset(n)) for n in range(1, 10)]
        for key, slot in keys:
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

    # ---- study loading ---------------------------------------------------------------------

    def _study_loaded(self, model: StudyModel) -> None:
        first_load = self.model is None
        self.model = model
        if model.record is not None:
            self.setWindowTitle(f"{model.record.patient_name} — {model.record.description}")
        if not model.series:
            self._study_failed("the study has no instances in the local cache")
            return
        if any(needs_isolation(i.transfer_syntax) for s in model.series for i in s.instances[:1]):
            self.isolated.start()  # spawn the decoder processes while the header is read
        self._fill_thumbnails(model)
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
        self.study_loaded.emit()

    def _fill_thumbnails(self, model: StudyModel) -> None:
        self.thumbs.clear()
        for series in model.series:
            item = QListWidgetItem(
                self._kind_icon(series.kind), f"{series.title}\n{len(series.slices)} im"
            )
            item.setData(Qt.ItemDataRole.UserRole, series)
            item.setToolTip(series.title)
            self.thumbs.addItem(item)
            if series.kind == KIND_IMAGE:
                self._load_thumbnail(item, series)

    def _keep_viewports(self, model: StudyModel) -> None:
        """After a reload, each viewport stays on its series and slice where they still exist."""
        by_uid = {s.record.series_uid: s for s in model.series}
        for viewport in self.viewports:
            old = viewport.series
            new = by_uid.get(old.record.series_uid) if old is not None else None
            if new is None:
                viewport.set_series(model.series[0])
            elif new.kind == KIND_IMAGE and old.kind == KIND_IMAGE:
                viewport.series = new
                viewport.show_position(min(viewport.position, len(new.slices) - 1))
            else:
                viewport.set_series(new)

    def reload(self) -> None:
        """Re-read the study from the index (instances arrived, were edited or removed)."""
        if not self._closed:
            self.pool.submit(
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
        if stale:
            self.decoder.forget(stale)
        if self.study_uid in changes.studies_removed:
            self._study_failed("the study was removed from the local cache")
            return
        self.reload()

    def _study_failed(self, message: str) -> None:
        for viewport in self.viewports:
            viewport.view.set_image(None, placeholder=f"cannot open study: {message}")
        self.load_failed.emit(message)

    @staticmethod
    def _kind_icon(kind: str) -> QIcon:
        name = {
            KIND_SR: "mdi6.file-document-outline",
            KIND_PDF: "mdi6.file-pdf-box",
            KIND_GSPS: "mdi6.layers-outline",
        }.get(kind, "mdi6.image-outline")
        return qta.icon(name, color="#9aa0a6")

    def _load_thumbnail(self, item: QListWidgetItem, series: SeriesModel) -> None:
        record, frame = series.slice(len(series.slices) // 2)

        def job() -> FrameResult:
            return render_job(self.decoder, record, frame, RenderOptions(), thumb=THUMB)

        def done(result: FrameResult) -> None:
            if result.image is not None and not self._closed:
                item.setIcon(QIcon(QPixmap.fromImage(result.image)))

        self.pool.submit(job, on_result=done, priority=PRIORITY_PREFETCH)

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

    def set_active(self, viewport: Viewport) -> None:
        if self.active is not None:
            self.active.view.active = False
            self.active.view.update()
        self.active = viewport
        viewport.view.active = self._shown > 1
        viewport.view.update()
        self._sync_slider()
        self._refresh_presets()
        if viewport.last is not None:
            self._show_tags(viewport.last)

    def _on_view(self, fn: Callable[[object], None]) -> None:
        if self.active is not None:
            fn(self.active.view)

    def set_tool(self, tool: str) -> None:
        for viewport in self.viewports:
            viewport.view.tool = tool

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

    def _fps_changed(self, fps: int) -> None:
        if self.cine.isActive():
            self.cine.setInterval(max(1, round(1000 / fps)))

    def _cine_tick(self) -> None:
        viewport = self.active
        if viewport is None or viewport.count < 2:
            self.stop_cine()
            return
        viewport.show_position((viewport.position + 1) % viewport.count)

    # ---- presets ------------------------------------------------------------------------------

    def presets(self) -> list[tuple[str, Window | int]]:
        """Keys 1..: CT presets, then the file's own windows (as indices into them)."""
        out: list[tuple[str, Window | int]] = [
            (label, Window(c, w, label)) for label, c, w in CT_PRESETS
        ]
        viewport = self.active
        if viewport is not None and viewport.last is not None and viewport.last.source is not None:
            source = viewport.last.source
            if source.displayable:
                for i, window in enumerate(frame_params(source.ds, viewport.last.frame).windows):
                    out.append((f"File: {window.label}", i))
        return out

    def apply_preset(self, number: int) -> None:
        """Preset `number` (1-based, as the keys 1–9)."""
        presets = self.presets()
        if self.active is None or not 1 <= number <= len(presets):
            return
        value = presets[number - 1][1]
        if isinstance(value, Window):
            self.active.set_window(value)
        else:
            self.active.use_file_window(value)

    def _refresh_presets(self) -> None:
        self.preset_box.blockSignals(True)
        self.preset_box.clear()
        for i, (label, _) in enumerate(self.presets(), 1):
            self.preset_box.addItem(f"{i}  {label}" if i <= 9 else label)
        self.preset_box.setCurrentIndex(-1)  # shows the placeholder: no preset is applied
        self.preset_box.blockSignals(False)

    # ---- per-frame updates ----------------------------------------------------------------------

    def _thumb_activated(self, item: QListWidgetItem) -> None:
        series = item.data(Qt.ItemDataRole.UserRole)
        if self.active is not None and series is not None:
            self.active.set_series(series)
            self._sync_slider()

    def _frame_shown(self, viewport: Viewport, result: FrameResult) -> None:
        if viewport is not self.active:
            return
        self._sync_slider()
        if self.preset_box.count() == len(CT_PRESETS) or result.frame == 0:
            self._refresh_presets()
        if self.tags_dock.isVisible():
            self._show_tags(result)

    def _corners(self, viewport: Viewport) -> tuple[str, str, str, str]:
        study = self.model.record if self.model else None
        result = viewport.last
        ds = result.source.ds if result and result.source else Dataset()
        top_left = "\n".join(
            filter(
                None,
                (
                    str(ds.get("PatientName", "") or (study.patient_name if study else "")),
                    str(ds.get("PatientID", "") or (study.patient_id if study else "")),
                    " ".join(
                        filter(
                            None,
                            (
                                str(ds.get("PatientBirthDate", "") or ""),
                                str(ds.get("PatientSex", "") or ""),
                            ),
                        )
                    ),
                ),
            )
        )
        series = viewport.series
        top_right = "\n".join(
            filter(
                None,
                (
                    str(ds.get("StudyDescription", "") or (study.description if study else "")),
                    str(ds.get("StudyDate", "") or (study.study_date if study else "")),
                    series.title if series else "",
                ),
            )
        )
        lines = []
        if series and result is not None:
            inst_index, frame = series.slices[viewport.position]
            lines.append(f"Im: {inst_index + 1}/{len(series.instances)}")
            if (result.record.frames or 1) > 1:
                lines.append(f"Fr: {frame + 1}/{result.record.frames}")
        rendered = result.rendered if result else None
        if rendered is not None and rendered.window is not None:
            lines.append(f"W: {rendered.window.width:g}  L: {rendered.window.center:g}")
        elif rendered is not None and rendered.voi_label:
            lines.append(rendered.voi_label)
        if viewport.invert:
            lines.append("inverted")
        view = viewport.view
        bottom_right = "\n".join(
            filter(
                None,
                (
                    view.measurement_text(),
                    f"Zoom: {view.effective_zoom() * 100:.0f}%"
                    + (f"  Rot: {view.rotation}°" if view.rotation else ""),
                ),
            )
        )
        return top_left, top_right, "\n".join(lines), bottom_right

    def _show_tags(self, result: FrameResult) -> None:
        if not self.tags_dock.isVisible() or result.source is None:
            return
        self.tags.clear()
        budget = [MAX_TAG_ITEMS]
        self.tags.addTopLevelItems(_tag_items(result.source.ds, budget, 0))
        meta = getattr(result.source.ds, "file_meta", None)
        if meta:
            self.tags.insertTopLevelItems(0, _tag_items(meta, budget, 0))

    # ---- shutdown ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop cine, drop pending renders and wait for the decoding threads."""
        if self._closed:
            return
        self._closed = True
        self.cine.stop()
        self.pool.shutdown()
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


def _tag_items(ds: Dataset, budget: list[int], depth: int) -> list[QTreeWidgetItem]:
    """Tree items for a dataset without loading deferred (large) values."""
    items = []
    for tag in list(ds.keys()):
        budget[0] -= 1
        if budget[0] < 0:
            items.append(QTreeWidgetItem(["…", "(more elements not shown)", "", ""]))
            break
        raw = peek(ds, tag)
        if isinstance(raw, RawDataElement) and raw.value is None:
            items.append(
                QTreeWidgetItem(
                    [
                        str(tag),
                        pydicom.datadict.keyword_for_tag(tag),
                        str(raw.VR),
                        f"({raw.length} bytes, not loaded)",
                    ]
                )
            )
            continue
        try:
            elem = ds[tag]
        except Exception as exc:  # noqa: BLE001 - one unreadable element must not hide the others
            items.append(QTreeWidgetItem([str(tag), "", "", f"(unreadable: {exc})"]))
            continue
        if elem.VR == "SQ":
            node = QTreeWidgetItem(
                [str(tag), elem.keyword or elem.name, "SQ", f"{len(elem.value)} item(s)"]
            )
            if depth < 16:
                for n, item in enumerate(elem.value, 1):
                    child = QTreeWidgetItem([f"Item {n}", "", "", ""])
                    child.addChildren(_tag_items(item, budget, depth + 1))
                    node.addChild(child)
            items.append(node)
        else:
            value = elem.value
            if isinstance(value, (bytes, bytearray)):
                text = f"({len(value)} bytes)"
            else:
                text = str(value)
                text = text if len(text) <= 200 else text[:200] + "…"
            items.append(QTreeWidgetItem([str(tag), elem.keyword or elem.name, str(elem.VR), text]))
    return items
