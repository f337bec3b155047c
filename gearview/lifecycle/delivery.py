"""When each cached study became safe elsewhere: the one fact the retention policy needs.

A study is safe once its current content (every instance as it is now) was
sent to a node, and committed where that node has the `commit` role. The
policy may purge it `storage.keep_sent_days` after that; a study never
sent, changed since its last send, or sent only as a de-identified copy has
no such time and is never purged.

`safe_since` reads the finished send jobs of the queue: a job that delivered
every current instance of the study (no file of the study written or
received after the job ended) and, to a commit node, had them all committed.
It is the narrow interface to the per-study send status (SPEC §2.10 `sent`,
`status`); once the cache records that status itself, only this function
changes.
"""

from __future__ import annotations

import os

from gearview.config import Config
from gearview.jobqueue import DONE, SEND, JobQueue, JobRecord
from gearview.store import Cache


def _delivered(job: JobRecord, config: Config) -> bool:
    """A finished send of the originals that the node holds (and committed, where it commits)."""
    if job.kind != SEND or job.state != DONE or job.params.get("deidentify"):
        return False
    node = config.node(job.node)
    if node is not None and "commit" in node.roles:
        return job.result.get("committed", -1) >= len(job.completed_uids) > 0
    return bool(job.completed_uids)


def _changed_at(cache: Cache, study_uid: str) -> tuple[set[str], float]:
    """The study's SOP Instance UIDs and the last time any of its instances arrived or changed."""
    latest = 0.0
    uids = set()
    for record in cache.instances(study_uid=study_uid):
        uids.add(record.sop_instance_uid)
        try:  # ctime too: an undo puts older files back by renaming them into place
            st = os.stat(record.path)
            written = max(st.st_mtime, st.st_ctime)
        except OSError:
            written = float("inf")  # a missing file is no proof of anything
        latest = max(latest, record.received_at, written)
    return uids, latest


def safe_since(cache: Cache, config: Config, queue: JobQueue) -> dict[str, float]:
    """Study UID -> when its current content was last delivered; unsafe studies are absent."""
    jobs = [j for j in queue.jobs() if _delivered(j, config)]
    candidates = {u for j in jobs for u in j.study_uids}
    found: dict[str, float] = {}
    for study_uid in candidates:
        uids, changed = _changed_at(cache, study_uid)
        if not uids:
            continue
        times = [j.updated for j in jobs
                 if study_uid in j.study_uids and j.updated >= changed
                 and uids <= set(j.completed_uids)]
        if times:
            found[study_uid] = max(times)
    return found
