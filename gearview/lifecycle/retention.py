"""The retention policy: which sent studies leave the cache when it is over its limits.

Over `storage.max_size` or under `storage.min_free`, studies are purged
oldest first (by when they became safe elsewhere, `delivery.safe_since`)
until both limits hold again, and only studies that are

- safe elsewhere: every current instance sent (and committed, to a node
  with the `commit` role) and nothing received or changed since, as the QC
  ledger's send records tell (`delivery.py`);
- sent at least `storage.keep_sent_days` days ago;
- not marked Keep.

Everything else - received or edited but not sent, sent as a de-identified
copy only, kept - is never purged, whatever the limits say: a plan that
cannot get within them says how far short it falls (the store gate then
refuses new instances). Each purged study is deleted on its own (all or
nothing), refused if anything in it changed after the plan was made, and
audited as `purge` with the limit that required it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from gearview.config import Config
from gearview.errors import GearviewError, describe_error
from gearview.jobqueue import JobQueue
from gearview.jobs import CancelToken
from gearview.lifecycle.delete import delete_studies
from gearview.lifecycle.delivery import safe_since
from gearview.lifecycle.keep import kept
from gearview.lifecycle.space import Limits, Usage, human, measure
from gearview.store import Cache
from gearview.store.records import StudyRecord

log = logging.getLogger(__name__)
DAY = 86400.0
NOT_SENT, KEPT, TOO_RECENT = "not sent since it last changed", "marked Keep", "sent too recently"


@dataclass(frozen=True)
class Candidate:
    """A study the policy removes: its record, bytes and when it became safe elsewhere."""

    study: StudyRecord
    size: int
    safe_since: float


@dataclass
class PurgePlan:
    usage: Usage
    limits: Limits
    #: What goes, in order (oldest first); empty when within the limits.
    remove: list[Candidate] = field(default_factory=list)
    #: Bytes still over the limits once `remove` is gone (0: within them).
    short: int = 0
    #: Why the other studies stay: reason -> how many.
    protected: Counter[str] = field(default_factory=Counter)

    @property
    def needed(self) -> bool:
        return self.limits.over(self.usage)

    def why(self) -> str:
        """Which limit is crossed, for the audit log and the CLI."""
        return self.limits.crossed(self.usage)


@dataclass
class PurgeResult:
    plan: PurgePlan
    removed: list[Candidate] = field(default_factory=list)
    #: Planned studies that stayed after all (changed since sent, in use by a job): why.
    skipped: list[tuple[Candidate, str]] = field(default_factory=list)


def plan_purge(cache: Cache, config: Config, *, now: float | None = None,
               usage: Usage | None = None) -> PurgePlan:
    """What the policy would remove now (nothing is touched)."""
    usage = usage or measure(cache)
    plan = PurgePlan(usage, Limits.of(config, usage.disk_bytes))
    excess = plan.limits.excess(usage)
    if not excess:
        return plan
    now = time.time() if now is None else now
    horizon = now - config.storage.keep_sent_days * DAY
    marks = kept(cache.home)
    sizes = cache.study_sizes()
    safe = safe_since(cache, config, sizes)
    eligible = []
    for uid, size in sizes.items():
        if uid in marks:
            plan.protected[KEPT] += 1
        elif uid not in safe:
            plan.protected[NOT_SENT] += 1
        elif safe[uid] > horizon:
            plan.protected[TOO_RECENT] += 1
        else:
            eligible.append((safe[uid], uid, size))
    chosen, freed = [], 0
    for when, uid, size in sorted(eligible):
        if freed >= excess:
            break
        chosen.append((uid, size, when))
        freed += size
    records = {r.study_instance_uid: r for r in cache.studies_by_uid(u for u, _, _ in chosen)}
    plan.remove = [Candidate(records[u], size, when) for u, size, when in chosen if u in records]
    plan.short = max(0, excess - freed)
    return plan


def purge(cache: Cache, config: Config, queue: JobQueue, *,
          plan: PurgePlan | None = None, token: CancelToken | None = None) -> PurgeResult:
    """Apply a plan (a fresh one by default): delete each planned study, audited.

    The whole purge is one cache operation ("purge": one CACHE_CHANGED);
    `token` ends it between two studies.
    """
    plan = plan or plan_purge(cache, config)
    result = PurgeResult(plan)
    reason = f"retention policy: {plan.why()}"
    with cache.operation("purge"):
        for candidate in plan.remove:
            if token is not None and token.cancelled:
                break
            uid = candidate.study.study_instance_uid
            try:
                delete_studies(cache, [uid], reason=reason, queue=queue, action="purge",
                               unchanged_since={uid: candidate.safe_since})
            except GearviewError as exc:
                log.info("retention: a planned study stays: %s", describe_error(exc))
                result.skipped.append((candidate, describe_error(exc)))
                continue
            result.removed.append(candidate)
    if result.removed:
        log.info("retention: purged %d studies (%s)", len(result.removed),
                 human(sum(c.size for c in result.removed)))
    return result
