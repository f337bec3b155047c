"""The slice planes of whole series, for synchronised scrolling: read on the viewer's
workers in chunks at background priority, so a 1000-slice series never holds a thread
that a frame the user waits for needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gearview.imaging.geometry import SeriesGeometry, SlicePlane
from gearview.ui.viewer.model import Decoder, SeriesModel, planes_job
from gearview.ui.workers import PRIORITY_BACKGROUND

#: Slices per worker task.
CHUNK = 32


class GeometryReader:
    """Series geometry by Series Instance UID; `ready(series)` when one has been read."""

    def __init__(
        self,
        submit: Callable[..., int],
        decoder: Decoder,
        closed: Callable[[], bool],
        ready: Callable[[SeriesModel], None],
    ) -> None:
        self._submit = submit
        self._decoder = decoder
        self._closed = closed
        self._ready = ready
        self._read: dict[str, SeriesGeometry] = {}
        #: Series being read: the series object and the chunks that have arrived.
        self._pending: dict[str, tuple[SeriesModel, dict[int, list[SlicePlane | None]]]] = {}

    def get(self, series: SeriesModel | None) -> SeriesGeometry | None:
        return self._read.get(series.record.series_instance_uid) if series is not None else None

    def clear(self) -> None:
        """Forget everything (the study was reloaded); chunks still on their way are dropped."""
        self._read.clear()
        self._pending.clear()

    def want(self, series: SeriesModel) -> None:
        uid = series.record.series_instance_uid
        if uid in self._read or uid in self._pending:
            return
        parts: dict[int, list[SlicePlane | None]] = {}
        self._pending[uid] = (series, parts)
        count = len(series.slices)
        for start in range(0, count, CHUNK):
            self._submit(
                planes_job,
                self._decoder,
                series,
                start,
                min(start + CHUNK, count),
                self._closed,
                on_result=lambda planes, start=start: self._arrived(series, parts, start, planes),
                on_error=lambda exc: self._failed(series, parts, exc),
                priority=PRIORITY_BACKGROUND,
            )

    def _current(self, series: SeriesModel, parts: dict[int, Any]) -> bool:
        found = self._pending.get(series.record.series_instance_uid)
        return found is not None and found[1] is parts

    def _arrived(
        self,
        series: SeriesModel,
        parts: dict[int, list[SlicePlane | None]],
        start: int,
        planes: list[SlicePlane | None],
    ) -> None:
        if not self._current(series, parts):
            return
        parts[start] = planes
        if sum(len(p) for p in parts.values()) < len(series.slices):
            return
        del self._pending[series.record.series_instance_uid]
        ordered = [plane for _, chunk in sorted(parts.items()) for plane in chunk]
        self._read[series.record.series_instance_uid] = SeriesGeometry(ordered)
        self._ready(series)

    def _failed(self, series: SeriesModel, parts: dict[int, Any], exc: BaseException) -> None:
        """An unexpected failure: nothing is kept, the next `want` tries again."""
        if self._current(series, parts):
            del self._pending[series.record.series_instance_uid]
