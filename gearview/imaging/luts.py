"""The grey-scale pipeline as pure steps on numpy arrays (PS3.3 C.7.6.3, C.11).

stored values → `mask_bits_stored` → `apply_modality` (rescale or Modality LUT)
→ `apply_voi` (window LINEAR / LINEAR_EXACT / SIGMOID, or VOI LUT) → 8 bits →
`invert` for MONOCHROME1. `frame_params(ds, index)` collects the values one
frame needs, honouring enhanced per-frame and shared functional groups, so
each step takes plain numbers and is easy to check against hand computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Window:
    """One VOI window: centre, width, its explanation and function."""

    center: float
    width: float
    explanation: str = ""
    function: str = "LINEAR"

    @property
    def label(self) -> str:
        return self.explanation or f"C {self.center:g} / W {self.width:g}"


@dataclass(frozen=True)
class Lut:
    """A Modality or VOI LUT: first input value mapped, output bit depth, data."""

    first: int
    bits: int
    data: np.ndarray
    explanation: str = ""


@dataclass
class FrameParams:
    """Everything the grey-scale steps need for one frame."""

    slope: float = 1.0
    intercept: float = 0.0
    modality_lut: Lut | None = None
    windows: list[Window] = field(default_factory=list)
    voi_luts: list[Lut] = field(default_factory=list)
    inverse: bool = False  # MONOCHROME1 or Presentation LUT Shape INVERSE: low values white


def floats(value: object) -> list[float]:
    """A DS value that may be single or multiple, as a list of floats."""
    if value is None or value == "":
        return []
    items = (
        value
        if isinstance(value, (list, tuple))
        or hasattr(value, "__iter__")
        and not isinstance(value, (str, bytes))
        else [value]
    )
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            continue
    return out


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        return [str(value)]


def parse_lut(item: Dataset, signed: bool = False, data_keyword: str = "LUTData") -> Lut | None:
    """A LUT from a Modality/VOI LUT Sequence item (None if malformed)."""
    desc = item.get("LUTDescriptor")
    if desc is None or data_keyword not in item:
        return None
    try:
        count, first, bits = (int(v) for v in list(desc)[:3])
    except (TypeError, ValueError):
        return None
    raw = item[data_keyword].value
    if isinstance(raw, (bytes, bytearray)):
        dtype = np.uint8 if bits <= 8 and len(raw) == (count or 65536) else np.uint16
        data = np.frombuffer(raw, dtype=dtype)
    else:
        data = np.asarray(list(raw) if not isinstance(raw, (int, float)) else [raw], dtype=np.int64)
    if data.size == 0:
        return None
    if signed and first >= 32768:
        first -= 65536  # the first mapped value is SS when the pixels are signed (C.11.1.1)
    bits = bits if 8 <= bits <= 16 else (16 if data.max() > 255 else 8)
    if data.max() >= (1 << bits):
        bits = int(data.max()).bit_length()
    explanation = str(item.get("LUTExplanation", "") or "")
    return Lut(first=first, bits=bits, data=data.astype(np.float64), explanation=explanation)


def group_item(ds: Dataset, index: int, keyword: str) -> Dataset | None:
    """The functional group macro `keyword` for frame `index` (per-frame beats shared)."""
    for groups_kw, idx in (
        ("PerFrameFunctionalGroupsSequence", index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        groups = ds.get(groups_kw)
        if not groups or idx >= len(groups):
            continue
        seq = groups[idx].get(keyword)
        if seq:
            return seq[0]
    return None


def windows_of(item: Dataset) -> list[Window]:
    """Every window of a dataset or functional group item, with its explanation."""
    centers = floats(item.get("WindowCenter"))
    widths = floats(item.get("WindowWidth"))
    explanations = _strings(item.get("WindowCenterWidthExplanation"))
    function = str(item.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    if function not in FUNCTIONS:
        function = "LINEAR"
    out = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        if w <= 0 or (w < 1 and function == "LINEAR"):
            continue
        out.append(Window(c, w, explanations[i].strip() if i < len(explanations) else "", function))
    return out


def display_inverted(ds: Dataset) -> bool:
    """Whether low values show white: Presentation LUT Shape when the image has one
    (as DCMTK does, it wins over the photometric interpretation), else MONOCHROME1."""
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    if shape in ("INVERSE", "IDENTITY"):
        return shape == "INVERSE"
    return str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"


def frame_params(ds: Dataset, index: int = 0) -> FrameParams:
    """Collect rescale, Modality LUT, windows and VOI LUTs for frame `index`."""
    params = FrameParams()
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    params.inverse = display_inverted(ds)
    transform = group_item(ds, index, "PixelValueTransformationSequence")
    source = transform if transform is not None and "RescaleSlope" in transform else ds
    slopes, intercepts = (
        floats(source.get("RescaleSlope")),
        floats(source.get("RescaleIntercept")),
    )
    params.slope = slopes[0] if slopes and slopes[0] != 0 else 1.0
    params.intercept = intercepts[0] if intercepts else 0.0
    if "RescaleSlope" not in source and "RescaleIntercept" not in source:
        mlut_seq = ds.get("ModalityLUTSequence")
        if mlut_seq:
            params.modality_lut = parse_lut(mlut_seq[0], signed)
    voi = group_item(ds, index, "FrameVOILUTSequence")
    params.windows = windows_of(voi) if voi is not None else []
    if not params.windows:
        params.windows = windows_of(ds)
    for item in ds.get("VOILUTSequence") or []:
        lut = parse_lut(item, signed)
        if lut is not None:
            params.voi_luts.append(lut)
    return params


def mask_bits_stored(arr: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Drop bits above Bits Stored and sign-extend signed values (idempotent)."""
    if arr.dtype.kind not in "iu":
        return arr
    width = arr.dtype.itemsize * 8
    if bits_stored >= width:
        return arr
    if signed:
        shift = width - bits_stored
        signed_arr = arr.astype(np.dtype(f"i{arr.dtype.itemsize}"), copy=False)
        return (signed_arr << shift) >> shift
    return arr & np.asarray((1 << bits_stored) - 1, dtype=arr.dtype)


