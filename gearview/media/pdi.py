"""IHE PDI content: README.TXT, INDEX.HTM with an HTML index of the studies, JPEG previews.

Every DICOM value that reaches the HTML is escaped; file names in the web
content are generated (`IHE_PDI/S0001.JPG`), never derived from DICOM values.
The pages contain no script. Previews are best effort: an image that cannot
be decoded is listed without a preview rather than failing the disc.
"""

from __future__ import annotations

import html
import io
import logging
import time
from dataclasses import dataclass

import numpy as np
import pydicom

from gearview import __version__
from gearview.display import format_date, format_person_name
from gearview.media.fileset import DiscLayout, MediaFile, PlannedInstance

log = logging.getLogger(__name__)
PDI_DIR = "IHE_PDI"
PREVIEW_PX = 256


@dataclass
class _SeriesEntry:
    description: str
    modality: str
    number: int | None
    count: int
    preview: str


def _to_8bit(arr: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    if arr.ndim == 4 or (arr.ndim == 3 and int(ds.get("SamplesPerPixel", 1) or 1) == 1):
        arr = arr[0]
    arr = arr.astype(np.float32)
    lo, hi = np.percentile(arr, (1, 99)) if arr.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1
    out = np.clip((arr - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        out = 255 - out
    return out


def render_preview(path: str) -> bytes | None:
    """A small JPEG of an instance's first frame, or None when it cannot be decoded."""
    from PIL import (
        Image,
    )  # Pillow ships with the imaging stack; imported only when previews are made

    try:
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds:
            return None
        arr = _to_8bit(ds.pixel_array, ds)
        mode = "RGB" if arr.ndim == 3 else "L"
        image = Image.fromarray(arr, mode=mode) if mode == "L" else Image.fromarray(arr[..., :3])
        image.thumbnail((PREVIEW_PX, PREVIEW_PX))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=85)
        return buf.getvalue()
    except Exception as exc:  # any decoder failure: no preview, never a failed disc
        log.info("no preview for an instance: %s: %s", type(exc).__name__, exc)
        return None


def readme_text(layout: DiscLayout, label: str, has_viewer: bool) -> str:
    studies = {p.study.study_instance_uid for p in layout.instances}
    lines = [
        f"{label}",
        "",
        "This disc holds medical images in DICOM format (IHE Portable Data for Imaging).",
        f"It was created by gearview {__version__} on {time.strftime('%Y-%m-%d')}.",
        "",
        f"Contents: {len(studies)} study(ies), {len(layout.instances)} DICOM file(s).",
        "  DICOMDIR        index of the DICOM files (PS3.10 File-set)",
        "  DICOM/          the DICOM files",
        "  INDEX.HTM       a web page listing the studies with previews (open in a browser)",
        "  IHE_PDI/        the web page's images",
    ]
    if has_viewer:
        lines.append("  VIEWER/         a DICOM viewer for this disc")
    lines += [
        "",
        "Open the disc in any DICOM viewer (use 'open DICOMDIR' or 'import CD').",
        "Nothing on this disc starts by itself; the previews are not for diagnosis.",
    ]
    return "\r\n".join(lines) + "\r\n"


def _series_entries(
    layout: DiscLayout, previews: bool
) -> tuple[dict[str, list[_SeriesEntry]], list[MediaFile]]:
    by_series: dict[str, list[tuple[PlannedInstance, MediaFile]]] = {}
    dicom_files = [f for f in layout.files if f.parts[0] == "DICOM"]
    for planned, media in zip(layout.instances, dicom_files, strict=True):
        by_series.setdefault(planned.series.series_instance_uid, []).append((planned, media))
    out: dict[str, list[_SeriesEntry]] = {}
    images: list[MediaFile] = []
    for members in by_series.values():
        planned, _ = members[0]
        preview_name = ""
        if previews:
            _, middle = members[len(members) // 2]
            data = render_preview(str(middle.source)) if middle.source else None
            if data:
                preview_name = f"S{len(images) + 1:04d}.JPG"
                images.append(MediaFile((PDI_DIR, preview_name), len(data), data=data))
        out.setdefault(planned.study.study_instance_uid, []).append(
            _SeriesEntry(
                planned.series.series_description,
                planned.series.modality,
                planned.series.series_number,
                len(members),
                preview_name,
            )
        )
    return out, images


def index_html(layout: DiscLayout, label: str, series: dict[str, list[_SeriesEntry]]) -> str:
    esc = html.escape
    studies = {}
    for planned in layout.instances:
        studies.setdefault(planned.study.study_instance_uid, planned.study)
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{esc(label)}</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px}</style></head><body>",
        f"<h1>{esc(label)}</h1>",
        "<p>DICOM images on this disc. The previews below are not for diagnosis; "
        "open the DICOMDIR in a DICOM viewer.</p>",
    ]
    for study in studies.values():
        parts.append(
            f"<h2>{esc(format_person_name(study.patient_name))} ({esc(study.patient_id)})</h2>"
        )
        parts.append(
            f"<p>Birth date {esc(format_date(study.patient_birth_date))}, "
            f"sex {esc(study.patient_sex)}<br>"
            f"Study {esc(format_date(study.study_date))} {esc(study.study_description)}, "
            f"accession {esc(study.accession_number)}</p>"
        )
        parts.append(
            "<table><tr><th>Series</th><th>Modality</th><th>Description</th>"
            "<th>Images</th><th>Preview</th></tr>"
        )
        for entry in series.get(study.study_instance_uid, []):
            img = f'<img src="{PDI_DIR}/{entry.preview}" alt="preview">' if entry.preview else ""
            parts.append(
                f"<tr><td>{esc(str(entry.number or ''))}</td><td>{esc(entry.modality)}</td>"
                f"<td>{esc(entry.description)}</td><td>{entry.count}</td><td>{img}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def add_pdi_content(
    layout: DiscLayout, label: str, has_viewer: bool, previews: bool = True
) -> None:
    """Add README.TXT, INDEX.HTM and the IHE_PDI previews to a disc layout."""
    series, images = _series_entries(layout, previews)
    readme = readme_text(layout, label, has_viewer).encode("utf-8")
    index = index_html(layout, label, series).encode("utf-8")
    layout.files.append(MediaFile(("README.TXT",), len(readme), data=readme))
    layout.files.append(MediaFile(("INDEX.HTM",), len(index), data=index))
    layout.files.extend(images)
