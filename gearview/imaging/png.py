"""PNG in and out for `gearview render` and the comparison tests (Pillow, no Qt)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from gearview.store.atomic import atomic_write_bytes


def encode_png(pixels: np.ndarray) -> bytes:
    """8-bit grey (H, W) or RGB (H, W, 3) → PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write a PNG atomically (a half-written image is never left behind)."""
    atomic_write_bytes(Path(path), encode_png(pixels))


def read_png(path: Path) -> np.ndarray:
    """A PNG as uint8 (H, W) grey or (H, W, 3) RGB."""
    with Image.open(path) as img:
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB" if "A" in img.mode or img.mode == "P" else "L")
        return np.asarray(img, dtype=np.uint8).copy()
