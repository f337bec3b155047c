"""Retrieve what the cache lacks: a retried or resumed retrieve continues, it does not restart.

When the cache holds none of the study, one study-level retrieve is the
cheapest. Otherwise the node is asked for the study's series (and, for a
series that is partly here, its instances) and only what is missing is
moved: complete series are skipped, partial ones are retrieved instance by
instance. A node that cannot answer the drill-down gets the whole series (or
study) asked for again; what arrives twice simply replaces the same file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gearview.config import Config, Node
from gearview.errors import NetworkError
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.net.client import (
    STATUS_SUCCESS,
    RetrieveResult,
    find_images,
    find_series,
    retrieve_to_cache,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One retrieve of a plan: a whole series, or the listed instances of it."""

    series_uid: str
    sop_uids: tuple[str, ...] = ()
    expected: int = 0


@dataclass
class Plan:
    """What to ask the node for; `None` parts means the whole study (or requested series)."""

    parts: list[Part] | None
    already_local: int = 0
    notes: list[str] = field(default_factory=list)


def _count(ds, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0


def plan_retrieve(
    node: Node,
    config: Config,
    cache,
    study_uid: str,
    series_uid: str | None = None,
    token: CancelToken | None = None,
) -> Plan:
    """Compare the node's series and instances with the cache's (blocking: a worker calls it)."""
    local = {
        s.series_instance_uid: s.number_of_series_related_instances
        for s in cache.series(study_uid)
    }
    if series_uid:
        local = {k: v for k, v in local.items() if k == series_uid}
    if not local:
        return Plan(None)
    try:
        remote = find_series(node, config, study_uid, token)
    except NetworkError as exc:
        return Plan(None, notes=[f"series query failed ({exc.one_line()}): asking for everything"])
    parts: list[Part] = []
    already = 0
    for ds in remote:
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid or (series_uid and uid != series_uid):
            continue
        have, total = local.get(uid, 0), _count(ds, "NumberOfSeriesRelatedInstances")
        if not have:
            parts.append(Part(uid, expected=total))
        elif total and have >= total:
            already += have
        else:
            part, here = _missing_instances(node, config, cache, study_uid, uid, total, token)
            already += here
            if part is not None:
                parts.append(part)
    return Plan(parts, already_local=already)


def _missing_instances(
    node: Node,
    config: Config,
    cache,
    study_uid: str,
    series_uid: str,
    total: int,
    token: CancelToken | None,
) -> tuple[Part | None, int]:
    """The part fetching what a partly cached series lacks, and how many of it are here."""
    try:
        remote = {
            str(ds.SOPInstanceUID)
            for ds in find_images(node, config, study_uid, series_uid, token)
            if ds.get("SOPInstanceUID")
        }
    except NetworkError:
        return Part(series_uid, expected=total), 0
    if not remote:
        return Part(series_uid, expected=total), 0
    here = {
        i.sop_instance_uid
        for i in cache.instances(study_uid=study_uid, series_uid=series_uid)
    }
    missing = tuple(sorted(remote - here))
    present = len(remote & here)
    return (Part(series_uid, missing, len(missing)) if missing else None), present


def retrieve_missing(
    node: Node,
    config: Config,
    cache,
    study_uid: str,
    series_uid: str | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> tuple[RetrieveResult, Plan]:
    """Retrieve the study (or series) leaving out what the cache already holds."""
    plan = plan_retrieve(node, config, cache, study_uid, series_uid, token)
    for note in plan.notes:
        log.info("retrieve: %s", note)
    if plan.parts is None:
        result = retrieve_to_cache(
            node, config, cache, study_uid, series_uid, progress=progress, token=token
        )
        return result, plan
    total = RetrieveResult()
    expected = sum(p.expected for p in plan.parts)
    done_before = 0
    for part in plan.parts:
        if token is not None and token.cancelled:
            total.cancelled = True
            break

        def report(p: Progress, offset: int = done_before) -> None:
            progress(Progress(offset + p.done, max(expected, offset + (p.total or 0)), p.message))

        result = retrieve_to_cache(
            node,
            config,
            cache,
            study_uid,
            part.series_uid,
            part.sop_uids or None,
            progress=report,
            token=token,
        )
        _add(total, result)
        done_before += result.completed + result.failed + result.warning
        if result.cancelled:
            break
    if not plan.parts:
        progress(Progress(0, 0, "everything is already in the local cache"))
    total.message = total.message or "success"
    return total, plan


def _add(total: RetrieveResult, result: RetrieveResult) -> None:
    total.completed += result.completed
    total.failed += result.failed
    total.warning += result.warning
    total.failed_uids += result.failed_uids
    total.cancelled = total.cancelled or result.cancelled
    if result.status != STATUS_SUCCESS:
        total.status = result.status
    total.message = result.message
