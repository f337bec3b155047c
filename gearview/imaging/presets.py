"""Window/level presets a viewer offers on the keys 1-9, by modality (Qt-free).

CT gets the fixed Hounsfield windows, then the file's own. Other modalities
have no fixed scale, so they get the file's own windows and VOI LUTs first,
then windows computed from the frame's values (`window_for_rule`): "Auto"
(1st to 99th percentile, robust to a few extreme pixels), "Full range"
(minimum to maximum) and, for NM and PET, windows from zero (the background of
an uptake image) to the maximum or half of it. Colour images get none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from gearview.imaging.luts import Window, frame_params

#: (label, centre, width).
CT_PRESETS: tuple[tuple[str, float, float], ...] = (
    ("CT brain", 40, 80),
    ("CT lung", -600, 1500),
    ("CT bone", 400, 1800),
    ("CT abdomen", 40, 400),
    ("CT mediastinum", 50, 350),
)

RULE_AUTO, RULE_FULL, RULE_ZERO_MAX, RULE_ZERO_HALF = "auto", "full", "zero-max", "zero-half"
RULE_LABELS = {
    RULE_AUTO: "Auto (1–99 %)",
    RULE_FULL: "Full range",
    RULE_ZERO_MAX: "0 to maximum",
    RULE_ZERO_HALF: "0 to half maximum",
}
#: The computed windows each modality is offered after the file's own.
RULES_BY_MODALITY = {
    "NM": (RULE_ZERO_MAX, RULE_ZERO_HALF, RULE_AUTO),
    "PT": (RULE_ZERO_MAX, RULE_ZERO_HALF, RULE_AUTO),
}
DEFAULT_RULES = (RULE_AUTO, RULE_FULL)
COLOUR = frozenset({"RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})


@dataclass(frozen=True)
class Preset:
    """One preset: a fixed window, the file's window or VOI LUT number N, or a rule."""

    label: str
    window: Window | None = None
    file_window: int | None = None
    file_lut: int | None = None
    rule: str = ""


def _modality(ds: Dataset | None, modality: str) -> str:
    return (modality or (str(ds.get("Modality", "") or "") if ds is not None else "")).upper()


def is_colour(ds: Dataset) -> bool:
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    return photometric in COLOUR or int(ds.get("SamplesPerPixel") or 1) == 3


def presets_for(ds: Dataset | None, frame: int = 0, modality: str = "") -> list[Preset]:
    """The presets for frame `frame` of `ds` (`modality` when the header is not read yet)."""
    if ds is not None and is_colour(ds):
        return []
    kind = _modality(ds, modality)
    out: list[Preset] = []
    if kind == "CT":
        out += [Preset(label, window=Window(c, w, label)) for label, c, w in CT_PRESETS]
    if ds is not None:
        params = frame_params(ds, frame)
        out += [Preset(f"File: {w.label}", file_window=i) for i, w in enumerate(params.windows)]
        out += [
            Preset(f"File LUT: {lut.explanation or i + 1}", file_lut=i)
            for i, lut in enumerate(params.voi_luts)
        ]
    if kind != "CT":
        rules = RULES_BY_MODALITY.get(kind, DEFAULT_RULES)
        out += [Preset(RULE_LABELS[rule], rule=rule) for rule in rules]
    return out


def window_for_rule(rule: str, values: np.ndarray) -> Window:
    """The window a computed preset gives for a frame's modality values."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Window(0.5, 1.0, RULE_LABELS[rule])
    if rule == RULE_AUTO:
        lo, hi = (float(v) for v in np.percentile(finite, (1, 99)))
    elif rule == RULE_FULL:
        lo, hi = float(finite.min()), float(finite.max())
    else:
        top = float(finite.max())
        lo, hi = 0.0, top / 2 if rule == RULE_ZERO_HALF else top
    width = max(hi - lo, 1e-3)
    return Window(lo + width / 2, width, RULE_LABELS[rule], "LINEAR_EXACT")