def lookup(arr: np.ndarray, lut: Lut) -> np.ndarray:
    """Map values through a LUT, clamping below/above its range to its end entries."""
    idx = np.clip(arr.astype(np.int64) - lut.first, 0, lut.data.size - 1)
    return lut.data[idx]


def apply_modality(arr: np.ndarray, params: FrameParams) -> np.ndarray:
    """Stored values → modality values (float64): rescale, or the Modality LUT."""
    if params.modality_lut is not None:
        return lookup(arr, params.modality_lut)
    out = arr.astype(np.float64)
    if params.slope != 1.0:
        out *= params.slope
    if params.intercept != 0.0:
        out += params.intercept
    return out


def window_to_unit(arr: np.ndarray, window: Window) -> np.ndarray:
    """Modality values → 0..1 display values for one window (PS3.3 C.11.2.1.2)."""
    c, w = window.center, window.width
    if window.function == "LINEAR_EXACT":
        return np.clip((arr - c) / w + 0.5, 0.0, 1.0)
    if window.function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (arr - c) / w))
    if w <= 1:
        return (arr > c - 0.5).astype(np.float64)
    return np.clip((arr - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)


def voi_lut_to_unit(arr: np.ndarray, lut: Lut) -> np.ndarray:
    """Modality values → 0..1 through a VOI LUT of `lut.bits` output bits."""
    return lookup(arr, lut) / float((1 << lut.bits) - 1)


def min_max_window(arr: np.ndarray) -> Window:
    """A window spanning the frame's own value range (used when the file has none)."""
    lo, hi = float(np.min(arr)), float(np.max(arr))
    return Window(center=(lo + hi) / 2 + 0.5, width=max(hi - lo + 1, 2.0), explanation="min-max")


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """0..1 → 0..255, truncating as DCMTK does (its output matches to the grey level)."""
    return np.floor(np.clip(unit, 0.0, 1.0) * 255.0 + 1e-7).astype(np.uint8)


def invert(arr8: np.ndarray) -> np.ndarray:
    """MONOCHROME1 (and the user's invert): 0 is white."""
    return 255 - arr8


def apply_voi(
    arr: np.ndarray, window: Window | None = None, lut: Lut | None = None, inverse: bool = False
) -> np.ndarray:
    """Modality values → 8-bit display values via a window, else a VOI LUT, else min-max.

    `inverse` (MONOCHROME1) flips the 0..1 value before quantising, as the
    Presentation LUT would, so both photometric forms truncate the same way.
    """
    if window is not None:
        unit = window_to_unit(arr, window)
    elif lut is not None:
        unit = voi_lut_to_unit(arr, lut)
    else:
        unit = window_to_unit(arr, min_max_window(arr))
    return to_uint8(1.0 - unit if inverse else unit)


def color_to_uint8(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    """RGB stored values of any depth → 8 bits per channel (keeps the top bits)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "f":
        return to_uint8(arr)
    shift = max(bits_stored - 8, 0)
    return (arr.astype(np.uint32) >> shift).clip(0, 255).astype(np.uint8)
