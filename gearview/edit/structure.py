"""Structure fixes: move series between studies, split a study, merge two studies.

Each fix is one all-or-nothing batch (like an edit): the moved instances get
the target study's Study Instance UID and its patient and study attributes,
a split gets a new Study Instance UID, and evidence references (KOS, SR,
presentation states) that point at a moved series are re-pointed at its new
study. Previous values go to Original Attributes and the audit log; undo
restores the byte-identical files at their old paths.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from gearview.edit.apply import Assignments, RewriteResult, rewrite_instances
from gearview.edit.corrections import remember
from gearview.edit.provenance import REASON_COERCE
from gearview.errors import InvalidValueError, NotFoundError
from gearview.jobs import CancelToken, ProgressCallback, no_progress
from gearview.store import Cache, audit
from gearview.store.attributes import PATIENT, STUDY, at_level
from gearview.store.records import InstanceRecord, StudyRecord

#: Patient and study attributes a moved instance takes from its new study (its equipment
#: attributes stay its own).
TARGET_ATTRIBUTES = tuple(
    a for a in at_level(PATIENT, STUDY, computed=False)
    if not a.equipment and a.keyword != "StudyInstanceUID"
)
STUDY_UID = Tag("StudyInstanceUID")
#: Sequences whose items reference studies by Study Instance UID + Referenced Series Sequence.
EVIDENCE_SEQUENCES = (
    "CurrentRequestedProcedureEvidenceSequence",
    "PertinentOtherEvidenceSequence",
    "IdenticalDocumentsSequence",
)


class OtherPatientError(InvalidValueError):
    """The target study belongs to another patient; moving needs a confirmation."""

    hint = "the series would take that patient's identity; --force (the GUI: confirming) moves it"


def same_patient(first: StudyRecord, second: StudyRecord) -> bool:
    """Two studies of one patient: the same Patient ID and Issuer (what merge requires)."""
    return (first.patient_id, first.issuer_of_patient_id) == (
        second.patient_id, second.issuer_of_patient_id)


def _study(cache: Cache, study_uid: str) -> StudyRecord:
    record = cache.study(study_uid)
    if record is None:
        raise NotFoundError(f"no study {study_uid} in the local cache")
    return record


def _target_assignments(target: StudyRecord | None, new_study_uid: str) -> Assignments:
    assignments: Assignments = {STUDY_UID: ("UI", new_study_uid)}
    if target is not None:
        for attr in TARGET_ATTRIBUTES:
            assignments[attr.tag] = (attr.vr, getattr(target, attr.field) or "")
    return assignments


def _remap_evidence(ds: Dataset, old_study: str, new_study: str, moved: set[str]) -> Assignments:
    """Re-point evidence items at a moved series' new study (splitting mixed items)."""
    result: Assignments = {}
    for keyword in EVIDENCE_SEQUENCES:
        seq = ds.get(keyword)
        if not seq:
            continue
        items: list[Dataset] = []
        changed = False
        for item in seq:
            series = list(item.get("ReferencedSeriesSequence", []))
            if item.get("StudyInstanceUID") != old_study or not series:
                items.append(item)
                continue
            moving = [s for s in series if s.get("SeriesInstanceUID") in moved]
            staying = [s for s in series if s.get("SeriesInstanceUID") not in moved]
            if not moving:
                items.append(item)
                continue
            changed = True
            if staying:
                kept = copy.deepcopy(item)
                kept.ReferencedSeriesSequence = Sequence(copy.deepcopy(staying))
                items.append(kept)
            moved_item = copy.deepcopy(item)
            moved_item.StudyInstanceUID = new_study
            moved_item.ReferencedSeriesSequence = Sequence(copy.deepcopy(moving))
            items.append(moved_item)
        if changed:
            result[Tag(keyword)] = ("SQ", Sequence(items))
    return result


