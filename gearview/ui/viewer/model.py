"""What the viewer shows: a study's series as flat lists of (instance, frame) slices,
and the worker-side calls that open headers and render frames into QImages.

Everything here that touches disk runs on a worker thread; the GUI thread
only receives finished `StudyModel`s and `FrameResult`s.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from pydicom import uid as dcm_uid
from pydicom.uid import UID
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from gearview.conformance import sop_class_name
from gearview.imaging import (
    FrameCache,
    ImageSource,
    RenderedFrame,
    RenderOptions,
    Window,
    render_frame,
)
from gearview.imaging.errors import ImageError
from gearview.imaging.geometry import SlicePlane, pixel_spacing, plane_of
from gearview.imaging.isolate import IsolatedDecoder
from gearview.imaging.measure import Measurement, RoiStats, frame_roi_stats
from gearview.imaging.presets import Preset, presets_for, window_for_rule
from gearview.imaging.render import modality_frame
from gearview.store import Cache
from gearview.store.records import InstanceRecord, SeriesRecord, StudyRecord

SR_CLASSES = frozenset(
    u
    for u in dcm_uid.__dict__.values()
    if isinstance(u, str) and u.startswith("1.2.840.10008.5.1.4.1.1.88.")
)
PDF_CLASSES = frozenset({dcm_uid.EncapsulatedPDFStorage})
GSPS_CLASSES = frozenset({dcm_uid.GrayscaleSoftcopyPresentationStateStorage})

KIND_IMAGE, KIND_SR, KIND_PDF, KIND_GSPS, KIND_OTHER = "image", "sr", "pdf", "gsps", "other"


def kind_of(record: InstanceRecord) -> str:
    """Which view shows an instance (by SOP class, then by whether it has a pixel matrix)."""
    if record.sop_class_uid in SR_CLASSES:
        return KIND_SR
    if record.sop_class_uid in PDF_CLASSES:
        return KIND_PDF
    if record.sop_class_uid in GSPS_CLASSES:
        return KIND_GSPS
    return KIND_IMAGE if (record.rows or 0) > 0 else KIND_OTHER


@dataclass
class SeriesModel:
    """One series: its instances and the flat list of slices the user scrolls through."""

    record: SeriesRecord
    instances: list[InstanceRecord]
    slices: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.slices:
            for i, inst in enumerate(self.instances):
                for frame in range(max(inst.number_of_frames or 1, 1)):
                    self.slices.append((i, frame))

    @cached_property
    def kind(self) -> str:
        """Asked for every frame shown: worked out once (a reload makes a new model)."""
        kinds = {kind_of(inst) for inst in self.instances}
        return kinds.pop() if len(kinds) == 1 else KIND_IMAGE if KIND_IMAGE in kinds else KIND_OTHER

    @property
    def title(self) -> str:
        number = "" if self.record.series_number is None else f"#{self.record.series_number} "
        desc = (
            self.record.series_description or sop_class_name(self.instances[0].sop_class_uid)
            if self.instances
            else self.record.series_description
        )
        return f"{number}{self.record.modality} {desc}".strip()

    def slice(self, position: int) -> tuple[InstanceRecord, int]:
        index, frame = self.slices[position]
        return self.instances[index], frame


@dataclass
class StudyModel:
    record: StudyRecord | None
    series: list[SeriesModel]


def load_study(cache: Cache, study_uid: str) -> StudyModel:
    """Read a study's series and instances from the index (worker thread)."""
    study = cache.study(study_uid)
    by_series: dict[str, list[InstanceRecord]] = {}
    for inst in cache.instances(study_uid=study_uid):
        by_series.setdefault(inst.series_instance_uid, []).append(inst)
    series = [
        SeriesModel(rec, by_series[rec.series_instance_uid])
        for rec in cache.series(study_uid)
        if by_series.get(rec.series_instance_uid)
    ]
    return StudyModel(study, series)


@dataclass(frozen=True)
class FrameInfo:
    """What the GUI needs about a frame besides its pixels, read from the header on the
    worker (enhanced multi-frame headers keep their per-frame groups on disk)."""

    spacing: tuple[float, float] | None = None
    plane: SlicePlane | None = None
    presets: tuple[Preset, ...] = ()


def frame_info(source: ImageSource, frame: int) -> FrameInfo:
    ds = source.ds
    return FrameInfo(pixel_spacing(ds, frame), plane_of(ds, frame), tuple(presets_for(ds, frame)))


#: Frame infos kept (a few hundred bytes each).
INFO_LIMIT = 16384


