"""Cache file names derived from hashed UIDs.

A path is never built from a DICOM value directly (names, IDs or raw UIDs):
that is the most repeated CVE class in DICOM servers, and it keeps PHI out of
the file system.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

SUFFIX = ".dcm"
SPOOL_DIR = ".spool"
#: Studies being removed (`gearview.store.removal`); hidden, so never counted as cache files.
TRASH_DIR = ".trash"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def study_relpath(study_uid: str) -> PurePosixPath:
    """`ab/<study>`: the folder holding every file of one study."""
    study = _digest(study_uid)
    return PurePosixPath(study[:2], study[2:18])


def instance_relpath(study_uid: str, series_uid: str, sop_uid: str) -> PurePosixPath:
    """`ab/<study>/<series>/<sop>.dcm` relative to the storage folder."""
    return study_relpath(study_uid) / _digest(series_uid)[:16] / (_digest(sop_uid)[:32] + SUFFIX)
