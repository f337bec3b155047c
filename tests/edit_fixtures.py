"""Studies for the edit tests: mixed SOP classes and transfer syntaxes, charsets, snapshots."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pydicom
from factory import write_series
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.uid import generate_uid

from gearview.store import Cache

#: Real files covering what a QC station receives: compressed (JPEG, J2K, RLE),
#: multi-frame (Enhanced MR, 10 frames), big endian, implicit VR and deflated.
MIXED_FILES = (
    "SC_rgb_jpeg_dcmtk.dcm",
    "MR_small_jp2klossless.dcm",
    "emri_small_RLE.dcm",
    "emri_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "image_dfl.dcm",
)


def restamp(
    source: Path | str, target: Path, study_uid: str, series_uid: str | None = None
) -> Path:
    """Copy a test file into `study_uid` with fresh series/SOP UIDs (pixel data untouched)."""
    ds = pydicom.dcmread(source)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)
    return target


def add_mixed_study(cache: Cache, folder: Path, ct_slices: int = 3) -> str:
    """One study of 7 real files of different syntaxes plus a synthetic CT series."""
    study_uid = generate_uid()
    for name in MIXED_FILES:
        path = get_testdata_file(name, download=False)
        assert path, f"{name} missing from pydicom's test data"
        cache.add_file(restamp(path, folder / name, study_uid))
    for path in write_series(folder / "ct", ct_slices, study_uid=study_uid):
        cache.add_file(path)
    return study_uid


def add_charset_file(cache: Cache, folder: Path, name: str) -> str:
    """One of pydicom's charset test files as its own study; returns the study UID."""
    study_uid = generate_uid()
    cache.add_file(restamp(get_charset_files(name)[0], folder / name, study_uid))
    return study_uid


def snapshot(cache: Cache) -> dict[str, object]:
    """Every file under the storage folder (hash) and what the index says: 'exactly as before'.

    Row keys that are bookkeeping (patient pk, a study's updated_at) are left out; every value a
    user or a query sees is in.
    """
    files = {
        str(p.relative_to(cache.files_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(cache.files_dir.rglob("*"))
        if p.is_file()
    }
    studies = sorted(
        ((s.to_json(), s.mismatch, s.institution_name) for s in cache.studies()),
        key=lambda row: row[0]["study_uid"],
    )
    conn = cache.conn
    series = sorted(tuple(r) for r in conn.execute("SELECT * FROM series"))
    instances = sorted(tuple(r) for r in conn.execute("SELECT * FROM instance"))
    return {"files": files, "studies": studies, "series": series, "instances": instances}


def dcmdump(path: Path) -> list[str]:
    """DCMTK's view of a file (long values in full), as lines."""
    out = subprocess.run(["dcmdump", "+L", "-q", str(path)], capture_output=True, check=True).stdout
    return out.decode("latin-1").splitlines()


def without(lines: list[str], tags: set[str]) -> list[str]:
    """Drop top-level elements `tags` ('(0010,0010)') and the whole Original Attributes block."""
    kept, skipping = [], False
    for line in lines:
        if line.startswith("(") and not line.startswith("(fffe,"):
            skipping = line[:11] == "(0400,0561)"
            if line[:11] in tags:
                continue
        if not skipping:
            kept.append(line)
    return kept


KILL_AT_RENAME = """
import os, signal
import gearview.store.batch as batch
from gearview.home import Home
from gearview.store import Cache
{imports}
real = os.replace
calls = []
def killer(src, dst):
    calls.append(dst)
    if len(calls) == {n}:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
batch.os.replace = killer
{call}
"""


def run_killed_at_rename(cache: Cache, n: int, imports: str, call: str) -> None:
    """Run `call` (with `cache` bound to a fresh Cache) in a child SIGKILLed at the n-th rename."""
    script = KILL_AT_RENAME.format(imports=imports, n=n, call=call)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "GEARVIEW_HOME": str(cache.home.root)},
        capture_output=True,
    )
    assert proc.returncode == -9, proc.stderr.decode()