def _run(
    cache: Cache,
    moving: list[InstanceRecord],
    others: list[InstanceRecord],
    source_uid: str,
    new_study_uid: str,
    target: StudyRecord | None,
    kind: str,
    reason: str,
    progress: ProgressCallback,
    token: CancelToken | None,
    complete: frozenset[str] = frozenset(),
) -> RewriteResult:
    moved_series = {r.series_instance_uid for r in moving}
    moving_uids = {r.sop_instance_uid for r in moving}
    base = _target_assignments(target, new_study_uid)

    def transform(ds: Dataset) -> Assignments:
        if str(ds.SOPInstanceUID) in moving_uids:
            return {**base, **_remap_evidence(ds, source_uid, new_study_uid, moved_series)}
        return _remap_evidence(ds, source_uid, new_study_uid, moved_series)

    # instances staying behind are re-read only when they may hold references (no pixels)
    candidates = moving + [r for r in others if r.rows is None]
    result = rewrite_instances(
        cache,
        candidates,
        transform,
        kind=kind,
        description=f"{kind} {len(moved_series)} series",
        reason=reason,
        reason_code=REASON_COERCE,
        progress=progress,
        token=token,
        complete_studies=complete,
    )
    remember(cache, base, undo_id=result.undo_id, reason=REASON_COERCE, kind=kind,
             study_uid=source_uid, sop_uids=[r.sop_instance_uid for r in moving],
             touched=[source_uid, new_study_uid])
    audit.append(
        cache.home,
        kind,
        source_study_uid=source_uid,
        target_study_uid=new_study_uid,
        series=sorted(moved_series),
        instances=len(result.instances),
        reason=reason,
        undo_id=result.undo_id,
    )
    return result


def move_series(
    cache: Cache,
    series_uids: Iterable[str],
    target_study_uid: str,
    *,
    source_study_uid: str | None = None,
    reason: str = "",
    allow_other_patient: bool = False,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> RewriteResult:
    """Move series into an existing study (another patient's only with `allow_other_patient`).

    `source_study_uid` names the study they leave when a Series Instance UID is
    used by several studies.
    """
    series = list(dict.fromkeys(series_uids))
    target = _study(cache, target_study_uid)
    moving = []
    for series_uid in series:
        found = cache.instances(study_uid=source_study_uid, series_uid=series_uid)
        if not found:
            raise NotFoundError(f"no series {series_uid} in the local cache",
                                hint="see `gearview ls STUDY_UID`")
        moving += found
    sources = {r.study_instance_uid for r in moving}
    if len(sources) != 1:
        raise InvalidValueError("move series of one study at a time")
    (source_uid,) = sources
    if source_uid == target_study_uid:
        raise InvalidValueError("the series already belong to that study")
    source = _study(cache, source_uid)
    if not allow_other_patient and not same_patient(source, target):
        raise OtherPatientError(
            f"study {target_study_uid} belongs to another patient "
            f"(Patient ID {target.patient_id or '(none)'}, the series has "
            f"{source.patient_id or '(none)'}); nothing was moved"
        )
    others = [
        r for r in cache.instances(study_uid=source_uid) if r.series_instance_uid not in series
    ]
    others += cache.instances(study_uid=target_study_uid)
    return _run(
        cache,
        moving,
        others,
        source_uid,
        target_study_uid,
        target,
        "move-series",
        reason,
        progress,
        token,
    )


def split_study(
    cache: Cache,
    study_uid: str,
    series_uids: Iterable[str],
    *,
    reason: str = "",
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> tuple[str, RewriteResult]:
    """Move some series of a study into a new study (new Study Instance UID); returns its UID."""
    series = set(series_uids)
    instances = cache.instances(study_uid=study_uid)
    if not instances:
        raise NotFoundError(f"no study {study_uid} in the local cache")
    for series_uid in sorted(series - {r.series_instance_uid for r in instances}):
        raise NotFoundError(f"no series {series_uid} in study {study_uid}",
                            hint=f"see `gearview ls {study_uid}`")
    moving = [r for r in instances if r.series_instance_uid in series]
    if not moving or len(moving) == len(instances):
        raise InvalidValueError("choose some, but not all, series of the study to split off")
    new_uid = generate_uid()
    others = [r for r in instances if r.series_instance_uid not in series]
    result = _run(
        cache, moving, others, study_uid, new_uid, None, "split-study", reason, progress, token
    )
    return new_uid, result


def merge_studies(
    cache: Cache,
    source_study_uid: str,
    target_study_uid: str,
    *,
    reason: str = "",
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> RewriteResult:
    """Move every series of `source` into `target`; both must belong to the same patient."""
    source = _study(cache, source_study_uid)
    target = _study(cache, target_study_uid)
    if source_study_uid == target_study_uid:
        raise InvalidValueError("cannot merge a study with itself")
    if not same_patient(source, target):
        raise InvalidValueError(
            "the studies belong to different patients (Patient ID differs)",
            hint="edit the patient first, or move the series to the other patient's study",
        )
    moving = cache.instances(study_uid=source_study_uid)
    others = cache.instances(study_uid=target_study_uid)
    return _run(
        cache,
        moving,
        others,
        source_study_uid,
        target_study_uid,
        target,
        "merge-studies",
        reason,
        progress,
        token,
        complete=frozenset({source_study_uid}),  # nothing may stay behind in the source
    )
