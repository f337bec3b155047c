"""The four corner texts a viewer draws over an image (Qt-free: any front end shows the same).

Top left: the patient (name, ID, birth date and sex); top right: the study
(description, date) and the series; bottom left: where the image is in its
series and the window applied; bottom right: the view (zoom, rotation). Values
come from the instance shown; the study record fills in what its header lacks
(or everything, before the first frame arrives). Window values show as
integers, as a console shows them, unless the window is narrower than
`FINE_WIDTH` (SUV, parametric maps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydicom.dataset import Dataset

from gearview.display import format_date, format_person_name
from gearview.imaging.luts import Window
from gearview.imaging.render import RenderedFrame
from gearview.store.records import StudyRecord

Corners = tuple[str, str, str, str]
#: Windows narrower than this show two decimals.
FINE_WIDTH = 10.0


@dataclass(frozen=True)
class Place:
    """Where the shown image is: instance `image` of `images`, frame `frame` of `frames`."""

    image: int
    images: int
    frame: int
    frames: int


@dataclass(frozen=True)
class ViewState:
    """How the image is shown: zoom factor, rotation in degrees, inversion."""

    zoom: float
    rotation: int = 0
    inverted: bool = False


def corner_text(
    ds: Dataset,
    study: StudyRecord | None,
    series_title: str,
    place: Place | None,
    rendered: RenderedFrame | None,
    view: ViewState,
) -> Corners:
    """Top-left, top-right, bottom-left and bottom-right text, lines joined by newlines."""
    return (
        _patient(ds, study),
        _study(ds, study, series_title),
        _image(place, rendered, view.inverted),
        _view(view),
    )


def _value(ds: Dataset, keyword: str, fallback: str = "") -> str:
    return str(ds.get(keyword, "") or fallback)


def _lines(*lines: str) -> str:
    return "\n".join(line for line in lines if line)


def _patient(ds: Dataset, study: StudyRecord | None) -> str:
    birth = format_date(_value(ds, "PatientBirthDate"))
    birth_and_sex = " ".join(filter(None, (birth, _value(ds, "PatientSex"))))
    return _lines(
        format_person_name(_value(ds, "PatientName", study.patient_name if study else "")),
        _value(ds, "PatientID", study.patient_id if study else ""),
        birth_and_sex,
    )


def _study(ds: Dataset, study: StudyRecord | None, series_title: str) -> str:
    return _lines(
        _value(ds, "StudyDescription", study.study_description if study else ""),
        format_date(_value(ds, "StudyDate", study.study_date if study else "")),
        series_title,
    )


def _image(place: Place | None, rendered: RenderedFrame | None, inverted: bool) -> str:
    lines = []
    if place is not None:
        lines.append(f"Im: {place.image + 1}/{place.images}")
        if place.frames > 1:
            lines.append(f"Fr: {place.frame + 1}/{place.frames}")
    if rendered is not None and rendered.window is not None:
        lines.append(window_text(rendered.window))
    elif rendered is not None and rendered.voi_label:
        lines.append(rendered.voi_label)
    if inverted:
        lines.append("inverted")
    return _lines(*lines)


def window_text(window: Window) -> str:
    """'W: 400  L: 40': rounded half away from zero, two decimals for fine windows."""
    if window.width < FINE_WIDTH:
        return f"W: {window.width:.2f}  L: {window.center:.2f}"
    return f"W: {_rounded(window.width)}  L: {_rounded(window.center)}"


def _rounded(value: float) -> int:
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def _view(view: ViewState) -> str:
    rotation = f"  Rot: {view.rotation}°" if view.rotation else ""
    return f"Zoom: {view.zoom * 100:.0f}%{rotation}"
