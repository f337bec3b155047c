"""Demographics edit of a whole study: validate, rewrite every instance, swap, audit.

This is the QC station's core job (SPEC §1): the new values reach every
instance of the study or none, the previous values stay in each instance's
Original Attributes Sequence, and the audit log gets one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gearview.edit.apply import Assignments, RewriteResult, Static, rewrite_instances
from gearview.edit.corrections import remember
from gearview.edit.provenance import REASON_CORRECT
from gearview.edit.values import Field, python_value, validate_all
from gearview.errors import InvalidValueError, NotFoundError
from gearview.jobs import CancelToken, ProgressCallback, no_progress
from gearview.store import Cache, audit
from gearview.store.batch import StudyChangedError
from gearview.store.records import InstanceRecord

#: An edit racing with arriving instances is redone this many times at most.
ATTEMPTS = 3


@dataclass
class EditPlan:
    """A validated edit and the instances it will rewrite (shown before running it)."""

    study_uid: str
    values: dict[Field, str]
    instances: list[InstanceRecord]

    @property
    def keywords(self) -> dict[str, str]:
        return {f.keyword: v for f, v in self.values.items()}


def plan_edit(cache: Cache, study_uid: str, values: Mapping[str, str]) -> EditPlan:
    """Validate every value and find the study's instances; nothing is written."""
    if not values:
        raise InvalidValueError("nothing to change", hint="give at least one KEYWORD=VALUE")
    checked = validate_all(dict(values))
    instances = cache.instances(study_uid=study_uid)
    if not instances:
        raise NotFoundError(f"no study {study_uid} in the local cache")
    return EditPlan(study_uid=study_uid, values=checked, instances=instances)


def assignments_for(values: dict[Field, str]) -> Assignments:
    return {f.tag: (f.vr, python_value(f, v)) for f, v in values.items()}


def edit_instances(
    cache: Cache,
    records: list[InstanceRecord],
    values: Mapping[str, str],
    *,
    reason: str = "",
    scope: str = "instances",
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> RewriteResult:
    """Set `values` on some instances (the tag editor's instance/series scope), all or nothing."""
    if not records:
        raise NotFoundError("no instances to edit")
    if not values:
        raise InvalidValueError("nothing to change", hint="give at least one KEYWORD=VALUE")
    checked = validate_all(dict(values))
    assignments = assignments_for(checked)
    keywords = {f.keyword: v for f, v in checked.items()}
    result = rewrite_instances(
        cache,
        records,
        Static(assignments),
        kind="edit",
        description=f"edit {', '.join(keywords)} ({scope})",
        reason=reason,
        progress=progress,
        token=token,
    )
    if scope == "study":
        remember(cache, assignments, undo_id=result.undo_id, reason=REASON_CORRECT,
                 kind="edit", study_uid=records[0].study_instance_uid)
    else:
        remember(cache, assignments, undo_id=result.undo_id, reason=REASON_CORRECT,
                 kind="edit", study_uid=records[0].study_instance_uid,
                 sop_uids=[r.sop_instance_uid for r in records])
    if result.instances:
        audit.append(
            cache.home,
            "edit",
            scope=scope,
            study_uid=records[0].study_instance_uid,
            instances=len(result.instances),
            of_instances=len(records),
            new=keywords,
            old=_distinct_previous(result),
            reason=reason,
            undo_id=result.undo_id,
        )
    return result


def edit_study(
    cache: Cache,
    study_uid: str,
    values: Mapping[str, str] | EditPlan,
    *,
    reason: str = "",
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> RewriteResult:
    """Set `values` (keyword -> text) on every instance of the study, all or nothing."""
    plan = values if isinstance(values, EditPlan) else plan_edit(cache, study_uid, values)
    assignments = assignments_for(plan.values)

    transform = Static(assignments)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            result = rewrite_instances(
                cache,
                plan.instances,
                transform,
                kind="edit",
                description=f"edit {', '.join(plan.keywords)}",
                reason=reason,
                progress=progress,
                token=token,
                complete_studies={study_uid},
            )
            break
        except StudyChangedError:
            # instances arrived meanwhile: nothing changed; redo it with all of them
            if attempt == ATTEMPTS:
                raise
            plan = EditPlan(study_uid, plan.values, cache.instances(study_uid=study_uid))
    remember(cache, assignments, undo_id=result.undo_id, reason=REASON_CORRECT, kind="edit",
             study_uid=study_uid)
    if result.instances:
        audit.append(
            cache.home,
            "edit",
            study_uid=study_uid,
            instances=len(result.instances),
            of_instances=len(plan.instances),
            new=plan.keywords,
            old=_distinct_previous(result),
            reason=reason,
            undo_id=result.undo_id,
            charset_switched=sum(c.charset_switched for c in result.instances),
        )
    return result


def _distinct_previous(result: RewriteResult) -> dict[str, list[str]]:
    """Old values per keyword, each distinct value once (a study may have disagreed)."""
    found: dict[str, list[str]] = {}
    for change in result.instances:
        for keyword, value in change.previous.items():
            values = found.setdefault(keyword, [])
            if value not in values:
                values.append(value)
    return found
