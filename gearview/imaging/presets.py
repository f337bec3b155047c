"""Window/level presets a viewer offers on the keys 1-9 (Qt-free).

First the fixed CT windows, then the windows the file itself names (Window
Center/Width and their explanations), returned as indices into the file's
own list so the renderer applies them with their VOI function.
"""

from __future__ import annotations

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

def window_presets(ds: Dataset | None, frame: int = 0) -> list[tuple[str, Window | int]]:
    """The CT presets, then the file's own windows of `frame` (when `ds` is given)."""
    out: list[tuple[str, Window | int]] = [
        (label, Window(center, width, label)) for label, center, width in CT_PRESETS
    ]
    if ds is not None:
        for i, window in enumerate(frame_params(ds, frame).windows):
            out.append((f"File: {window.label}", i))
    return out
