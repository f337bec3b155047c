"""Storage Commitment Push Model (PS3.4 J) as SCU: ask a node to commit what we sent.

We send N-ACTION (Request Storage Commitment) listing the instances, then
the node answers with N-EVENT-REPORT - on the same association if we keep it
open long enough, or later on a new association to our server, which may
run in another process of the same home (`gearview serve` while the CLI's
`send` waits, or the GUI). So results go through the home: `Commitments`
keeps one file per transaction under `commitments/` (named by a hash of the
Transaction UID, written atomically), `request_commitment` registers the
transaction before asking and waits for its result file, and the
N-EVENT-REPORT handler (`EventReports`, bound by our server and on our own
association) writes the result of a transaction this home asked for. A
report that comes after the wait gave up stays on disk (`late`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import build_context, build_role, evt
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import StorageCommitmentPushModel, StorageCommitmentPushModelInstance

from gearview.config import Config, Node
from gearview.errors import NetworkError
from gearview.home import Home
from gearview.net.association import association, lost
from gearview.store.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

#: PS3.4 J.3.2: N-ACTION Action Type ID "Request Storage Commitment".
REQUEST_COMMITMENT = 1
#: PS3.4 J.3.3: N-EVENT-REPORT Event Type IDs.
ALL_COMMITTED = 1
SOME_FAILED = 2
SUCCESS = 0x0000
NO_SUCH_SOP_CLASS = 0x0118


@dataclass
class CommitResult:
    """What the node committed: SOP Instance UID lists, and failure reasons by UID."""

    transaction_uid: str
    committed: list[str] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


#: Transactions older than this are forgotten (their files removed) when a new one starts.
KEEP_SECONDS = 7 * 24 * 3600
POLL_SECONDS = 0.1
PENDING, RESULT = ".pending.json", ".result.json"


class Commitments:
    """Transactions this home asked a node to commit, and their results, under the home."""

    _notify = threading.Condition()

    def __init__(self, home: Home) -> None:
        self.folder = home.root / "commitments"

    def _path(self, transaction_uid: str, suffix: str) -> Path:
        # Never a peer-controlled value in a file name: the Transaction UID is hashed.
        return self.folder / (hashlib.sha256(transaction_uid.encode()).hexdigest()[:32] + suffix)

    def expect(self, transaction_uid: str, node: str, count: int) -> None:
        """Register a transaction before asking for it (only these results are kept)."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self._forget_old()
        record = {"transaction_uid": transaction_uid, "node": node, "instances": count,
                  "asked": time.time()}
        atomic_write_bytes(self._path(transaction_uid, PENDING), json.dumps(record).encode())

    def put(self, result: CommitResult) -> bool:
        """Keep the result of a transaction this home asked for; False for any other."""
        if not self._path(result.transaction_uid, PENDING).exists():
            return False
        atomic_write_bytes(self._path(result.transaction_uid, RESULT),
                           json.dumps(asdict(result)).encode())
        with self._notify:
            self._notify.notify_all()
        return True

    def wait(self, transaction_uid: str, timeout: float) -> CommitResult | None:
        """The result once any process of this home received it; None after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.take(transaction_uid)
            remaining = deadline - time.monotonic()
            if result is not None or remaining <= 0:
                return result
            with self._notify:
                self._notify.wait(min(POLL_SECONDS, remaining))

    def take(self, transaction_uid: str) -> CommitResult | None:
        """The result if it arrived (the transaction is then finished and forgotten)."""
        path = self._path(transaction_uid, RESULT)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("storage commitment result %s unreadable: %s", path.name, exc)
            return None
        for suffix in (RESULT, PENDING):
            self._path(transaction_uid, suffix).unlink(missing_ok=True)
        return CommitResult(data["transaction_uid"], list(data["committed"]),
                            {uid: int(reason) for uid, reason in data["failed"].items()})

    def late(self) -> list[str]:
        """Transaction UIDs whose result arrived after their wait gave up."""
        found = []
        for path in sorted(self.folder.glob("*" + PENDING)):
            if path.with_name(path.name.replace(PENDING, RESULT)).exists():
                try:
                    found.append(json.loads(path.read_text(encoding="utf-8"))["transaction_uid"])
                except (OSError, ValueError, KeyError):
                    continue
        return found

    def _forget_old(self) -> None:
        cutoff = time.time() - KEEP_SECONDS
        for path in self.folder.glob("*.json"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue


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


class EventReports:
    """EVT_N_EVENT_REPORT handler: a commitment result for a transaction of this home."""

    def __init__(self, home: Home) -> None:
        self.commitments = Commitments(home)

    def __call__(self, event: evt.Event) -> tuple[int, Dataset | None]:
        request = event.request
        if request.AffectedSOPClassUID != StorageCommitmentPushModel:
            return NO_SUCH_SOP_CLASS, None
        result = parse_event(int(request.EventTypeID), event.event_information)
        kept = self.commitments.put(result)
        log.info(
            "storage commitment %s: %d committed, %d failed%s",
            result.transaction_uid,
            len(result.committed),
            len(result.failed),
            "" if kept else " (not a transaction of this station; ignored)",
        )
        return SUCCESS, None


def server_context() -> PresentationContext:
    """The context our server accepts so a node can send N-EVENT-REPORT to us."""
    context = build_context(StorageCommitmentPushModel)
    context.scu_role = True
    context.scp_role = True
    return context


def request_commitment(
    home: Home,
    node: Node,
    config: Config,
    instances: Iterable[tuple[str, str]],
    wait: float = 30.0,
) -> CommitResult | None:
    """Ask `node` to commit (SOP Class UID, SOP Instance UID) pairs; wait for its answer.

    The answer may come on this association or to any server of `home`.
    Returns None when no report arrived within `wait` seconds (the node may
    still answer later; the result then waits under the home, see `late`).
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
    commitments = Commitments(home)
    commitments.expect(str(ds.TransactionUID), node.name, len(pairs))
    contexts = [build_context(StorageCommitmentPushModel)]
    roles = [build_role(StorageCommitmentPushModel, scu_role=True, scp_role=True)]
    with association(
        node,
        config,
        contexts,
        ext_neg=roles,
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, EventReports(home))],
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
        return commitments.wait(str(ds.TransactionUID), wait)
