"""Synthetic DICOM studies for tests and benchmarks (pydicom + numpy, no PHI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

from gearview import IMPLEMENTATION_CLASS_UID


def make_ct(
    study_uid: str,
    series_uid: str,
    index: int = 1,
    *,
    rows: int = 64,
    cols: int = 64,
    patient_name: str = "Test^Patient",
    patient_id: str = "PID001",
    transfer_syntax: UID = ExplicitVRLittleEndian,
    study_date: str = "20240102",
    accession: str = "ACC001",
    modality: str = "CT",
    series_number: int = 1,
    sop_uid: str | None = None,
    seed: int | None = None,
    birth_date: str = "19700101",
    sex: str = "O",
    issuer: str = "",
) -> Dataset:
    """One CT slice with a deterministic 16-bit image."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    if issuer:
        ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate = birth_date
    ds.PatientSex = sex
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.StudyID = "1"
    ds.StudyDescription = "Synthetic CT"
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"Series {series_number}"
    ds.InstanceNumber = index
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    rng = np.random.default_rng(index if seed is None else seed)
    pixels = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    return ds


def ct_series(
    n: int, *, study_uid: str | None = None, series_uid: str | None = None, **kwargs: object
) -> Iterator[Dataset]:
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    for i in range(1, n + 1):
        yield make_ct(study_uid, series_uid, i, **kwargs)


def write_series(folder: Path, n: int, **kwargs: object) -> list[Path]:
    """Write n slices of one new series as Part-10 files; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(ct_series(n, **kwargs), 1):
        path = folder / f"IM{i:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def add_study(cache, folder: Path, n: int = 3, **kwargs: object) -> str:
    """A new study of n slices written under `folder` and added to `cache`; returns its UID."""
    study_uid = str(kwargs.pop("study_uid", None) or generate_uid())
    for path in write_series(folder, n, study_uid=study_uid, **kwargs):
        cache.add_file(path)
    return study_uid
