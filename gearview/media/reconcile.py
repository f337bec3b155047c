"""Import reconciliation (IHE IRWF.b): each outside patient becomes a local one.

A `ReconcilePlan` maps every outside patient of a source (outside Patient ID
and issuer) to a `Target`: the local identity (ID, issuer, name, birth date,
sex) taken from the local record - the cache, a PACS lookup or a worklist
order - and, for an order, its Accession Number and Requested Procedure.
Applied to the imported copy before it enters the cache: the outside ID and
issuer go to Other Patient IDs Sequence, every replaced value to Original
Attributes Sequence (reason COERCE, PS3.3 C.12.1.1.9.2: "reconciliation
during import of media from an external institution").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from gearview.config import Config, Node
from gearview.edit.apply import Assignments, apply_assignments
from gearview.edit.provenance import REASON_COERCE, modification_datetime
from gearview.errors import InvalidDicomError, InvalidValueError
from gearview.home import Home
from gearview.identity import mappings
from gearview.identity.lookup import (
    LookupResult,
    PatientIdentity,
    find_by_id,
    find_candidates,
    order_identity,
)
from gearview.jobs import CancelToken
from gearview.net.worklist import WorklistItem, worklist_nodes
from gearview.store.records import InstanceInfo

MAX_ID_LENGTH = 64  # LO
#: The IHE profile named in the audit log.
PROFILE = "IRWF"
OutsideKey = tuple[str, str]


@dataclass(frozen=True)
class Reconcile:
    """A local Patient ID (and issuer) the user gives for an outside patient."""

    patient_id: str
    issuer: str = ""

    def __post_init__(self) -> None:
        for label, value in (("patient ID", self.patient_id), ("issuer", self.issuer)):
            if len(value) > MAX_ID_LENGTH or "\\" in value or any(ord(c) < 32 for c in value):
                raise InvalidValueError(
                    f"invalid {label} {value!r}",
                    hint="at most 64 characters, no backslash or control characters",
                )
        if not self.patient_id.strip():
            raise InvalidValueError("the local patient ID is empty", hint="give the local MRN")


def parse_map(text: str) -> tuple[str, Reconcile]:
    """`OUTSIDE_ID=LOCAL_ID[@ISSUER]` as (outside ID, local target)."""
    outside, sep, local = text.partition("=")
    if not sep or not outside.strip() or not local.strip():
        raise InvalidValueError(
            f"not a mapping: {text!r}", hint="use OUTSIDE_ID=LOCAL_ID or OUTSIDE_ID=LOCAL_ID@ISSUER"
        )
    patient_id, _, issuer = local.partition("@")
    return outside.strip(), Reconcile(patient_id.strip(), issuer.strip())


@dataclass
class OutsidePatient:
    """One patient as the source records it (several names under one ID are all kept)."""

    identity: PatientIdentity
    institution: str = ""
    names: set[str] = field(default_factory=set)
    instances: int = 0

    def describe(self) -> str:
        who = self.identity
        issuer = f" (issuer {who.issuer})" if who.issuer else ""
        return f"{who.patient_id!r}{issuer} {who.name!r}"


def outside_patients(infos: Iterable[InstanceInfo]) -> dict[OutsideKey, OutsidePatient]:
    """The outside patients of the chosen instances, keyed by (Patient ID, issuer)."""
    patients: dict[OutsideKey, OutsidePatient] = {}
    for info in infos:
        key = (info.patient_id, info.issuer_of_patient_id)
        patient = patients.get(key)
        if patient is None:
            identity = PatientIdentity(*key, info.patient_name, info.patient_birth_date,
                                       info.patient_sex)
            patient = patients[key] = OutsidePatient(identity, info.institution_name)
        patient.names.add(info.patient_name)
        patient.instances += 1
    return patients


@dataclass(frozen=True)
class Target:
    """What an outside patient becomes; empty name/birth date/sex keep the outside value."""

    identity: PatientIdentity
    source: str = ""
    order: WorklistItem | None = None


@dataclass
class ReconcilePlan:
    targets: dict[OutsideKey, Target] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def target_for(self, info: InstanceInfo) -> Target | None:
        return self.targets.get((info.patient_id, info.issuer_of_patient_id))

    def describe(self, patients: Mapping[OutsideKey, OutsidePatient]) -> list[dict[str, Any]]:
        """Outside -> local per patient (audit log, report, CLI JSON)."""
        rows = []
        for key, target in self.targets.items():
            outside = patients[key].identity if key in patients else PatientIdentity(*key)
            row: dict[str, Any] = {
                "outside": _identity_json(outside),
                "local": _identity_json(target.identity),
                "source": target.source,
            }
            if target.order is not None:
                row["accession"] = target.order.accession
            rows.append(row)
        return rows


def _identity_json(identity: PatientIdentity) -> dict[str, str]:
    return {
        "patient_id": identity.patient_id,
        "issuer": identity.issuer,
        "name": identity.name,
        "birth_date": identity.birth_date,
        "sex": identity.sex,
    }


def _listed(patients: Mapping[OutsideKey, OutsidePatient]) -> str:
    return ", ".join(p.describe() for p in patients.values())


def plan_for_id(patients: Mapping[OutsideKey, OutsidePatient], local: Reconcile) -> ReconcilePlan:
    """One local ID for a single-patient source; several patients are refused by name."""
    if len(patients) > 1:
        raise InvalidValueError(
            f"the source holds {len(patients)} patients ({_listed(patients)}): "
            "one local patient ID cannot be right for all of them",
            hint="give one --map OUTSIDE_ID=LOCAL_ID[@ISSUER] per patient",
        )
    return ReconcilePlan(
        {key: Target(PatientIdentity(local.patient_id, local.issuer)) for key in patients}
    )


def plan_for_maps(
    patients: Mapping[OutsideKey, OutsidePatient], maps: Mapping[str, Reconcile]
) -> ReconcilePlan:
    """A local ID per outside Patient ID; an ID not on the source or used twice is refused."""
    plan = ReconcilePlan()
    for outside_id, local in maps.items():
        keys = [key for key in patients if key[0] == outside_id]
        if not keys:
            raise InvalidValueError(
                f"no outside patient {outside_id!r} in the source (it holds {_listed(patients)})",
                hint="map the Patient IDs the source holds",
            )
        if len(keys) > 1:
            raise InvalidValueError(
                f"outside patient ID {outside_id!r} stands for {len(keys)} patients of different "
                f"issuers ({_listed({k: patients[k] for k in keys})})",
                hint="import them one at a time, or reconcile them in the import dialog",
            )
        plan.targets[keys[0]] = Target(PatientIdentity(local.patient_id, local.issuer))
    unmapped = {k: p for k, p in patients.items() if k not in plan.targets}
    if unmapped:
        plan.warnings.append(f"imported as they are (no --map given): {_listed(unmapped)}")
    return plan


def plan_for_order(
    patients: Mapping[OutsideKey, OutsidePatient], order: WorklistItem
) -> ReconcilePlan:
    """The order's patient for a single-patient source."""
    if len(patients) > 1:
        raise InvalidValueError(
            f"the source holds {len(patients)} patients ({_listed(patients)}): "
            f"order {order.accession!r} is for one patient",
            hint="import the patients one at a time, or use --map per patient",
        )
    source = f"worklist {order.source}".strip()
    return ReconcilePlan({key: Target(order_identity(order), source, order) for key in patients})


