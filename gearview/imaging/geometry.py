"""Where a frame lies in the patient (Qt-free): pixel spacing, the slice plane from Image
Position/Orientation (Patient), the nearest slice of another series and reference lines.

Image coordinates are the viewer's: x to the right along a row, y down along a
column, pixel (column c, row r) covering [c, c+1) × [r, r+1), so its centre is
(c + 0.5, r + 0.5). Image Position (Patient) is the centre of the first pixel
(PS3.3 C.7.6.2.1.1). Enhanced multi-frame images take the per-frame (else the
shared) Plane Position, Plane Orientation and Pixel Measures functional groups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pydicom.dataset import Dataset

from gearview.imaging.luts import floats, group_item

#: Planes whose normals are closer than this (cosine) count as parallel: no reference
#: line between them, and synchronised scrolling only between them (about 10°).
PARALLEL_COS = 0.985

Point = tuple[float, float]


def _pair(value: object) -> tuple[float, float] | None:
    numbers = floats(value)
    if len(numbers) < 2 or numbers[0] <= 0 or numbers[1] <= 0:
        return None
    return numbers[0], numbers[1]


def _grid_spacing(ds: Dataset, frame: int) -> tuple[float, float] | None:
    """Pixel Spacing of the patient grid: Pixel Measures, else the top-level attribute."""
    measures = group_item(ds, frame, "PixelMeasuresSequence")
    found = _pair(measures.get("PixelSpacing")) if measures is not None else None
    return found or _pair(ds.get("PixelSpacing"))


def pixel_spacing(ds: Dataset, frame: int = 0) -> tuple[float, float] | None:
    """Row and column spacing in mm for measuring: the grid's, else Imager Pixel Spacing
    (projection radiographs, at the detector)."""
    return _grid_spacing(ds, frame) or _pair(ds.get("ImagerPixelSpacing"))


@dataclass(frozen=True)
class SlicePlane:
    """One frame's plane in patient coordinates (mm).

    `row` is the direction of a row (x grows), `column` that of a column (y
    grows); `spacing` is (row spacing, column spacing) = (mm between rows,
    mm between columns), in Pixel Spacing's order.
    """

    origin: tuple[float, float, float]
    row: tuple[float, float, float]
    column: tuple[float, float, float]
    spacing: tuple[float, float]
    rows: int
    columns: int
    frame_of_reference: str = ""

    @cached_property
    def normal(self) -> np.ndarray:
        return np.cross(self.row, self.column)

    def to_patient(self, x: float, y: float) -> np.ndarray:
        """The patient point at image coordinates (x, y)."""
        row_mm, col_mm = self.spacing
        return (
            np.asarray(self.origin)
            + (x - 0.5) * col_mm * np.asarray(self.row)
            + (y - 0.5) * row_mm * np.asarray(self.column)
        )

    def centre(self) -> np.ndarray:
        return self.to_patient(self.columns / 2, self.rows / 2)

    def corners(self) -> list[Point]:
        """The image's outline in image coordinates, clockwise from the top left."""
        return [
            (0.0, 0.0),
            (float(self.columns), 0.0),
            (float(self.columns), float(self.rows)),
            (0.0, float(self.rows)),
        ]


def _unit(values: Sequence[float]) -> tuple[float, float, float] | None:
    """A direction cosine triplet, normalised (plain floats: this runs for every frame)."""
    x, y, z = values
    length = math.sqrt(x * x + y * y + z * z)
    if not math.isfinite(length) or length < 1e-6:
        return None
    return x / length, y / length, z / length


