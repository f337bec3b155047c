"""W/L presets by modality and the window shown as integers, without Qt."""

from __future__ import annotations

import numpy as np
import pytest
from factory import make_ct
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from gearview.imaging import Window
from gearview.imaging.corners import window_text
from gearview.imaging.presets import (
    CT_PRESETS,
    RULE_AUTO,
    RULE_FULL,
    RULE_ZERO_HALF,
    RULE_ZERO_MAX,
    Preset,
    presets_for,
    window_for_rule,
)

CT_LABELS = [label for label, _, _ in CT_PRESETS]


def _image(modality: str) -> Dataset:
    ds = make_ct(generate_uid(), generate_uid(), modality=modality)
    ds.WindowCenter, ds.WindowWidth = [30, 300], [60, 1500]
    ds.WindowCenterWidthExplanation = ["SOFT", "BONE"]
    return ds


def test_ct_gets_the_ct_windows_then_the_files_own() -> None:
    presets = presets_for(_image("CT"))
    assert [p.label for p in presets] == [*CT_LABELS, "File: SOFT", "File: BONE"]
    assert presets[1] == Preset("CT lung", window=Window(-600, 1500, "CT lung"))
    assert presets[-1].file_window == 1


@pytest.mark.parametrize("modality", ["MR", "CR", "DX", "MG", "US", "XA"])
def test_other_modalities_get_their_own_windows_and_computed_ones(modality: str) -> None:
    labels = [p.label for p in presets_for(_image(modality))]
    assert labels == ["File: SOFT", "File: BONE", "Auto (1–99 %)", "Full range"]
    assert not set(labels) & set(CT_LABELS)


@pytest.mark.parametrize("modality", ["PT", "NM"])
def test_uptake_images_get_windows_from_zero(modality: str) -> None:
    ds = _image(modality)
    del ds.WindowCenter, ds.WindowWidth, ds.WindowCenterWidthExplanation
    assert [p.rule for p in presets_for(ds)] == [RULE_ZERO_MAX, RULE_ZERO_HALF, RULE_AUTO]


def test_a_files_voi_lut_is_offered_and_colour_gets_nothing() -> None:
    ds = _image("DX")
    lut = Dataset()
    lut.LUTDescriptor, lut.LUTExplanation = [4, 0, 8], "NORMAL"
    lut.LUTData = [0, 80, 160, 255]
    ds.VOILUTSequence = [lut]
    assert [p for p in presets_for(ds) if p.file_lut is not None] == [
        Preset("File LUT: NORMAL", file_lut=0)
    ]
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "RGB", 3
    assert presets_for(ds) == []


def test_before_the_header_is_read_the_series_modality_decides() -> None:
    assert [p.label for p in presets_for(None, modality="CT")] == CT_LABELS
    assert [p.rule for p in presets_for(None, modality="MR")] == [RULE_AUTO, RULE_FULL]


def test_computed_windows_follow_the_frames_values() -> None:
    values = np.arange(1000, dtype=np.float64) - 200  # -200 ... 799
    full = window_for_rule(RULE_FULL, values)
    assert (full.center, full.width, full.function) == (299.5, 999.0, "LINEAR_EXACT")
    lo, hi = np.percentile(values, (1, 99))
    auto = window_for_rule(RULE_AUTO, values)
    assert auto.center == pytest.approx((lo + hi) / 2) and auto.width == pytest.approx(hi - lo)
    assert window_for_rule(RULE_ZERO_MAX, values).center == pytest.approx(399.5)
    assert window_for_rule(RULE_ZERO_HALF, values).width == pytest.approx(399.5)
    assert window_for_rule(RULE_FULL, np.array([np.nan])).width == 1.0


def test_window_shows_as_integers() -> None:
    assert window_text(Window(40.4, 399.6)) == "W: 400  L: 40"
    assert window_text(Window(-600.5, 1500.0)) == "W: 1500  L: -601"
    assert window_text(Window(347.265625, 1234.5)) == "W: 1235  L: 347"
    assert window_text(Window(2.5, 5.0)) == "W: 5.00  L: 2.50"  # SUV: decimals matter
