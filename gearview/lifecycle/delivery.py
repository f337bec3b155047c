"""When each cached study became safe elsewhere: the one fact the retention policy needs.

The QC ledger (`store/ledger.py`) records every send of a study's originals
to a node - one row per run of a send job, counting the study's instances the
node holds, refused and committed, stamped with the time the run started. A
send job delivered the study when its latest run left

- the node holding as many of the study's instances as the study has now,
  none refused, and every one committed where the node has the `commit` role;
- nothing in the study changed after the job's first run started: no
  instance received, written or put back (undo) since, and no edit recorded
  for the study since.

Together these make the counts stand for the instances themselves: an
instance that arrives, changes or moves into the study after the send started
breaks the second rule. The study is safe since the start of the latest job
that delivered it; a study never sent, changed since, or sent only as a
de-identified copy (which the ledger does not count as a send of the study)
has no such time and is never purged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from gearview.config import Config
from gearview.store import Cache
from gearview.store.ledger import Send


@dataclass(frozen=True)
class Delivery:
    """One send job of a study: when its first run started and how its latest run left it."""

    started: float
    latest: Send

    def holds_all(self, count: int, config: Config) -> bool:
        """Whether the node holds (and, where it commits, committed) all `count` instances."""
        last = self.latest
        if last.failed or last.instances < count:
            return False
        node = config.node(last.node)
        return node is None or "commit" not in node.roles or last.committed >= count


def deliveries(history: Iterable[Send]) -> list[Delivery]:
    """The send jobs in a study's ledger history (oldest first), their runs taken together."""
    jobs: dict[tuple[str, str], list[Send]] = {}
    for number, send in enumerate(history):
        jobs.setdefault((send.job or f"#{number}", send.node), []).append(send)
    return [Delivery(runs[0].time, runs[-1]) for runs in jobs.values()]


def _current(cache: Cache, study_uid: str) -> tuple[int, float]:
    """How many instances the study has and the last time any of them arrived or changed."""
    latest = 0.0
    records = cache.instances(study_uid=study_uid)
    for record in records:
        try:  # ctime too: an undo puts older files back by renaming them into place
            st = os.stat(record.path)
            written = max(st.st_mtime, st.st_ctime)
        except OSError:
            written = float("inf")  # a missing file is no proof of anything
        latest = max(latest, record.received_at, written)
    return len(records), latest


def safe_since(cache: Cache, config: Config, study_uids: Iterable[str]) -> dict[str, float]:
    """Study UID -> when its current content was last delivered; unsafe studies are absent."""
    sends = cache.ledger.sends(study_uids)
    edits = cache.ledger.last_edits(sends)
    found: dict[str, float] = {}
    for study_uid, history in sends.items():
        count, changed = _current(cache, study_uid)
        changed = max(changed, edits.get(study_uid, 0.0))
        times = [d.started for d in deliveries(history)
                 if d.started >= changed and d.holds_all(count, config)]
        if count and times:
            found[study_uid] = max(times)
    return found


def not_sent(cache: Cache, config: Config, study_uids: Iterable[str]) -> list[str]:
    """The studies that are not safe elsewhere: their current content exists only here."""
    uids = list(dict.fromkeys(study_uids))
    safe = safe_since(cache, config, uids)
    return [uid for uid in uids if uid not in safe]
