"""Modality Worklist C-FIND SCU (PS3.4 K): the orders a patient's images belong to.

The importer and the Edit study form pick an order and adopt its patient
identity, Accession Number and Requested Procedure (IHE IRWF.b). Every
response is decoded with its own Specific Character Set, so one answer in
Latin-1 and the next in ISO 2022 (Japanese) both read right.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gearview.config import Config, Node
from gearview.conformance import MWL_FIND
from gearview.errors import InvalidValueError, NotFoundError
from gearview.jobs import CancelToken
from gearview.net import client
from gearview.net.query import check_date_range

log = logging.getLogger(__name__)

WORKLIST_ROLE = "worklist"
_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")
#: Value lengths of the matching keys (LO, SH) a peer would truncate or refuse.
MAX_LENGTHS = {"patient_id": 64, "accession": 16, "patient_name": 64 * 5}

#: Return keys at the top level of a worklist identifier (PS3.4 K.6.1.2.2).
TOP_KEYS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "ReferringPhysicianName",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "StudyInstanceUID",
)
#: Return keys inside the Scheduled Procedure Step Sequence item.
STEP_KEYS = (
    "Modality",
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepID",
    "ScheduledPerformingPhysicianName",
)


def check_text(label: str, value: str, limit: int = 64) -> str:
    """A matching key: stripped, no backslash (a value separator) or control character."""
    value = value.strip()
    if "\\" in value or any(ord(c) < 32 for c in value):
        raise InvalidValueError(f"{label}: backslashes and control characters are not allowed")
    if len(value) > limit:
        raise InvalidValueError(f"{label}: at most {limit} characters, got {len(value)}")
    return value


@dataclass
class WorklistQuery:
    """What to match on; empty fields match every order."""

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    scheduled_date: str = ""
    modality: str = ""
    birth_date: str = ""

    def validate(self) -> WorklistQuery:
        self.scheduled_date = check_date_range(self.scheduled_date, "scheduled date")
        self.birth_date = check_date_range(self.birth_date, "birth date")
        self.modality = self.modality.strip().upper()
        if self.modality and not _MODALITY.match(self.modality):
            raise InvalidValueError(f"not a modality: {self.modality!r}", hint="e.g. CT, MR, US")
        for name, limit in MAX_LENGTHS.items():
            setattr(self, name, check_text(name.replace("_", " "), getattr(self, name), limit))
        return self

    def to_dataset(self) -> Dataset:
        """The C-FIND identifier: matching keys filled, every return key present and empty."""
        self.validate()
        ds = Dataset()
        for keyword in TOP_KEYS:
            setattr(ds, keyword, "")
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.AccessionNumber = self.accession
        ds.PatientBirthDate = self.birth_date
        step = Dataset()
        for keyword in STEP_KEYS:
            setattr(step, keyword, "")
        step.Modality = self.modality
        step.ScheduledProcedureStepStartDate = self.scheduled_date
        ds.ScheduledProcedureStepSequence = Sequence([step])
        if any(not c.isascii() for c in self.patient_name):
            ds.SpecificCharacterSet = "ISO_IR 192"
        return ds


@dataclass
class WorklistItem:
    """One order (requested procedure + its scheduled step) as a node returned it."""

    patient_name: str = ""
    patient_id: str = ""
    issuer_of_patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    accession: str = ""
    requested_procedure_id: str = ""
    requested_procedure_description: str = ""
    scheduled_date: str = ""
    scheduled_time: str = ""
    modality: str = ""
    study_uid: str = ""
    step_description: str = ""
    station_ae: str = ""
    referring_physician: str = ""
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    JSON_KEYS = (
        "patient_name",
        "patient_id",
        "issuer_of_patient_id",
        "birth_date",
        "sex",
        "accession",
        "requested_procedure_id",
        "requested_procedure_description",
        "scheduled_date",
        "modality",
        "study_uid",
    )

    def to_json(self) -> dict[str, Any]:
        """The stable SPEC §3 shape of `worklist --json`."""
        return {key: getattr(self, key) for key in self.JSON_KEYS}


def _text(ds: Dataset, keyword: str, problems: list[str]) -> str:
    """A value decoded with the data set's own character set ('' when absent)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = ds.get(keyword)
        except (ValueError, TypeError, LookupError) as exc:
            problems.append(f"{keyword}: {exc}")
            return ""
        text = "" if value is None else str(value).strip()
    problems.extend(f"{keyword}: {w.message}" for w in caught)
    return text