class SourceCache:
    """Opened instance headers by SOP Instance UID (LRU, thread-safe)."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._items: OrderedDict[str, ImageSource] = OrderedDict()
        self._lock = threading.Lock()

    def uids(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def forget(self, sop_uids: set[str]) -> None:
        with self._lock:
            for uid in sop_uids:
                self._items.pop(uid, None)

    def get(self, record: InstanceRecord) -> ImageSource:
        with self._lock:
            src = self._items.get(record.sop_instance_uid)
            if src is not None:
                self._items.move_to_end(record.sop_instance_uid)
                return src
        src = ImageSource(Path(record.path))
        with self._lock:
            self._items[record.sop_instance_uid] = src
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
        return src


@dataclass
class FrameResult:
    """A rendered frame (or the reason it could not be) for one viewport request."""

    record: InstanceRecord
    frame: int
    source: ImageSource | None
    image: QImage | None = None
    rendered: RenderedFrame | None = None
    error: str = ""
    info: FrameInfo = FrameInfo()


def to_qimage(pixels: np.ndarray) -> QImage:
    """An 8-bit grey or RGB array as a QImage that owns its data."""
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    if pixels.ndim == 2:
        fmt, line = QImage.Format.Format_Grayscale8, width
    else:
        fmt, line = QImage.Format.Format_RGB888, width * 3
    return QImage(pixels.data, width, height, line, fmt).copy()


def needs_isolation(transfer_syntax: str) -> bool:
    """Compressed pixel data goes through C decoders: decode it in a worker process."""
    ts = UID(transfer_syntax)
    return ts.is_compressed and not ts.is_deflated


class Decoder:
    """Headers + frame cache + in-flight bookkeeping shared by a viewer's worker threads.

    When the viewport asks for a frame that read-ahead is already decoding,
    it waits for that decode instead of doing it a second time.
    """

    def __init__(
        self,
        frames: FrameCache,
        sources: SourceCache | None = None,
        isolated: IsolatedDecoder | None = None,
    ) -> None:
        self.frames = frames
        self.sources = sources or SourceCache()
        self.isolated = isolated
        self._inflight: dict[tuple[str, int], threading.Event] = {}
        self._infos: OrderedDict[tuple[str, int], FrameInfo] = OrderedDict()
        self._lock = threading.Lock()

    def forget(self, sop_uids: set[str]) -> None:
        """Drop headers and frames of instances that changed on disk."""
        self.sources.forget(sop_uids)
        self.frames.discard(lambda key: key[0] in sop_uids)
        with self._lock:
            for key in [k for k in self._infos if k[0] in sop_uids]:
                del self._infos[key]

    def info(self, source: ImageSource, frame: int) -> FrameInfo:
        """A frame's FrameInfo, usually worked out by read-ahead before it is shown."""
        key = (source.sop_uid, frame)
        with self._lock:
            found = self._infos.get(key)
        if found is None:
            found = frame_info(source, frame)
            with self._lock:
                self._infos[key] = found
                while len(self._infos) > INFO_LIMIT:
                    self._infos.popitem(last=False)
        return found

    def stored(self, record: InstanceRecord, frame: int) -> tuple[ImageSource, np.ndarray]:
        """Stored values of one frame, from the cache, another thread's decode, or decoded here."""
        source = self.sources.get(record)
        key = (record.sop_instance_uid, frame)
        while True:
            with self._lock:
                arr = self.frames.get(key)
                if arr is not None:
                    return source, arr
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    break
            event.wait(30)
            if self.frames.get(key) is None:
                break  # the other decode failed or was evicted: decode here
        try:
            if self.isolated is not None and needs_isolation(source.transfer_syntax):
                source.geometry  # noqa: B018 - header problems are reported here, not by a worker
                arr = self.isolated.decode(source.path, frame)
            else:
                arr = source.decode(frame)
            self.frames.put(key, arr)
            return source, arr
        finally:
            with self._lock:
                done = self._inflight.pop(key, None)
            if done is not None:
                done.set()


def render_job(
    decoder: Decoder, record: InstanceRecord, frame: int, options: RenderOptions, thumb: int = 0
) -> FrameResult:
    """Decode (or reuse) and render one frame to a QImage; errors become a reason string."""
    source = None
    try:
        source = decoder.sources.get(record)
        if not source.displayable:
            return FrameResult(record, frame, source, error=source.problem)
        source, stored = decoder.stored(record, frame)
        rendered = render_frame(source, frame, stored, options)
    except ImageError as exc:
        return FrameResult(record, frame, source, error=exc.one_line())
    except (MemoryError, RecursionError) as exc:
        return FrameResult(record, frame, source, error=f"cannot display: {type(exc).__name__}")
    image = to_qimage(rendered.pixels)
    if thumb:
        image = image.scaled(
            thumb,
            thumb,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        return FrameResult(record, frame, source, image, rendered)
    return FrameResult(record, frame, source, image, rendered, info=decoder.info(source, frame))


def prefetch_job(decoder: Decoder, record: InstanceRecord, frame: int) -> None:
    """Decode a frame into the cache ahead of the user (errors show when it is displayed)."""
    try:
        source = decoder.sources.get(record)
        if source.displayable:
            decoder.stored(record, frame)
            decoder.info(source, frame)
    except ImageError:
        return


def roi_job(
    decoder: Decoder, record: InstanceRecord, frame: int, measurement: Measurement
) -> RoiStats:
    """An ROI's statistics on the frame's modality values (the frame is usually cached)."""
    source, stored = decoder.stored(record, frame)
    return frame_roi_stats(source, frame, stored, measurement)


def rule_window_job(decoder: Decoder, record: InstanceRecord, frame: int, rule: str) -> Window:
    """The window a computed preset ("Auto", "Full range"...) gives for one frame."""
    source, stored = decoder.stored(record, frame)
    return window_for_rule(rule, modality_frame(source, frame, stored))


def planes_job(
    decoder: Decoder, series: SeriesModel, start: int, stop: int, cancelled: Callable[[], bool]
) -> list[SlicePlane | None]:
    """The planes of slices `start` to `stop` (headers land in the viewer's header cache, so
    scrolling there afterwards does not read them again)."""
    planes: list[SlicePlane | None] = []
    for position in range(start, stop):
        if cancelled():
            break
        record, frame = series.slice(position)
        try:
            planes.append(plane_of(decoder.sources.get(record).ds, frame))
        except ImageError:
            planes.append(None)
    return planes
