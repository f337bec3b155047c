"""Grayscale Softcopy Presentation State: the parts the viewer applies (PS3.3 A.33).

For each referenced image: the Softcopy VOI window, and the graphic and text
annotations as polylines in image pixel coordinates. Spatial transformations,
shutters and presentation LUT shapes are not applied (the summary says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from gearview.imaging.luts import Window, windows_of


@dataclass
class Annotation:
    """A polyline (closed or not) and/or a text, in image pixel coordinates (x, y)."""

    points: list[tuple[float, float]] = field(default_factory=list)
    closed: bool = False
    text: str = ""


@dataclass
class ImagePresentation:
    """What one presentation state asks for one referenced image."""

    label: str
    window: Window | None = None
    annotations: list[Annotation] = field(default_factory=list)


def _referenced_uids(item: Dataset) -> set[str]:
    return {
        str(ref.get("ReferencedSOPInstanceUID", ""))
        for ref in item.get("ReferencedImageSequence") or []
    }


def all_referenced_images(ds: Dataset) -> list[str]:
    """Every image the presentation state applies to, in order."""
    out: list[str] = []
    for series in ds.get("ReferencedSeriesSequence") or []:
        for ref in series.get("ReferencedImageSequence") or []:
            uid = str(ref.get("ReferencedSOPInstanceUID", ""))
            if uid and uid not in out:
                out.append(uid)
    return out


def _to_pixels(x: float, y: float, units: str, size: tuple[int, int]) -> tuple[float, float]:
    """PIXEL units are 1-based sub-pixel positions; DISPLAY units are fractions of the image."""
    rows, cols = size
    if units == "DISPLAY":
        return x * cols, y * rows
    return x - 1.0, y - 1.0


def _shape(obj: Dataset, size: tuple[int, int]) -> Annotation | None:
    units = str(obj.get("GraphicAnnotationUnits", "PIXEL") or "PIXEL").upper()
    data = [float(v) for v in (obj.get("GraphicData") or [])]
    pts = [_to_pixels(data[i], data[i + 1], units, size) for i in range(0, len(data) - 1, 2)]
    kind = str(obj.get("GraphicType", "") or "").upper()
    if not pts:
        return None
    if kind == "CIRCLE" and len(pts) >= 2:
        (cx, cy), (px, py) = pts[0], pts[1]
        r = math.hypot(px - cx, py - cy)
        pts = [
            (cx + r * math.cos(a / 32 * math.tau), cy + r * math.sin(a / 32 * math.tau))
            for a in range(32)
        ]
        return Annotation(pts, closed=True)
    if kind == "ELLIPSE" and len(pts) >= 4:
        (ax, ay), (bx, by), (mx, my), (nx, ny) = pts[:4]
        cx, cy = (ax + bx) / 2, (ay + by) / 2
        major, minor = math.hypot(bx - ax, by - ay) / 2, math.hypot(nx - mx, ny - my) / 2
        angle = math.atan2(by - ay, bx - ax)
        pts = []
        for step in range(32):
            t = step / 32 * math.tau
            ex, ey = major * math.cos(t), minor * math.sin(t)
            pts.append(
                (
                    cx + ex * math.cos(angle) - ey * math.sin(angle),
                    cy + ex * math.sin(angle) + ey * math.cos(angle),
                )
            )
        return Annotation(pts, closed=True)
    if kind == "POINT":
        x, y = pts[0]
        return Annotation([(x - 2, y), (x + 2, y), (x, y), (x, y - 2), (x, y + 2)])
    closed = len(pts) > 2 and pts[0] == pts[-1]
    return Annotation(pts, closed=closed)


def _text(obj: Dataset, size: tuple[int, int]) -> Annotation | None:
    text = str(obj.get("UnformattedTextValue", "") or "")
    if not text:
        return None
    if "BoundingBoxTopLeftHandCorner" in obj:
        units = str(obj.get("BoundingBoxAnnotationUnits", "PIXEL") or "PIXEL").upper()
        x, y = (float(v) for v in obj.BoundingBoxTopLeftHandCorner)
    elif "AnchorPoint" in obj:
        units = str(obj.get("AnchorPointAnnotationUnits", "PIXEL") or "PIXEL").upper()
        x, y = (float(v) for v in obj.AnchorPoint)
    else:
        units, x, y = "PIXEL", 1.0, 1.0
    return Annotation([_to_pixels(x, y, units, size)], text=text)


def presentation_for(ds: Dataset, sop_uid: str, size: tuple[int, int]) -> ImagePresentation | None:
    """What presentation state `ds` does to image `sop_uid` of `size` (rows, cols); None if
    it does not reference that image."""
    if sop_uid not in all_referenced_images(ds):
        return None
    label = str(ds.get("ContentLabel", "") or "GSPS")
    out = ImagePresentation(label=label)
    for item in ds.get("SoftcopyVOILUTSequence") or []:
        refs = _referenced_uids(item)
        if refs and sop_uid not in refs:
            continue
        windows = windows_of(item)
        if windows:
            out.window = windows[0]
            break
    for layer in ds.get("GraphicAnnotationSequence") or []:
        refs = _referenced_uids(layer)
        if refs and sop_uid not in refs:
            continue
        for obj in layer.get("GraphicObjectSequence") or []:
            try:
                shape = _shape(obj, size)
            except (TypeError, ValueError):
                continue
            if shape is not None:
                out.annotations.append(shape)
        for obj in layer.get("TextObjectSequence") or []:
            try:
                text = _text(obj, size)
            except (TypeError, ValueError):
                continue
            if text is not None:
                out.annotations.append(text)
    return out


def summary(ds: Dataset) -> str:
    """Plain-text description of a presentation state for the viewer's text pane."""
    refs = all_referenced_images(ds)
    layers = len(ds.get("GraphicAnnotationSequence") or [])
    lines = [
        "Grayscale Softcopy Presentation State",
        f"Label: {ds.get('ContentLabel', '')}",
        f"Description: {ds.get('ContentDescription', '')}",
        f"Creator: {ds.get('ContentCreatorName', '')}",
        f"Applies to {len(refs)} image(s); {layers} annotation layer(s).",
        "gearview applies its window and annotations (graphics, text) when those images",
        "are shown in this viewer; spatial transformation, shutters and presentation LUT",
        "are not applied.",
        "",
        "Referenced images:",
    ]
    lines.extend(f"    {uid}" for uid in refs[:200])
    return "\n".join(lines)
