"""Stored frame → 8-bit grey or RGB display array, as a chain of the pure steps in `luts`.

`render_frame` is what the viewer and `gearview render` call; it takes the
decoded stored values (from `ImageSource.decode`, possibly from the frame
cache) so a W/L change re-runs only the cheap steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut

from gearview.imaging import luts
from gearview.imaging.decode import ImageGeometry, ImageSource
from gearview.imaging.errors import CannotDisplayError, DecodeError
from gearview.imaging.luts import FrameParams, Window

log = logging.getLogger(__name__)

OVERLAY_GROUPS = range(0x6000, 0x6020, 2)


@dataclass(frozen=True)
class RenderOptions:
    """How the user wants a frame shown.

    `window` overrides the file; otherwise the file's window number
    `window_index` is used, else its VOI LUT number `voi_lut_index`, else the
    frame's min-max range. `use_voi_lut` prefers the VOI LUT over windows.
    """

    window: Window | None = None
    window_index: int = 0
    voi_lut_index: int = 0
    use_voi_lut: bool = False
    invert: bool = False
    overlays: bool = True


@dataclass(frozen=True)
class RenderedFrame:
    """An 8-bit display frame and the window that produced it (None for colour / VOI LUT)."""

    pixels: np.ndarray
    window: Window | None
    frame: int
    voi_label: str = ""

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 3


def choose_voi(
    modality: np.ndarray, params: FrameParams, options: RenderOptions
) -> tuple[Window | None, luts.Lut | None]:
    """The window or VOI LUT that applies, per RenderOptions' order of preference."""
    if options.window is not None:
        return options.window, None
    if options.use_voi_lut and params.voi_luts:
        return None, params.voi_luts[min(options.voi_lut_index, len(params.voi_luts) - 1)]
    if params.windows:
        return params.windows[min(options.window_index, len(params.windows) - 1)], None
    if params.voi_luts:
        return None, params.voi_luts[min(options.voi_lut_index, len(params.voi_luts) - 1)]
    return luts.min_max_window(modality), None


#: Integer frames with at most this many stored bits go through one lookup table.
TABLE_BITS = 16


def render_grey(
    stored: np.ndarray, geo: ImageGeometry, params: FrameParams, options: RenderOptions
) -> tuple[np.ndarray, Window | None, str]:
    """Mask → modality → VOI → 8 bits → MONOCHROME1/user inversion.

    For integer pixels the same steps run once over every possible stored
    value (a ≤ 64 Ki-entry table) and the frame is one table lookup: the
    output is identical and much cheaper than float steps on every pixel.
    """
    arr = luts.mask_bits_stored(stored, geo.bits_stored, geo.signed)
    inverse = params.inverse != options.invert
    if arr.dtype.kind in "iu" and geo.bits_stored <= TABLE_BITS:
        lo = -(1 << (geo.bits_stored - 1)) if geo.signed else 0
        domain = np.arange(lo, lo + (1 << geo.bits_stored), dtype=np.int64)
        modality = luts.apply_modality(domain, params)
        present = modality[int(arr.min()) - lo : int(arr.max()) - lo + 1]
        window, lut = choose_voi(present, params, options)
        table = luts.apply_voi(modality, window, lut, inverse=inverse)
        out = table[arr.astype(np.intp) - lo] if lo else table[arr]
    else:
        modality = luts.apply_modality(arr, params)
        window, lut = choose_voi(modality, params, options)
        out = luts.apply_voi(modality, window, lut, inverse=inverse)
    label = window.label if window is not None else (lut.explanation or "VOI LUT") if lut else ""
    return out, window, label


def render_color(
    stored: np.ndarray, ds: Dataset, geo: ImageGeometry, options: RenderOptions
) -> np.ndarray:
    """Palette lookup or RGB of any depth → 8-bit RGB (YBR was converted when decoding)."""
    if geo.photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(luts.mask_bits_stored(stored, geo.bits_stored, False), ds)
        except (ValueError, KeyError, AttributeError, IndexError) as exc:
            raise DecodeError(f"palette colour lookup failed: {exc}") from exc
        out = (rgb >> 8).astype(np.uint8) if rgb.dtype.itemsize > 1 else rgb.astype(np.uint8)
    else:
        out = luts.color_to_uint8(stored, geo.bits_stored)
    return luts.invert(out) if options.invert else out


def overlay_mask(ds: Dataset, group: int, frame: int, shape: tuple[int, int]) -> np.ndarray | None:
    """The overlay plane `group` placed on the image for `frame`, or None if absent/unusable."""
    if (group, 0x3000) not in ds:
        return None
    try:
        plane = ds.overlay_array(group)
        first = int(ds.get((group, 0x0051)).value or 1) if (group, 0x0051) in ds else 1
        origin = ds.get((group, 0x0050))
        row0, col0 = (int(v) - 1 for v in origin.value) if origin is not None else (0, 0)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        log.debug("overlay %04x unusable: %s", group, exc)
        return None
    if plane.ndim == 3:
        pos = frame - (first - 1)
        if not 0 <= pos < plane.shape[0]:
            return None
        plane = plane[pos]
    mask = np.zeros(shape, dtype=bool)
    rows, cols = plane.shape
    r0, c0 = max(row0, 0), max(col0, 0)
    r1, c1 = min(row0 + rows, shape[0]), min(col0 + cols, shape[1])
    if r1 <= r0 or c1 <= c0:
        return None
    mask[r0:r1, c0:c1] = plane[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] != 0
    return mask


def burn_overlays(out: np.ndarray, ds: Dataset, frame: int) -> np.ndarray:
    """Draw every 60xx overlay plane in white (DCMTK's default 'replace' mode)."""
    groups = [g for g in OVERLAY_GROUPS if (g, 0x3000) in ds]
    if not groups:
        return out
    out = out.copy()
    for group in groups:
        mask = overlay_mask(ds, group, frame, out.shape[:2])
        if mask is not None:
            out[mask] = 255
    return out


def is_grey(geo: ImageGeometry) -> bool:
    return geo.samples == 1 and geo.photometric != "PALETTE COLOR"


def modality_frame(source: ImageSource, index: int, stored: np.ndarray) -> np.ndarray:
    """Frame `index` in modality units (float64: HU for CT, the Modality LUT's output...):
    what ROI statistics and data-driven windows are computed on."""
    geo = source.geometry
    if not is_grey(geo):
        raise CannotDisplayError("no modality values: a colour image")
    arr = luts.mask_bits_stored(stored, geo.bits_stored, geo.signed)
    return luts.apply_modality(arr, luts.frame_params(source.ds, index))


def render_frame(
    source: ImageSource,
    index: int = 0,
    stored: np.ndarray | None = None,
    options: RenderOptions = RenderOptions(),
) -> RenderedFrame:
    """Decode (unless given the stored values) and render frame `index` to 8 bits."""
    geo = source.geometry
    if stored is None:
        stored = source.decode(index)
    if not is_grey(geo):
        out, window, label = render_color(stored, source.ds, geo, options), None, ""
    else:
        params = luts.frame_params(source.ds, index)
        out, window, label = render_grey(stored, geo, params, options)
    if options.overlays:
        out = burn_overlays(out, source.ds, index)
    return RenderedFrame(
        pixels=np.ascontiguousarray(out), window=window, frame=index, voi_label=label
    )
