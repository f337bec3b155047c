"""Measurements on a frame (Qt-free): distance, angle, rectangle and ellipse ROIs with their
statistics in modality units, kept per frame so each shows only on the image it was drawn on.

Points are image coordinates (see `geometry`); lengths and areas are in mm when the
frame has a pixel spacing (row, column), else in pixels, and the label says which.
ROI statistics are taken over the pixels whose centres lie inside the shape, on the
frame's modality values (Rescale Slope/Intercept or the Modality LUT applied); the
SD is the population standard deviation (numpy's default).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from gearview.imaging.decode import ImageSource
from gearview.imaging.geometry import Point
from gearview.imaging.luts import group_item
from gearview.imaging.render import modality_frame

DISTANCE, ANGLE, RECTANGLE, ELLIPSE = "distance", "angle", "rectangle", "ellipse"
ROI_KINDS = frozenset({RECTANGLE, ELLIPSE})

Spacing = tuple[float, float] | None
#: Which image a measurement belongs to: (SOP Instance UID, frame index).
FrameKey = tuple[str, int]


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the pixels inside an ROI, in the frame's modality unit."""

    pixels: int
    mean: float
    sd: float
    minimum: float
    maximum: float
    unit: str = ""


@dataclass
class Measurement:
    """One measurement: its kind, its points and, for an ROI, the statistics once computed
    (or `note`, why there are none)."""

    kind: str
    points: list[Point]
    stats: RoiStats | None = None
    note: str = ""


@dataclass
class Measurements:
    """The measurements of a viewer, per frame."""

    by_frame: dict[FrameKey, list[Measurement]] = field(default_factory=dict)

    def on(self, key: FrameKey) -> list[Measurement]:
        """The list of frame `key` (kept: what is added to it stays with that frame)."""
        return self.by_frame.setdefault(key, [])

    def forget(self, sop_uids: Iterable[str]) -> None:
        """Drop the measurements of instances that are gone."""
        gone = set(sop_uids)
        for key in [k for k in self.by_frame if k[0] in gone]:
            del self.by_frame[key]


def _scaled(a: Point, b: Point, spacing: Spacing) -> tuple[float, float]:
    """The vector a → b in mm (x along a row: column spacing) or in pixels."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    if spacing is None:
        return dx, dy
    row_mm, col_mm = spacing
    return dx * col_mm, dy * row_mm


def length(a: Point, b: Point, spacing: Spacing) -> float:
    return math.hypot(*_scaled(a, b, spacing))


def angle(a: Point, vertex: Point, b: Point, spacing: Spacing) -> float:
    """The angle at `vertex` between the arms to `a` and `b`, in degrees (0-180), measured
    in the patient (non-square pixels are scaled first)."""
    u, v = _scaled(vertex, a, spacing), _scaled(vertex, b, spacing)
    if math.hypot(*u) == 0 or math.hypot(*v) == 0:
        return 0.0
    return abs(math.degrees(math.atan2(u[0] * v[1] - u[1] * v[0], u[0] * v[0] + u[1] * v[1])))


def area(kind: str, a: Point, b: Point, spacing: Spacing) -> float:
    """The shape's area (mm² or pixels²) from its bounding box corners."""
    width, height = (abs(v) for v in _scaled(a, b, spacing))
    return width * height * (math.pi / 4 if kind == ELLIPSE else 1.0)


def roi_mask(shape: tuple[int, int], kind: str, a: Point, b: Point) -> np.ndarray:
    """Which pixels of a (rows, columns) frame have their centre inside the ROI whose
    bounding box has corners `a` and `b`."""
    rows, columns = shape
    x0, x1 = sorted((a[0], b[0]))
    y0, y1 = sorted((a[1], b[1]))
    ys = np.arange(rows, dtype=np.float64)[:, None] + 0.5
    xs = np.arange(columns, dtype=np.float64)[None, :] + 0.5
    if kind == ELLIPSE:
        rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
        if rx <= 0 or ry <= 0:
            return np.zeros(shape, dtype=bool)
        return ((xs - (x0 + rx)) / rx) ** 2 + ((ys - (y0 + ry)) / ry) ** 2 <= 1.0
    return (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)


def roi_stats(values: np.ndarray, kind: str, a: Point, b: Point, unit: str = "") -> RoiStats:
    """Statistics of `values` (a 2-D modality frame) inside the ROI; 0 pixels when it holds
    no pixel centre."""
    inside = values[roi_mask(values.shape[:2], kind, a, b)]
    if inside.size == 0:
        return RoiStats(0, math.nan, math.nan, math.nan, math.nan, unit)
    return RoiStats(
        pixels=int(inside.size),
        mean=float(inside.mean()),
        sd=float(inside.std()),
        minimum=float(inside.min()),
        maximum=float(inside.max()),
        unit=unit,
    )


def modality_unit(ds: Dataset, frame: int = 0) -> str:
    """The unit of a frame's modality values: Rescale Type, the Modality LUT's type, HU for
    CT, PET's Units; '' when the header does not say."""
    transform = group_item(ds, frame, "PixelValueTransformationSequence")
    for item in (transform, ds):
        if item is not None and str(item.get("RescaleType", "") or "").strip():
            return str(item.RescaleType).strip()
    lut = ds.get("ModalityLUTSequence")
    if lut and str(lut[0].get("ModalityLUTType", "") or "").strip():
        return str(lut[0].ModalityLUTType).strip()
    modality = str(ds.get("Modality", "") or "").upper()
    if modality == "CT":
        return "HU"
    if modality == "PT":
        return str(ds.get("Units", "") or "").strip()
    return ""


def frame_roi_stats(
    source: ImageSource, frame: int, stored: np.ndarray, measurement: Measurement
) -> RoiStats:
    """A worker's part of an ROI: the statistics over the frame's modality values."""
    values = modality_frame(source, frame, stored)
    a, b = measurement.points[:2]
    return roi_stats(values, measurement.kind, a, b, modality_unit(source.ds, frame))


def _number(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 1e5 else f"{value:.4g}"


def labels(measurement: Measurement, spacing: Spacing) -> list[str]:
    """The text drawn beside a measurement."""
    points, kind = measurement.points, measurement.kind
    if kind == DISTANCE and len(points) >= 2:
        unit = "mm" if spacing else "px"
        return [f"{length(points[0], points[1], spacing):.1f} {unit}"]
    if kind == ANGLE and len(points) >= 3:
        return [f"{angle(points[0], points[1], points[2], spacing):.1f}°"]
    if kind not in ROI_KINDS or len(points) < 2:
        return []
    size = area(kind, points[0], points[1], spacing)
    out = [f"area {size:.1f} mm²" if spacing else f"area {size:.0f} px² (no pixel spacing)"]
    stats = measurement.stats
    if stats is not None and stats.pixels:
        unit = f" {stats.unit}" if stats.unit else ""
        out.insert(0, f"mean {_number(stats.mean)}{unit}  SD {_number(stats.sd)}")
        out.append(f"min {_number(stats.minimum)}  max {_number(stats.maximum)}")
    elif measurement.note:
        out.append(measurement.note)
    return out