def plane_of(ds: Dataset, frame: int = 0) -> SlicePlane | None:
    """The plane of frame `frame`, or None when the header does not place it in space."""
    position = group_item(ds, frame, "PlanePositionSequence")
    orientation = group_item(ds, frame, "PlaneOrientationSequence")
    origin = floats((position or ds).get("ImagePositionPatient"))
    cosines = floats((orientation or ds).get("ImageOrientationPatient"))
    spacing = _grid_spacing(ds, frame)
    try:
        rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    except (TypeError, ValueError):
        return None
    if len(origin) < 3 or len(cosines) < 6 or spacing is None or rows <= 0 or columns <= 0:
        return None
    row, column = _unit(cosines[:3]), _unit(cosines[3:6])
    if (
        row is None
        or column is None
        or abs(sum(r * c for r, c in zip(row, column, strict=True))) > 0.1
    ):
        return None
    return SlicePlane(
        origin=(origin[0], origin[1], origin[2]),
        row=row,
        column=column,
        spacing=spacing,
        rows=rows,
        columns=columns,
        frame_of_reference=str(ds.get("FrameOfReferenceUID", "") or ""),
    )


def parallel(a: SlicePlane, b: SlicePlane) -> bool:
    return abs(float(np.dot(a.normal, b.normal))) >= PARALLEL_COS


def same_space(a: SlicePlane | None, b: SlicePlane | None) -> bool:
    """Both placed, in one Frame of Reference (coordinates of different ones do not mix)."""
    return (
        a is not None
        and b is not None
        and bool(a.frame_of_reference)
        and a.frame_of_reference == b.frame_of_reference
    )


class SeriesGeometry:
    """The planes of a series' slices in scrolling order (None where a slice has none)."""

    def __init__(self, planes: Sequence[SlicePlane | None]) -> None:
        self.planes = list(planes)
        missing = (np.nan,) * 3
        self._centres = np.array(
            [p.centre() if p is not None else missing for p in self.planes], dtype=np.float64
        ).reshape(-1, 3)
        self._normals = np.array(
            [p.normal if p is not None else missing for p in self.planes], dtype=np.float64
        ).reshape(-1, 3)
        self._spaces = np.array(
            [p.frame_of_reference if p is not None else "" for p in self.planes], dtype=object
        )

    def plane(self, position: int) -> SlicePlane | None:
        return self.planes[position] if 0 <= position < len(self.planes) else None

    def nearest(self, reference: SlicePlane) -> int | None:
        """The slice closest to `reference` along its normal: for synchronised scrolling of
        a series with other spacing, order or extent. None unless some slices lie in the
        same Frame of Reference, parallel to `reference`."""
        if not reference.frame_of_reference or not self.planes:
            return None
        normal = reference.normal
        with np.errstate(invalid="ignore"):
            usable = (self._spaces == reference.frame_of_reference) & (
                np.abs(self._normals @ normal) >= PARALLEL_COS
            )
        if not usable.any():
            return None
        offsets = np.abs((self._centres - reference.centre()) @ normal)
        offsets[~usable] = np.inf
        return int(np.argmin(offsets))


def reference_line(active: SlicePlane, other: SlicePlane) -> tuple[Point, Point] | None:
    """Where the plane of `active` cuts the image of `other`, as a segment in `other`'s image
    coordinates; None for another Frame of Reference, parallel planes or no crossing."""
    if not same_space(active, other) or parallel(active, other):
        return None
    normal = active.normal
    start = np.asarray(active.origin)

    def distance(point: Point) -> float:
        return float(np.dot(other.to_patient(*point) - start, normal))

    corners = other.corners()
    found: list[Point] = []
    for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
        da, db = distance(a), distance(b)
        if da == 0.0:
            found.append(a)
        if (da < 0.0 < db) or (db < 0.0 < da):
            t = da / (da - db)
            found.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
    unique: list[Point] = []
    for point in found:
        if all(abs(point[0] - q[0]) + abs(point[1] - q[1]) > 1e-9 for q in unique):
            unique.append(point)
    if len(unique) < 2:
        return None
    pairs = [(p, q) for i, p in enumerate(unique) for q in unique[i + 1 :]]
    return max(pairs, key=lambda pq: (pq[0][0] - pq[1][0]) ** 2 + (pq[0][1] - pq[1][1]) ** 2)
