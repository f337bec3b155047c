"""Slice planes from the header, the nearest slice of another series (synchronised
scrolling) and reference lines between orthogonal series, without Qt."""

from __future__ import annotations

import pytest
from factory import make_ct
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from gearview.imaging.geometry import (
    SeriesGeometry,
    SlicePlane,
    pixel_spacing,
    plane_of,
    reference_line,
)

FOR = "1.2.3.4"
AXIAL = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
SAGITTAL = ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0))
CORONAL = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0))


def _plane(origin, orientation, spacing=(1.0, 1.0), size=200, space=FOR) -> SlicePlane:
    return SlicePlane(origin, *orientation, spacing, size, size, space)


def _axial(z: float, **kw) -> SlicePlane:
    return _plane((-100.0, -100.0, z), AXIAL, **kw)


def test_plane_of_a_slice_from_position_orientation_and_spacing() -> None:
    ds = make_ct(generate_uid(), generate_uid(), 7, rows=32, cols=48)
    ds.FrameOfReferenceUID = FOR
    ds.ImageOrientationPatient = [0, 2, 0, 0, 0, -1]  # not normalised in the file
    plane = plane_of(ds)
    assert plane == SlicePlane((0.0, 0.0, 7.0), *SAGITTAL, (0.5, 0.5), 32, 48, FOR)
    assert list(plane.normal) == [-1.0, 0.0, 0.0]
    assert list(plane.to_patient(0.5, 0.5)) == [0.0, 0.0, 7.0]  # the first pixel's centre
    assert list(plane.to_patient(2.5, 4.5)) == [0.0, 1.0, 5.0]


def test_plane_of_an_enhanced_frame_uses_its_functional_groups() -> None:
    ds = make_ct(generate_uid(), generate_uid())
    del ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing
    shared, frames = Dataset(), []
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [0.8, 0.6]
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = [orientation], [measures]
    for z in (10.0, 12.5):
        position, item = Dataset(), Dataset()
        position.ImagePositionPatient = [1.0, 2.0, z]
        item.PlanePositionSequence = [position]
        frames.append(item)
    ds.SharedFunctionalGroupsSequence, ds.PerFrameFunctionalGroupsSequence = [shared], frames
    assert plane_of(ds, 1).origin == (1.0, 2.0, 12.5)
    assert plane_of(ds, 1).spacing == (0.8, 0.6) == pixel_spacing(ds, 1)


def test_no_plane_without_position_orientation_or_spacing() -> None:
    ds = make_ct(generate_uid(), generate_uid())
    del ds.ImagePositionPatient
    assert plane_of(ds) is None
    ds = make_ct(generate_uid(), generate_uid())
    ds.ImageOrientationPatient = [1, 0, 0, 1, 0, 0]  # rows and columns the same way
    assert plane_of(ds) is None
    ds = make_ct(generate_uid(), generate_uid())
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.2, 0.2]  # a projection: measurable, not placed in space
    assert plane_of(ds) is None and pixel_spacing(ds) == (0.2, 0.2)


def test_sync_picks_the_nearest_slice_by_position_not_by_index() -> None:
    # the other series runs the other way, 1.5 mm apart, and starts elsewhere
    other = SeriesGeometry([_axial(z) for z in (9.0, 7.5, 6.0, 4.5, 3.0, 1.5, 0.0)])
    assert other.nearest(_axial(4.0)) == 3  # z 4.5 (index 4 would be z 3.0)
    assert other.nearest(_axial(0.2)) == 6
    assert other.nearest(_axial(50.0)) == 0  # beyond its end: its last slice that way
    # tilted by 5° about its centre (z 4.0): still parallel enough, still nearest z 4.5
    tilted = _plane((-100.0, -100.0, 4.0 - 99.5 * 0.087), ((1, 0, 0), (0, 0.996, 0.087)))
    assert tilted.centre()[2] == pytest.approx(4.0)
    assert other.nearest(tilted) == 3


def test_sync_needs_the_same_frame_of_reference_and_parallel_slices() -> None:
    other = SeriesGeometry([_axial(z) for z in range(5)])
    assert other.nearest(_axial(2.0, space="9.9")) is None
    assert other.nearest(_axial(2.0, space="")) is None
    assert other.nearest(_plane((0.0, -100.0, 100.0), SAGITTAL)) is None
    gaps = SeriesGeometry([None, _axial(3.0), None])  # slices without a plane are skipped
    assert gaps.nearest(_axial(0.0)) == 1
    assert SeriesGeometry([None]).nearest(_axial(0.0)) is None


def test_reference_line_of_an_axial_slice_on_a_sagittal_image() -> None:
    sagittal = _plane((0.0, -100.0, 100.0), SAGITTAL)
    line = reference_line(_axial(20.0), sagittal)
    assert sorted(line) == [(0.0, pytest.approx(80.5)), (200.0, pytest.approx(80.5))]
    # rows 0.5 mm apart: z = 100 - (y - 0.5) * 0.5
    fine = _plane((0.0, -100.0, 100.0), SAGITTAL, spacing=(0.5, 1.0))
    assert sorted(reference_line(_axial(20.0), fine)) == [
        (0.0, pytest.approx(160.5)),
        (200.0, pytest.approx(160.5)),
    ]


def test_reference_line_of_a_sagittal_slice_on_an_axial_image() -> None:
    sagittal = _plane((-30.0, -100.0, 100.0), SAGITTAL)
    line = reference_line(sagittal, _axial(0.0))
    assert sorted(line) == [(pytest.approx(70.5), 0.0), (pytest.approx(70.5), 200.0)]
    coronal = _plane((-100.0, 25.0, 100.0), CORONAL)
    assert sorted(reference_line(coronal, _axial(0.0))) == [
        (0.0, pytest.approx(125.5)),
        (200.0, pytest.approx(125.5)),
    ]


def test_no_reference_line_when_parallel_elsewhere_or_outside() -> None:
    sagittal = _plane((0.0, -100.0, 100.0), SAGITTAL)
    assert reference_line(_axial(5.0), _axial(0.0)) is None
    assert reference_line(_axial(20.0, space="other"), sagittal) is None
    assert reference_line(_axial(500.0), sagittal) is None  # above the sagittal image
