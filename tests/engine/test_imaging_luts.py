"""The grey-scale steps against hand-computed values on small synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gearview.imaging import luts
from gearview.imaging.luts import FrameParams, Lut, Window


def test_bits_stored_mask_unsigned_drops_high_garbage():
    arr = np.array([0xF000 | 0x0ABC, 0x0FFF, 0x1000], dtype=np.uint16)
    assert luts.mask_bits_stored(arr, 12, signed=False).tolist() == [0x0ABC, 0x0FFF, 0]


def test_bits_stored_signed_12_in_16_sign_extends():
    arr = np.array([0x0FFF, 0x0800, 0x07FF, 0xF001], dtype=np.uint16)
    assert luts.mask_bits_stored(arr, 12, signed=True).tolist() == [-1, -2048, 2047, 1]


def test_rescale_slope_intercept():
    params = FrameParams(slope=2.0, intercept=-1024.0)
    out = luts.apply_modality(np.array([0, 512, 1000], dtype=np.uint16), params)
    assert out.tolist() == [-1024.0, 0.0, 976.0]


def test_modality_lut_clamps_outside_range():
    lut = Lut(first=10, bits=16, data=np.array([100.0, 200.0, 300.0]))
    out = luts.apply_modality(np.array([0, 10, 11, 12, 99]), FrameParams(modality_lut=lut))
    assert out.tolist() == [100.0, 100.0, 200.0, 300.0, 300.0]


def test_linear_window_matches_ps33_formula():
    # c=40, w=400: below c-0.5-(w-1)/2 = -160 → 0, above c-0.5+(w-1)/2 = 239 → 255,
    # x=40 → ((40-39.5)/399 + 0.5) * 255 = 127.82 → 127 (truncated like DCMTK)
    arr = np.array([-1000.0, -160.0, 40.0, 239.0, 239.5, 3000.0])
    out = luts.apply_voi(arr, Window(40, 400))
    assert out.tolist() == [0, 0, 127, 255, 255, 255]


def test_linear_exact_and_sigmoid():
    arr = np.array([-200.0, 0.0, 100.0, 200.0])
    exact = luts.apply_voi(arr, Window(0, 400, function="LINEAR_EXACT"))
    assert exact.tolist() == [0, 127, 191, 255]  # (x-c)/w + 0.5 → 0, .5, .75, 1
    sigmoid = luts.apply_voi(arr, Window(0, 400, function="SIGMOID"))
    expected = np.floor(255 / (1 + np.exp(-4 * arr / 400)) + 1e-7)
    assert sigmoid.tolist() == expected.astype(int).tolist()


def test_monochrome1_inverts_before_quantising():
    arr = np.array([0.0, 40.0, 1000.0])
    normal = luts.apply_voi(arr, Window(40, 400))
    inverse = luts.apply_voi(arr, Window(40, 400), inverse=True)
    assert normal.tolist() == [102, 127, 255]  # u(0) = (0-39.5)/399 + 0.5 = 0.4010
    assert inverse.tolist() == [152, 127, 0]  # floor((1-u)*255), not 255-floor(u*255)


def test_voi_lut_scales_its_output_bits_to_8():
    lut = Lut(first=0, bits=12, data=np.array([0.0, 4095.0, 2048.0]))
    assert luts.apply_voi(np.array([0, 1, 2, 7]), lut=lut).tolist() == [0, 255, 127, 127]


def test_min_max_window_spans_frame():
    out = luts.apply_voi(np.array([-100.0, 0.0, 100.0]))
    assert out.tolist() == [0, 127, 255]


def _enhanced(frames: int = 2) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.PerFrameFunctionalGroupsSequence = Sequence()
    for i in range(frames):
        group = Dataset()
        transform = Dataset()
        transform.RescaleSlope = i + 1
        transform.RescaleIntercept = -10 * i
        voi = Dataset()
        voi.WindowCenter = [100 * (i + 1), 7]
        voi.WindowWidth = [50, 9]
        voi.WindowCenterWidthExplanation = [f"FRAME{i}", "OTHER"]
        group.PixelValueTransformationSequence = Sequence([transform])
        group.FrameVOILUTSequence = Sequence([voi])
        ds.PerFrameFunctionalGroupsSequence.append(group)
    return ds


def test_per_frame_functional_groups_give_per_frame_rescale_and_windows():
    ds = _enhanced()
    p0, p1 = luts.frame_params(ds, 0), luts.frame_params(ds, 1)
    assert (p0.slope, p0.intercept, p1.slope, p1.intercept) == (1.0, 0.0, 2.0, -10.0)
    assert [w.center for w in p1.windows] == [200.0, 7.0]
    assert p1.windows[0].explanation == "FRAME1"


def test_shared_functional_group_used_when_no_per_frame():
    ds = Dataset()
    shared = Dataset()
    transform = Dataset()
    transform.RescaleSlope = 3
    transform.RescaleIntercept = 5
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.WindowCenter = 1
    ds.WindowWidth = 2
    p = luts.frame_params(ds, 4)
    assert (p.slope, p.intercept) == (3.0, 5.0)
    assert p.windows == [Window(1.0, 2.0)]


def test_multiple_windows_and_bad_width_skipped():
    ds = Dataset()
    ds.WindowCenter = [40, 600, 1]
    ds.WindowWidth = [400, 1600, 0]
    ds.WindowCenterWidthExplanation = ["BRAIN", "BONE", "BROKEN"]
    ds.VOILUTFunction = "SIGMOID"
    windows = luts.frame_params(ds).windows
    assert [w.label for w in windows] == ["BRAIN", "BONE"]
    assert {w.function for w in windows} == {"SIGMOID"}


@pytest.mark.parametrize("signed, first, expected", [(False, 65535, 65535), (True, 65535, -1)])
def test_lut_first_value_signed_with_pixels(signed, first, expected):
    item = Dataset()
    item.LUTDescriptor = [3, first, 16]
    item.LUTData = [1, 2, 3]
    assert luts.parse_lut(item, signed).first == expected


@pytest.mark.parametrize(
    "photometric, shape, inverse",
    [
        ("MONOCHROME2", None, False),
        ("MONOCHROME1", None, True),
        ("MONOCHROME2", "INVERSE", True),
        ("MONOCHROME1", "INVERSE", True),
        ("MONOCHROME1", "IDENTITY", False),  # DCMTK lets the shape win; so do we
    ],
)
def test_presentation_lut_shape_decides_inversion(photometric, shape, inverse):
    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    if shape:
        ds.PresentationLUTShape = shape
    assert luts.frame_params(ds).inverse is inverse
