"""The job runners for retrieve and send, shared by the GUI queue and the CLI.

A runner reads what to do from the job record, reports progress, records
each instance's outcome in the record (so a retry skips what arrived) and
raises on failure so the queue marks the job failed with a one-line reason.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gearview.config import Config
from gearview.deid import BurnedInRefused, DeidOptions, deidentify_files, find_burned_in
from gearview.errors import Cancelled, GearviewError, PartlyDoneError
from gearview.jobqueue import RETRIEVE, SEND, JobContext, JobQueue, Runner
from gearview.net.nodes import resolve_node
from gearview.net.resume import retrieve_missing
from gearview.net.send import (
    FAILED,
    SUCCESS,
    WARNING,
    InstanceOutcome,
    SendItem,
    items_for,
    send_items,
)
from gearview.qc.checks import guard
from gearview.store import audit
from gearview.store.ledger import Send


class SendFailed(PartlyDoneError):
    """Some instances were refused by the peer; the job lists them."""

    hint = "see the per-instance statuses; retry sends only what is missing"


class RetrieveIncomplete(PartlyDoneError):
    """Some instances of a retrieve did not arrive."""

    hint = "check that the node can reach this station; retry"


class CommitmentUnanswered(PartlyDoneError):
    """The node did not report storage commitment in time (it may still do so later)."""

    hint = "the instances were sent; retry to ask for commitment again"


#: How long a send waits for the node's storage commitment report (unless the node has
#: its own timeout).
COMMIT_WAIT = 30.0


def send_params(
    node: str,
    targets: list[str],
    deidentify: DeidOptions | None = None,
    override_reason: str = "",
) -> dict[str, Any]:
    """A send job; `override_reason` records that its safety findings were overridden.

    `study_uids` names the cached studies the job reads (a delete of them
    waits for it): the targets themselves, as the GUI sends selected studies;
    the CLI, which also sends series, instances and files, replaces it.
    """
    params: dict[str, Any] = {"node": node, "targets": list(targets), "study_uids": list(targets)}
    if deidentify is not None:
        params["deidentify"] = deidentify.to_params()
    if override_reason:
        params["override"] = {"reason": override_reason}
    return params


def check_burned_in(cache, targets: list[str], options: DeidOptions | None) -> None:
    """Refuse before queuing a de-identified send the runner would refuse (BurnedInRefused)."""
    if options is None or options.allow_burned_in:
        return
    refused = find_burned_in(i.path for i in items_for(cache, targets))
    if refused:
        raise BurnedInRefused(refused)


@contextmanager
def _deidentified(cache, items: list[SendItem], ctx: JobContext) -> Iterator[list[SendItem]]:
    """The items to send: as they are, or de-identified copies in the spool (removed after).

    The copies' UIDs come from the station key, so a retry makes the same
    UIDs again and skips what already arrived.
    """
    options = DeidOptions.from_params(ctx.record.params.get("deidentify"))
    if options is None:
        yield items
        return
    cache.spool_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="deid-send-", dir=cache.spool_dir))
    try:
        unique = list({i.sop_uid: i for i in items}.values())
        copies = deidentify_files(
            cache.home, [i.path for i in unique], workdir, options, ctx.progress, ctx.token
        )
        yield [SendItem(c.path, c.sop_uid, c.sop_class, c.transfer_syntax) for c in copies]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if ctx.record.completed_uids:
            audit.append(
                cache.home,
                "deid.send",
                node=ctx.record.params["node"],
                targets=list(ctx.record.params["targets"]),
                instances=len(ctx.record.completed_uids),
                deidentified=options.describe(),
            )


def retrieve_params(node: str, study_uid: str, series_uid: str | None = None) -> dict[str, Any]:
    return {"node": node, "study_uid": study_uid, "series_uid": series_uid or ""}


def make_runners(config: Config | Callable[[], Config], cache) -> dict[str, Runner]:
    """Runners bound to a cache; `config` may be a callable so that a long-lived
    queue (the GUI's) always uses the current settings."""
    current = config if callable(config) else (lambda: config)

    def run_send(ctx: JobContext) -> None:
        record = ctx.record
        started = time.time()  # the ledger dates the send by its start (`_record_send`)
        config = current()
        node = resolve_node(config, record.params["node"])
        originals = items_for(cache, record.params["targets"])
        study_of = _study_of(cache, originals)
        # checked (and overridden) when submitted; a de-identified copy has no identity to mix
        if not record.params.get("override") and not record.params.get("deidentify"):
            guard(cache, sorted(set(study_of.values())), "send", target=node.name)
        committed: set[str] = set()
        error = ""
        try:
            with _deidentified(cache, originals, ctx) as items:
                committed = _send(node, config, items, ctx)
        except SendFailed:
            raise
        except BaseException as exc:  # nothing more reached the node: the rest failed
            error = exc.one_line() if isinstance(exc, GearviewError) else type(exc).__name__
            raise
        finally:
            if not record.params.get("deidentify"):  # a de-identified copy is another study
                _record_send(cache, node.name, record, study_of, originals, error, started)
                cache.ledger.record_commitment(record.id, _per_study(committed, study_of))

    def _send(node, config: Config, items: list[SendItem], ctx: JobContext) -> set[str]:
        """Send and ask for commitment; returns the SOP Instance UIDs the node committed."""
        record = ctx.record
        completed = set(record.completed_uids)

        def on_outcome(outcome: InstanceOutcome) -> None:
            uid = outcome.sop_uid
            if outcome.outcome in (SUCCESS, WARNING):
                if uid not in completed:
                    completed.add(uid)
                    record.completed_uids.append(uid)
                record.failures.pop(uid, None)
            if outcome.outcome == WARNING:
                record.warnings[uid] = outcome.message
            if outcome.outcome == FAILED:
                record.failures[uid] = outcome.message

        result = send_items(
            node, config, items, ctx.progress, ctx.token, skip=completed, on_outcome=on_outcome
        )
        record.result = {
            "total": len({i.sop_uid for i in items}),
            "sent": len(record.completed_uids),
            "failed": len(record.failures),
            "warnings": len(record.warnings),
            "seconds": round(result.seconds, 3),
            "bytes": result.bytes_sent,
        }
        record.message = f"{len(record.completed_uids)} of {record.result['total']} sent" + (
            f", {len(record.warnings)} with warnings" if record.warnings else ""
        )
        committed = set()
        if "commit" in node.roles and record.completed_uids:
            committed = _commit(cache.home, node, config, items, record)
        if record.failures:
            raise SendFailed(
                f"{len(record.failures)} of {record.result['total']} instances "
                f"were refused by {node.name}"
            )
        return committed

    def run_retrieve(ctx: JobContext) -> None:
        record = ctx.record
        config = current()
        params = record.params
        node = resolve_node(config, params["node"])
        result, plan = retrieve_missing(
            node,
            config,
            cache,
            params["study_uid"],
            params.get("series_uid") or None,
            progress=ctx.progress,
            token=ctx.token,
        )
        record.result = {
            "completed": result.completed,
            "failed": result.failed,
            "warning": result.warning,
            "already_local": plan.already_local,
            "status": result.message,
        }
        audit.append(cache.home, "retrieve", node=node.name, study_uid=params["study_uid"],
                     series_uid=params.get("series_uid") or "", job=record.id,
                     completed=result.completed, failed=result.failed,
                     cancelled=result.cancelled)
        if result.cancelled:
            raise Cancelled("retrieve cancelled")
        record.message = f"{result.completed} instances received" + (
            f", {plan.already_local} were already here" if plan.already_local else ""
        )
        if result.failed:
            raise RetrieveIncomplete(
                f"{result.failed} instances failed to arrive from {node.name} "
                f"({result.completed} received)"
            )

    return {SEND: run_send, RETRIEVE: run_retrieve}


def _study_of(cache, items) -> dict[str, str]:
    """SOP Instance UID -> cached study, for the items that are cached instances."""
    uids = json.dumps([i.sop_uid for i in items])
    rows = cache.conn.execute(
        "SELECT sop_instance_uid, study_instance_uid FROM instance WHERE sop_instance_uid IN "
        "(SELECT value FROM json_each(?))", (uids,))
    return {row[0]: row[1] for row in rows}


def _per_study(sop_uids, study_of: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for uid in sop_uids:
        if uid in study_of:
            counts[study_of[uid]] = counts.get(study_of[uid], 0) + 1
    return counts


def _record_send(cache, node: str, record, study_of: dict[str, str], items, error: str,
                 started: float) -> None:
    """Where each study stands after this send (ledger), and one audit line.

    The ledger's time is when the run started: an instance that arrived or
    changed after it may have been read before the change, so only what is
    older than that time counts as sent (`lifecycle/delivery.py`).
    """
    sent = _per_study(record.completed_uids, study_of)
    if error:  # nothing more reached the node: what is not sent failed
        failed = _per_study({i.sop_uid for i in items} - set(record.completed_uids), study_of)
    else:
        failed = _per_study(record.failures, study_of)
    studies = sorted(set(study_of.values()))
    cache.ledger.record_send(
        Send(uid, node, started, sent.get(uid, 0), failed.get(uid, 0), job=record.id)
        for uid in studies
    )
    override = record.params.get("override") or {}
    audit.append(cache.home, "send", node=node, job=record.id, studies=studies,
                 sent=len(record.completed_uids), failed=sum(failed.values()),
                 warnings=len(record.warnings), error=error,
                 override_reason=override.get("reason", ""))


def _commit(home, node, config: Config, items, record) -> set[str]:
    """Storage Commitment for what reached the node; the answer is shown with the job.

    Returns the SOP Instance UIDs the node committed.
    """
    from gearview.net.commitment import request_commitment

    classes = {i.sop_uid: i.sop_class for i in items}
    pairs = [(classes[uid], uid) for uid in record.completed_uids if uid in classes]
    wait = node.timeout or COMMIT_WAIT
    result = request_commitment(home, node, config, pairs, wait=wait)
    if result is None:
        record.result["commitment"] = f"no answer within {wait:g} s"
        raise CommitmentUnanswered(
            f"{len(pairs)} instances sent, but {node.name} did not report storage commitment "
            f"within {wait:g} s"
        )
    record.result["commitment"] = f"{len(result.committed)} committed, {len(result.failed)} not"
    record.result["not_committed"] = len(result.failed)
    for uid, reason in result.failed.items():
        record.warnings[uid] = f"not committed by {node.name} (reason 0x{reason:04X})"
    record.message += f"; {record.result['commitment']}"
    return set(result.committed)


def open_queue(home, config: Config | Callable[[], Config], cache) -> JobQueue:
    """The job queue with the network runners installed."""
    return JobQueue(home, config, make_runners(config, cache))