def worklist_item(ds: Dataset, source: str) -> WorklistItem:
    """One C-FIND response as an item; undecodable values become '' and a warning."""
    problems: list[str] = []
    steps = ds.get("ScheduledProcedureStepSequence") or [Dataset()]
    step = steps[0]
    item = WorklistItem(
        patient_name=_text(ds, "PatientName", problems),
        patient_id=_text(ds, "PatientID", problems),
        issuer_of_patient_id=_text(ds, "IssuerOfPatientID", problems),
        birth_date=_text(ds, "PatientBirthDate", problems),
        sex=_text(ds, "PatientSex", problems),
        accession=_text(ds, "AccessionNumber", problems),
        requested_procedure_id=_text(ds, "RequestedProcedureID", problems),
        requested_procedure_description=_text(ds, "RequestedProcedureDescription", problems),
        study_uid=_text(ds, "StudyInstanceUID", problems),
        referring_physician=_text(ds, "ReferringPhysicianName", problems),
        scheduled_date=_text(step, "ScheduledProcedureStepStartDate", problems),
        scheduled_time=_text(step, "ScheduledProcedureStepStartTime", problems),
        modality=_text(step, "Modality", problems),
        step_description=_text(step, "ScheduledProcedureStepDescription", problems),
        station_ae=_text(step, "ScheduledStationAETitle", problems),
        source=source,
    )
    item.warnings = problems
    if problems:
        log.info("worklist answer from %s decoded with %d problem(s)", source, len(problems))
    return item


def find_worklist(
    node: Node, config: Config, query: WorklistQuery, token: CancelToken | None = None
) -> list[WorklistItem]:
    """Modality Worklist C-FIND; the orders sorted by scheduled date and time."""
    matches = client.find(node, config, query.to_dataset(), token, model=MWL_FIND)
    items = [worklist_item(ds, node.name) for ds in matches]
    return sorted(items, key=lambda i: (i.scheduled_date, i.scheduled_time, i.accession))


def worklist_nodes(config: Config) -> list[Node]:
    """The configured nodes with the `worklist` role."""
    return [n for n in config.nodes if WORKLIST_ROLE in n.roles]


def default_worklist_node(config: Config) -> Node:
    """The one worklist node, when exactly one is configured."""
    nodes = worklist_nodes(config)
    if len(nodes) == 1:
        return nodes[0]
    if not nodes:
        raise NotFoundError(
            "no node has the worklist role",
            hint="add one: `gearview node add NAME AET@HOST:PORT --roles worklist`",
        )
    raise InvalidValueError(
        f"several worklist nodes ({', '.join(n.name for n in nodes)}): name one",
        hint="use --worklist NODE",
    )


def find_order(
    nodes: Iterable[Node], config: Config, accession: str, token: CancelToken | None = None
) -> WorklistItem:
    """The order with this Accession Number; refused when none or several patients match."""
    accession = check_text("accession", accession, MAX_LENGTHS["accession"])
    if not accession:
        raise InvalidValueError("an accession number is needed to find the order")
    items: list[WorklistItem] = []
    names = []
    for node in nodes:
        names.append(node.name)
        items.extend(find_worklist(node, config, WorklistQuery(accession=accession), token))
    exact = [i for i in items if i.accession == accession]
    if not exact:
        raise NotFoundError(
            f"no order with accession {accession!r} on {', '.join(names) or 'no node'}",
            hint="check the accession number, or that the order is scheduled on the worklist",
        )
    patients = {(i.patient_id, i.issuer_of_patient_id) for i in exact}
    if len(patients) > 1:
        listed = ", ".join(sorted(pid for pid, _ in patients))
        raise InvalidValueError(
            f"accession {accession!r} is scheduled for several patients ({listed})",
            hint="fix the order on the RIS, or reconcile with --patient-id",
        )
    return exact[0]
