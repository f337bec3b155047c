"""Deleting studies on a user's request (`gearview rm`, the GUI's Delete): checked and audited.

The removal itself is the cache's all-or-nothing `remove_studies`; around it
this refuses a study a queued or running job still needs (naming the job),
says which studies were not sent elsewhere (the GUI asks, the CLI warns:
deleting them loses their only copy), drops the study's undo journals (they
hold copies of its files), its Keep flag and the QC ledger's record of its
sends (`Ledger.forget_copies`; its corrections stay made), and writes one
audit record per study.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gearview.changes import Changes
from gearview.config import Config
from gearview.errors import GearviewError, NotFoundError
from gearview.jobqueue import JobQueue
from gearview.lifecycle import delivery
from gearview.lifecycle.keep import set_kept
from gearview.store import Cache, audit
from gearview.store.batch import drop_journals
from gearview.store.records import StudyRecord


class StudyBusyError(GearviewError):
    """A job still reads or writes the study; nothing was deleted."""


@dataclass(frozen=True)
class Deletion:
    """A delete checked before it is asked for: the studies, and which exist only here."""

    studies: list[StudyRecord]
    #: The studies not safe elsewhere (`delivery.not_sent`): deleting loses their only copy.
    not_sent: list[str]

    @property
    def unsent_studies(self) -> list[StudyRecord]:
        return [s for s in self.studies if s.study_instance_uid in self.not_sent]


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


def prepare_delete(cache: Cache, config: Config, study_uids: Iterable[str],
                   queue: JobQueue) -> Deletion:
    """Check a delete before it is confirmed: `deletable`, and which studies were not sent."""
    studies = deletable(cache, study_uids, queue)
    uids = [s.study_instance_uid for s in studies]
    return Deletion(studies, delivery.not_sent(cache, config, uids))


def delete_studies(cache: Cache, study_uids: Iterable[str], *, reason: str = "",
                   queue: JobQueue, action: str = "delete",
                   unchanged_since: dict[str, float] | None = None,
                   not_sent: Iterable[str] = ()) -> Changes:
    """Delete whole studies (files, rows, undo journals, Keep flags, send records), all or
    nothing, audited.

    `unchanged_since` refuses a study changed after the given time (the purge's guard);
    `not_sent` (from `prepare_delete`) marks the audit records of studies that existed
    only here.
    """
    records = deletable(cache, study_uids, queue)
    uids = [r.study_instance_uid for r in records]
    changes = cache.remove_studies(uids, unchanged_since)
    drop_journals(cache, uids)
    set_kept(cache.home, uids, keep=False, reason=f"{action}d")
    cache.ledger.forget_copies(uids)
    unsent = set(not_sent)
    for record in records:
        audit.append(
            cache.home,
            action,
            study_uid=record.study_instance_uid,
            patient_name=record.patient_name,
            patient_id=record.patient_id,
            study_date=record.study_date,
            instances=record.number_of_study_related_instances,
            not_sent=record.study_instance_uid in unsent,
            reason=reason,
        )
    return changes
