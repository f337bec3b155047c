"""The job runners for retrieve and send, shared by the GUI queue and the CLI.

A runner reads what to do from the job record, reports progress, records
each instance's outcome in the record (so a retry skips what arrived) and
raises on failure so the queue marks the job failed with a one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gearview.config import Config
from gearview.errors import Cancelled, NetworkError
from gearview.jobqueue import RETRIEVE, SEND, JobContext, JobQueue, Runner
from gearview.net.client import retrieve_to_cache
from gearview.net.nodes import resolve_node
from gearview.net.send import FAILED, SUCCESS, WARNING, InstanceOutcome, items_for, send_items


class SendFailed(NetworkError):
    """Some instances were refused by the peer; the job lists them."""

    hint = "see the per-instance statuses; retry sends only what is missing"


def send_params(node: str, targets: list[str]) -> dict[str, Any]:
    return {"node": node, "targets": list(targets)}


def retrieve_params(node: str, study_uid: str, series_uid: str | None = None) -> dict[str, Any]:
    return {"node": node, "study_uid": study_uid, "series_uid": series_uid or ""}


def make_runners(config: Config | Callable[[], Config], cache) -> dict[str, Runner]:
    """Runners bound to a cache; `config` may be a callable so that a long-lived
    queue (the GUI's) always uses the current settings."""
    current = config if callable(config) else (lambda: config)

    def run_send(ctx: JobContext) -> None:
        record = ctx.record
        config = current()
        node = resolve_node(config, record.params["node"])
        items = items_for(cache, record.params["targets"])
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
        if "commit" in node.roles and record.completed_uids:
            _commit(node, config, items, record)
        if record.failures:
            raise SendFailed(
                f"{len(record.failures)} of {record.result['total']} instances "
                f"were refused by {node.name}"
            )

    def run_retrieve(ctx: JobContext) -> None:
        record = ctx.record
        config = current()
        params = record.params
        node = resolve_node(config, params["node"])
        result = retrieve_to_cache(
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
            "status": result.message,
        }
        if result.cancelled:
            raise Cancelled("retrieve cancelled")
        record.message = f"{result.completed} instances received"
        if result.failed:
            raise NetworkError(
                f"{result.failed} instances failed to arrive from {node.name} "
                f"({result.completed} received)",
                hint="check that the node can reach this station; retry",
            )

    return {SEND: run_send, RETRIEVE: run_retrieve}


def _commit(node, config: Config, items, record) -> None:
    """Storage Commitment for what reached the node; the answer is shown with the job."""
    from gearview.net.commitment import request_commitment

    classes = {i.sop_uid: i.sop_class for i in items}
    pairs = [(classes[uid], uid) for uid in record.completed_uids if uid in classes]
    result = request_commitment(node, config, pairs)
    if result is None:
        record.result["commitment"] = "no answer yet (the node may report later)"
        return
    record.result["commitment"] = f"{len(result.committed)} committed, {len(result.failed)} not"
    for uid, reason in result.failed.items():
        record.warnings[uid] = f"not committed by {node.name} (reason 0x{reason:04X})"
    record.message += f"; {record.result['commitment']}"


def open_queue(home, config: Config | Callable[[], Config], cache) -> JobQueue:
    """The job queue with the network runners installed."""
    return JobQueue(home, config() if callable(config) else config, make_runners(config, cache))
