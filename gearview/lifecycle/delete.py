"""Deleting studies on a user's request (`gearview rm`, the GUI's Delete): checked and audited.

The removal itself is the cache's all-or-nothing `remove_studies`; around it
this refuses a study a queued or running job still needs (naming the job),
drops the study's undo journals (they hold copies of its files) and its
Keep flag, and writes one audit record per study.
"""

from __future__ import annotations

from collections.abc import Iterable

from gearview.changes import Changes
from gearview.errors import GearviewError, NotFoundError
from gearview.jobqueue import JobQueue
from gearview.lifecycle.keep import set_kept
from gearview.store import Cache, audit
from gearview.store.batch import drop_journals
from gearview.store.records import StudyRecord


class StudyBusyError(GearviewError):
    """A job still reads or writes the study; nothing was deleted."""


def deletable(cache: Cache, study_uids: Iterable[str], queue: JobQueue) -> list[StudyRecord]:
    """The studies' records, or an error naming the unknown UID or the job in the way."""
    uids = list(dict.fromkeys(study_uids))
    records = {r.study_instance_uid: r for r in cache.studies_by_uid(uids)}
    for uid in uids:
        if uid not in records:
            raise NotFoundError(f"no study {uid} in the local cache", hint="see `gearview ls`")
    for job in queue.pending_for(uids):
        uid = next(u for u in uids if u in job.study_uids)
        raise StudyBusyError(
            f"study {uid} is in use by {job.state} {job.kind} job {job.id} ({job.title}); "
            "nothing was deleted",
            hint=f"wait for it, or cancel it: gearview jobs cancel {job.id}",
        )
    return [records[u] for u in uids]


def delete_studies(cache: Cache, study_uids: Iterable[str], *, reason: str = "",
                   queue: JobQueue, action: str = "delete",
                   unchanged_since: dict[str, float] | None = None) -> Changes:
    """Delete whole studies (files, rows, undo journals, Keep flags), all or nothing, audited.

    `unchanged_since` refuses a study changed after the given time (the purge's guard).
    """
    records = deletable(cache, study_uids, queue)
    uids = [r.study_instance_uid for r in records]
    changes = cache.remove_studies(uids, unchanged_since)
    drop_journals(cache, uids)
    set_kept(cache.home, uids, keep=False, reason=f"{action}d")
    for record in records:
        audit.append(
            cache.home,
            action,
            study_uid=record.study_instance_uid,
            patient_name=record.patient_name,
            patient_id=record.patient_id,
            study_date=record.study_date,
            instances=record.number_of_study_related_instances,
            reason=reason,
        )
    return changes
