"""Storage Commitment Push Model (PS3.4 J) as SCU: ask a node to commit what we sent.

We send N-ACTION (Request Storage Commitment) listing the instances, then
the node answers with N-EVENT-REPORT - on the same association if we keep it
open long enough, or later on a new association to our server. Both paths
end in `handle_event_report`, which records the result by Transaction UID;
`request_commitment` waits for it up to a timeout. Our server binds
`handle_event_report` to EVT_N_EVENT_REPORT and accepts the Push Model SOP
class with SCU/SCP role selection (see `server_context`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import build_context, build_role, evt
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import StorageCommitmentPushModel, StorageCommitmentPushModelInstance

from gearview.config import Config, Node
from gearview.errors import NetworkError
from gearview.net.association import association, lost

log = logging.getLogger(__name__)

#: PS3.4 J.3.2: N-ACTION Action Type ID "Request Storage Commitment".
REQUEST_COMMITMENT = 1
#: PS3.4 J.3.3: N-EVENT-REPORT Event Type IDs.
ALL_COMMITTED = 1
SOME_FAILED = 2


@dataclass
class CommitResult:
    """What the node committed: SOP Instance UID lists, and failure reasons by UID."""

    transaction_uid: str
    committed: list[str] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class _Results:
    """Commitment results by Transaction UID, waited for from any thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._results: dict[str, CommitResult] = {}

    def put(self, result: CommitResult) -> None:
        with self._cond:
            self._results[result.transaction_uid] = result
            self._cond.notify_all()

    def wait(self, transaction_uid: str, timeout: float) -> CommitResult | None:
        with self._cond:
            self._cond.wait_for(lambda: transaction_uid in self._results, timeout)
            return self._results.pop(transaction_uid, None)


RESULTS = _Results()


def _refs(ds: Dataset, keyword: str) -> list[Dataset]:
    return list(ds.get(keyword) or [])


def parse_event(event_type: int, info: Dataset) -> CommitResult:
    """An N-EVENT-REPORT Event Information data set as a result."""
    result = CommitResult(str(info.get("TransactionUID", "")))
    result.committed = [
        str(r.ReferencedSOPInstanceUID) for r in _refs(info, "ReferencedSOPSequence")
    ]
    for ref in _refs(info, "FailedSOPSequence"):
        result.failed[str(ref.ReferencedSOPInstanceUID)] = int(ref.get("FailureReason", 0x0110))
    if event_type == SOME_FAILED and not result.failed:
        log.warning("commitment %s reported failures without listing them", result.transaction_uid)
    return result


def handle_event_report(event: evt.Event) -> tuple[int, Dataset | None]:
    """EVT_N_EVENT_REPORT handler (our server and our own associations)."""
    request = event.request
    if request.AffectedSOPClassUID != StorageCommitmentPushModel:
        return 0x0112, None  # No such SOP Instance / class for us
    info = event.event_information
    result = parse_event(int(request.EventTypeID), info)
    log.info(
        "storage commitment %s: %d committed, %d failed",
        result.transaction_uid,
        len(result.committed),
        len(result.failed),
    )
    RESULTS.put(result)
    return 0x0000, None


def server_context() -> PresentationContext:
    """The context our server accepts so a node can send N-EVENT-REPORT to us."""
    context = build_context(StorageCommitmentPushModel)
    context.scu_role = True
    context.scp_role = True
    return context


def request_commitment(
    node: Node, config: Config, instances: Iterable[tuple[str, str]], wait: float = 30.0
) -> CommitResult | None:
    """Ask `node` to commit (SOP Class UID, SOP Instance UID) pairs; wait for its answer.

    Returns None when no report arrived within `wait` seconds (the node may
    still answer later to our server; the result is then logged).
    """
    pairs = list(instances)
    ds = Dataset()
    ds.TransactionUID = generate_uid()
    ds.ReferencedSOPSequence = []
    for sop_class, sop_uid in pairs:
        ref = Dataset()
        ref.ReferencedSOPClassUID = sop_class
        ref.ReferencedSOPInstanceUID = sop_uid
        ds.ReferencedSOPSequence.append(ref)
    contexts = [build_context(StorageCommitmentPushModel)]
    roles = [build_role(StorageCommitmentPushModel, scu_role=True, scp_role=True)]
    with association(
        node,
        config,
        contexts,
        ext_neg=roles,
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, handle_event_report)],
    ) as assoc:
        status, _ = assoc.send_n_action(
            ds, REQUEST_COMMITMENT, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
        )
        if not status or "Status" not in status:
            raise lost(assoc, node, "N-ACTION (storage commitment)")
        if int(status.Status) != 0:
            raise NetworkError(
                f"{node.name} refused storage commitment (status 0x{int(status.Status):04X})"
            )
        # Keep the association open while waiting: some nodes report on it.
        return RESULTS.wait(str(ds.TransactionUID), wait)