def complete_plan(
    plan: ReconcilePlan,
    patients: Mapping[OutsideKey, OutsidePatient],
    conn: sqlite3.Connection | None,
    config: Config,
    query_nodes: Sequence[Node] = (),
    token: CancelToken | None = None,
) -> ReconcilePlan:
    """Fill in the local demographics of targets given by ID only (cache, then PACS)."""
    for key, target in list(plan.targets.items()):
        if target.source:
            continue
        local = target.identity
        found, source, warnings = find_by_id(
            conn, local.patient_id, local.issuer, config, query_nodes, token
        )
        plan.warnings.extend(warnings)
        if found is None:
            plan.warnings.append(
                f"no local record for patient ID {local.patient_id!r}: the outside name, "
                f"birth date and sex of {patients[key].describe()} are kept"
            )
            continue
        plan.targets[key] = replace(target, identity=found, source=source)
    for key, target in plan.targets.items():
        plan.warnings.extend(_differences(patients[key], target))
    return plan


@dataclass
class ReconcileRequest:
    """What the user asked for: one local ID, one per outside ID, or an order."""

    patient: Reconcile | None = None
    maps: dict[str, Reconcile] = field(default_factory=dict)
    order: WorklistItem | None = None
    #: `query` nodes asked for the local record of an ID the cache does not know.
    lookup_nodes: list[Node] = field(default_factory=list)

    def plan(
        self,
        patients: Mapping[OutsideKey, OutsidePatient],
        conn: sqlite3.Connection | None,
        config: Config,
        token: CancelToken | None = None,
    ) -> ReconcilePlan:
        if sum((self.patient is not None, bool(self.maps), self.order is not None)) != 1:
            raise InvalidValueError(
                "reconcile with exactly one of: a local patient ID, a mapping per patient, "
                "or an order"
            )
        if self.order is not None:
            plan = plan_for_order(patients, self.order)
        elif self.patient is not None:
            plan = plan_for_id(patients, self.patient)
        else:
            plan = plan_for_maps(patients, self.maps)
        return complete_plan(plan, patients, conn, config, self.lookup_nodes, token)


