"""Instances that may show identifying text no header edit can remove.

The Basic Profile cleans attributes, not pixels: an ultrasound frame, a
screen capture or a scanned form usually has the patient's name burned in.
Such instances - Burned In Annotation (0028,0301) = YES, or absent where the
kind of image usually has it (US, SC, XC, OT, secondary capture, video) -
and encapsulated documents (PDF, CDA, ... whose content is not parsed) are
refused by every de-identified export unless the user allows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    EncapsulatedCDAStorage,
    EncapsulatedMTLStorage,
    EncapsulatedOBJStorage,
    EncapsulatedPDFStorage,
    EncapsulatedSTLStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameSingleBitSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    VideoEndoscopicImageStorage,
    VideoMicroscopicImageStorage,
    VideoPhotographicImageStorage,
)

from gearview.errors import GearviewError, InvalidDicomError
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress

#: Modalities whose images usually carry burned-in text when they do not say otherwise.
SUSPECT_MODALITIES = frozenset({"US", "SC", "XC", "OT"})
SUSPECT_CLASSES = frozenset(
    {
        UltrasoundImageStorage,
        UltrasoundMultiFrameImageStorage,
        SecondaryCaptureImageStorage,
        MultiFrameSingleBitSecondaryCaptureImageStorage,
        MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        MultiFrameTrueColorSecondaryCaptureImageStorage,
        VideoEndoscopicImageStorage,
        VideoMicroscopicImageStorage,
        VideoPhotographicImageStorage,
    }
)
DOCUMENT_CLASSES = frozenset(
    {
        EncapsulatedPDFStorage,
        EncapsulatedCDAStorage,
        EncapsulatedSTLStorage,
        EncapsulatedOBJStorage,
        EncapsulatedMTLStorage,
    }
)
_HEADER_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "Modality",
    "SeriesNumber",
    "InstanceNumber",
    "BurnedInAnnotation",
    "Rows",
]


@dataclass(frozen=True)
class Refusal:
    """One instance left out, and why (no PHI: UIDs, numbers and the reason)."""

    sop_uid: str
    modality: str
    series_number: str
    instance_number: str
    reason: str

    def line(self) -> str:
        where = f"series {self.series_number or '?'} ({self.modality or '?'})"
        return f"{where} instance {self.instance_number or '?'} {self.sop_uid}: {self.reason}"


class BurnedInRefused(GearviewError):
    """Some instances may show identifying text; the export was not made."""

    hint = (
        "look at those images; if they show no name, allow them with --allow-burned-in "
        "(the 'Allow burned-in' box in the GUI)"
    )

    def __init__(self, refusals: list[Refusal]) -> None:
        super().__init__(
            f"{len(refusals)} instance(s) may show identifying text that de-identification "
            "cannot remove (burned-in annotation or an encapsulated document)"
        )
        self.refusals = refusals


def burned_in_reason(ds: Dataset) -> str | None:
    """Why this instance may show identifying text, None when it should not."""
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in DOCUMENT_CLASSES:
        return "an encapsulated document (its content is not de-identified)"
    if "Rows" not in ds:
        return None
    value = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if value == "YES":
        return "Burned In Annotation is YES"
    if value == "NO":
        return None
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in SUSPECT_MODALITIES or sop_class in SUSPECT_CLASSES:
        kind = modality or pydicom.uid.UID(sop_class).name
        return f"Burned In Annotation is not set and {kind} images usually show text"
    return None


def refusal(ds: Dataset, reason: str) -> Refusal:
    return Refusal(
        sop_uid=str(ds.get("SOPInstanceUID", "")),
        modality=str(ds.get("Modality", "") or ""),
        series_number=str(ds.get("SeriesNumber", "") or ""),
        instance_number=str(ds.get("InstanceNumber", "") or ""),
        reason=reason,
    )


def find_burned_in(
    paths: Iterable[Path],
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> list[Refusal]:
    """The instances among `paths` a de-identified export refuses (reads headers only)."""
    paths = list(paths)
    found = []
    for i, path in enumerate(paths):
        if token is not None:
            token.check()
        if i % 32 == 0:
            progress(Progress(i, len(paths), "checking for burned-in text"))
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        except (OSError, ValueError, EOFError, pydicom.errors.InvalidDicomError) as exc:
            raise InvalidDicomError(f"cannot read an instance to check it: {exc}") from None
        reason = burned_in_reason(ds)
        if reason is not None:
            found.append(refusal(ds, reason))
    progress(Progress(len(paths), len(paths), f"{len(found)} instance(s) may show text"))
    return found
