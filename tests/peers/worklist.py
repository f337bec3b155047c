"""DCMTK `wlmscpfs` as a Modality Worklist peer, with worklist files written by the test."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from gearview.config import Node
from gearview.conformance import MWL_FIND
from peers.tools import free_port, require, start_dcmtk, stop_process


def order(
    accession: str,
    patient_name: str,
    patient_id: str,
    *,
    issuer: str = "LOCALHOSP",
    birth_date: str = "19800214",
    sex: str = "F",
    scheduled_date: str = "20240301",
    modality: str = "CT",
    charset: str | list[str] = "ISO_IR 100",
    description: str = "CT chest with contrast",
) -> Dataset:
    """A complete worklist item (every key wlmscpfs requires), one scheduled step."""
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate = birth_date
    ds.PatientSex = sex
    ds.AccessionNumber = accession
    ds.RequestedProcedureID = f"RP{accession}"
    ds.RequestedProcedureDescription = description
    ds.StudyInstanceUID = generate_uid()
    ds.ReferringPhysicianName = "Referrer^Rita"
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = "CT1"
    step.ScheduledProcedureStepStartDate = scheduled_date
    step.ScheduledProcedureStepStartTime = "090000"
    step.ScheduledProcedureStepDescription = description
    step.ScheduledProcedureStepID = f"SPS{accession}"
    step.ScheduledPerformingPhysicianName = "Tech^Tom"
    ds.ScheduledProcedureStepSequence = Sequence([step])
    return ds


class WorklistSCP:
    """`wlmscpfs` on a free loopback port serving the items given to `add` (one file each)."""

    def __init__(self, workdir: Path, aet: str = "WLM") -> None:
        self.binary = require("wlmscpfs")
        self.root = Path(workdir)
        self.aet = aet
        self.port = free_port()
        self.folder = self.root / aet
        self.process: subprocess.Popen[bytes] | None = None

    def add(self, item: Dataset) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        item.file_meta = FileMetaDataset()
        item.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        item.file_meta.MediaStorageSOPClassUID = MWL_FIND
        item.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = self.folder / f"{item.AccessionNumber}.wl"
        item.save_as(path, enforce_file_format=True)
        return path

    def start(self) -> WorklistSCP:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "lockfile").touch()
        self.process = start_dcmtk(
            # -csk: answer in the character set of each file; -s: no forked children to leak
            [self.binary, "-s", "-csk", "-dfp", str(self.root), str(self.port)],
            self.root / "wlmscpfs.log",
            self.port,
        )
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> WorklistSCP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def node(self, name: str = "RIS", timeout: float = 10.0) -> Node:
        return Node(
            name=name,
            ae_title=self.aet,
            host="127.0.0.1",
            port=self.port,
            roles=["worklist"],
            timeout=timeout,
        )