def propose(
    patient: OutsidePatient,
    home: Home,
    conn: sqlite3.Connection | None,
    config: Config,
    token: CancelToken | None = None,
) -> LookupResult:
    """Candidates for one outside patient: the remembered mapping first, then the cache,
    the `query` nodes and the worklist (the import dialog's reconcile panel)."""
    query_nodes = [n for n in config.nodes if "query" in n.roles]
    result = find_candidates(
        patient.identity, conn, config, query_nodes, worklist_nodes(config), token
    )
    known = mappings.remembered(home, *patient.identity.key, patient.institution)
    if known is not None:
        result.candidates = [known, *result.candidates]
    return result


def _differences(outside: OutsidePatient, target: Target) -> list[str]:
    """What the clerk should see change (the outside value is kept in the instance)."""
    if not target.source:
        return []
    changes = []
    for label, before, after in (
        ("name", outside.identity.name, target.identity.name),
        ("birth date", outside.identity.birth_date, target.identity.birth_date),
        ("sex", outside.identity.sex, target.identity.sex),
    ):
        if after and before != after:
            changes.append(f"{label} {before!r} -> {after!r}")
    if not changes:
        return []
    return [
        f"outside patient {outside.describe()} takes the local record of "
        f"{target.identity.patient_id!r} ({target.source}): {', '.join(changes)}"
    ]


def _other_ids(ds: Dataset, outside_id: str, outside_issuer: str) -> DicomSequence:
    others = DicomSequence(list(ds.get("OtherPatientIDsSequence", [])))
    known = any(
        o.get("PatientID") == outside_id and o.get("IssuerOfPatientID", "") == outside_issuer
        for o in others
    )
    if outside_id and not known:
        item = Dataset()
        item.PatientID = outside_id
        if outside_issuer:
            item.IssuerOfPatientID = outside_issuer
        item.TypeOfPatientID = "TEXT"
        others.append(item)
    return others


def _request_attributes(order: WorklistItem) -> DicomSequence:
    item = Dataset()
    item.AccessionNumber = order.accession
    item.RequestedProcedureID = order.requested_procedure_id
    item.RequestedProcedureDescription = order.requested_procedure_description
    item.ScheduledProcedureStepDescription = order.step_description
    return DicomSequence([item])


def assignments(ds: Dataset, target: Target) -> Assignments:
    """The elements to set on one outside instance."""
    local = target.identity
    outside_id = str(ds.get("PatientID", "") or "")
    outside_issuer = str(ds.get("IssuerOfPatientID", "") or "")
    values: Assignments = {Tag("PatientID"): ("LO", local.patient_id)}
    if local.issuer or "IssuerOfPatientID" in ds:
        values[Tag("IssuerOfPatientID")] = ("LO", local.issuer or None)
    if (outside_id, outside_issuer) != local.key:
        values[Tag("OtherPatientIDsSequence")] = ("SQ", _other_ids(ds, outside_id, outside_issuer))
    for keyword, vr, value in (
        ("PatientName", "PN", local.name),
        ("PatientBirthDate", "DA", local.birth_date),
        ("PatientSex", "CS", local.sex),
    ):
        if value:
            values[Tag(keyword)] = (vr, value)
    if target.order is not None:
        values[Tag("AccessionNumber")] = ("SH", target.order.accession)
        values[Tag("RequestAttributesSequence")] = ("SQ", _request_attributes(target.order))
    return values


def reconcile_dataset(ds: Dataset, target: Target, when: str | None = None) -> bool:
    """Apply `target` to `ds`; False when it already holds every value."""
    source = str(ds.get("IssuerOfPatientID", "") or "") or str(ds.get("InstitutionName", "") or "")
    change = apply_assignments(
        ds, assignments(ds, target), REASON_COERCE, when or modification_datetime(), source
    )
    return change is not None


def reconcile_file(source: Path, target_path: Path, target: Target) -> None:
    """Write a reconciled copy of `source` to `target_path` (same transfer syntax)."""
    try:
        ds = pydicom.dcmread(source)
        reconcile_dataset(ds, target)
        ds.save_as(target_path, enforce_file_format=True)
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InvalidDicomError(f"cannot reconcile: {exc}") from None
