"""Distance, angle and ROI statistics in modality units, checked against numpy on
synthetic images with a known rescale, without Qt."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from factory import make_ct
from pydicom.uid import generate_uid

from gearview.imaging.decode import ImageSource
from gearview.imaging.errors import ImageError
from gearview.imaging.measure import (
    ANGLE,
    DISTANCE,
    ELLIPSE,
    RECTANGLE,
    Measurement,
    Measurements,
    RoiStats,
    angle,
    frame_roi_stats,
    labels,
    length,
    modality_unit,
    roi_stats,
)

ROWS, COLS = 48, 64


def _source(tmp_path: Path, slope: float, intercept: float, **attrs) -> ImageSource:
    ds = make_ct(generate_uid(), generate_uid(), rows=ROWS, cols=COLS, seed=3)
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    path = tmp_path / f"{generate_uid()}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return ImageSource(path)


def _expected(stored: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    return (stored & 0x0FFF).astype(np.float64) * slope + intercept


def test_rectangle_stats_are_in_modality_units(tmp_path: Path) -> None:
    source = _source(tmp_path, 2.0, -1000.0)
    stored = source.decode(0)
    roi = Measurement(RECTANGLE, [(30.0, 40.0), (10.0, 20.0)])  # drawn up and to the left
    stats = frame_roi_stats(source, 0, stored, roi)
    inside = _expected(stored, 2.0, -1000.0)[20:40, 10:30]  # pixel centres 10.5 ... 29.5
    assert stats == RoiStats(
        400,
        pytest.approx(inside.mean()),
        pytest.approx(inside.std()),
        inside.min(),
        inside.max(),
        "HU",
    )


def test_ellipse_stats_take_the_pixels_whose_centre_is_inside(tmp_path: Path) -> None:
    source = _source(tmp_path, 0.5, 3.0, Modality="MR")
    stored = source.decode(0)
    stats = frame_roi_stats(source, 0, stored, Measurement(ELLIPSE, [(8.0, 4.0), (40.0, 36.0)]))
    ys, xs = np.mgrid[0:ROWS, 0:COLS] + 0.5
    mask = ((xs - 24) / 16) ** 2 + ((ys - 20) / 16) ** 2 <= 1
    values = _expected(stored, 0.5, 3.0)[mask]
    assert stats.pixels == mask.sum() and abs(stats.pixels - math.pi * 16 * 16) < 40
    assert stats.mean == pytest.approx(values.mean()) and stats.sd == pytest.approx(values.std())
    assert stats.unit == ""  # an MR without Rescale Type has no unit


def test_rescale_type_names_the_unit_and_colour_has_no_statistics(tmp_path: Path) -> None:
    assert modality_unit(make_ct("1", "2", modality="PT")) == ""
    pet = make_ct("1", "2", modality="PT")
    pet.Units = "BQML"
    assert modality_unit(pet) == "BQML"
    source = _source(tmp_path, 1.0, 0.0, Modality="MR", RescaleType="US")
    assert (
        frame_roi_stats(
            source, 0, source.decode(0), Measurement(RECTANGLE, [(0.0, 0.0), (4.0, 4.0)])
        ).unit
        == "US"
    )
    rgb = make_ct("1", "2", rows=4, cols=4)
    rgb.SamplesPerPixel, rgb.PhotometricInterpretation, rgb.PlanarConfiguration = 3, "RGB", 0
    rgb.BitsAllocated = rgb.BitsStored = 8
    rgb.HighBit = 7
    rgb.PixelData = bytes(4 * 4 * 3)
    rgb.save_as(tmp_path / "rgb.dcm", enforce_file_format=True)
    colour = ImageSource(tmp_path / "rgb.dcm")
    with pytest.raises(ImageError, match="colour"):
        frame_roi_stats(colour, 0, colour.decode(0), Measurement(RECTANGLE, [(0, 0), (2, 2)]))


def test_an_roi_between_pixel_centres_holds_no_pixel() -> None:
    stats = roi_stats(np.ones((4, 4)), RECTANGLE, (1.6, 1.6), (1.9, 1.9))
    assert stats.pixels == 0 and math.isnan(stats.mean)
    assert labels(Measurement(RECTANGLE, [(1.6, 1.6), (1.9, 1.9)], stats), None) == [
        "area 0 px² (no pixel spacing)"
    ]


def test_lengths_and_angles_in_mm_with_non_square_pixels() -> None:
    spacing = (1.0, 2.0)  # rows 1 mm apart, columns 2 mm
    assert length((0, 0), (30, 40), None) == 50.0
    assert length((0, 0), (3, 4), spacing) == pytest.approx(math.hypot(6, 4))
    assert angle((10, 10), (0, 0), (10, -10), None) == pytest.approx(90.0)
    assert angle((10, 10), (0, 0), (10, -10), spacing) == pytest.approx(
        2 * math.degrees(math.atan(10 / 20))
    )
    assert angle((5, 5), (5, 5), (1, 0), None) == 0.0  # an arm of no length


def test_labels_say_mm_or_pixels() -> None:
    assert labels(Measurement(DISTANCE, [(0, 0), (30, 40)]), (0.5, 0.5)) == ["25.0 mm"]
    assert labels(Measurement(DISTANCE, [(0, 0), (30, 40)]), None) == ["50.0 px"]
    assert labels(Measurement(ANGLE, [(10, 0), (0, 0), (0, 10)]), None) == ["90.0°"]
    stats = RoiStats(400, 40.25, 12.5, -3.0, 97.0, "HU")
    assert labels(Measurement(RECTANGLE, [(0, 0), (20, 20)], stats), (0.5, 0.5)) == [
        "mean 40.2 HU  SD 12.5",
        "area 100.0 mm²",
        "min -3.0  max 97.0",
    ]
    ellipse = Measurement(ELLIPSE, [(0, 0), (20, 10)])
    assert labels(ellipse, None) == [f"area {math.pi * 50:.0f} px² (no pixel spacing)"]
    ellipse.note = "no statistics: gone"
    assert labels(ellipse, None)[-1] == "no statistics: gone"


def test_measurements_belong_to_their_frame() -> None:
    store = Measurements()
    store.on(("1.2.3", 4)).append(Measurement(DISTANCE, [(0, 0), (1, 1)]))
    assert store.on(("1.2.3", 5)) == [] and len(store.on(("1.2.3", 4))) == 1
    store.on(("9.9", 0)).append(Measurement(DISTANCE, [(0, 0), (1, 1)]))
    store.forget({"1.2.3"})
    assert store.on(("1.2.3", 4)) == [] and len(store.on(("9.9", 0))) == 1
