"""An arriving instance whose SOP Instance UID is already cached: replace it or not?

The cache keeps one file per SOP Instance UID. An arrival replaces the cached
copy when it is the same instance again: same study, same patient (Patient ID
and issuer, after corrections were re-applied) and the same pixel data - a
modality re-sending, a disc imported twice. Anything else would hide or
overwrite another patient's or study's data (SPEC §2.10), so it is refused
unless the caller asked to replace: the cache says why with a `Conflict`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pydicom

from gearview.store.ledger import OTHER_CONTENT, OTHER_PATIENT, OTHER_STUDY, Conflict
from gearview.store.records import InstanceInfo

#: The cached row's columns a judgement needs.
CACHED_COLUMNS = "sop_instance_uid, study_instance_uid, patient_id, issuer_of_patient_id, path"


def _image(path: Path) -> tuple[str, bytes | None, object]:
    """(transfer syntax, raw Pixel Data, the data set) of a file."""
    ds = pydicom.dcmread(path)
    return str(ds.file_meta.get("TransferSyntaxUID", "")), ds.get("PixelData"), ds


def same_content(cached: Path, arriving: Path) -> bool:
    """Whether two files of one SOP Instance UID hold the same image.

    The Pixel Data bytes are compared; stored in two transfer syntaxes, the
    decoded pixels are (the same image re-encoded losslessly is the same
    instance; a lossy copy is not: PS3.3 C.7.6.1.1.5 gives it a new UID).
    A file that cannot be read or decoded is not the same.
    """
    try:
        old_ts, old_pixels, old = _image(cached)
        new_ts, new_pixels, new = _image(arriving)
        if old_pixels is None or new_pixels is None or old_ts == new_ts:
            return old_pixels == new_pixels
        return bool(np.array_equal(old.pixel_array, new.pixel_array))
    except Exception:  # unreadable or undecodable: not the same content
        return False


def conflict_with(info: InstanceInfo, cached: sqlite3.Row, content_same: bool,
                  source: str) -> Conflict | None:
    """Why `info` may not replace the `cached` row, or None when it is the same instance."""
    if cached["study_instance_uid"] != info.study_instance_uid:
        kind = OTHER_STUDY
    elif (cached["patient_id"], cached["issuer_of_patient_id"]) != (
            info.patient_id, info.issuer_of_patient_id):
        kind = OTHER_PATIENT
    elif not content_same:
        kind = OTHER_CONTENT
    else:
        return None
    return Conflict(
        kind=kind, sop_uid=info.sop_instance_uid, study_uid=info.study_instance_uid,
        patient_id=info.patient_id, issuer=info.issuer_of_patient_id,
        cached_study_uid=cached["study_instance_uid"], cached_patient_id=cached["patient_id"],
        cached_issuer=cached["issuer_of_patient_id"], source=source,
    )
