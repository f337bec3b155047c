"""C-STORE SCU: send whole studies, series or files to a node.

The stored bytes are sent as they are whenever the peer accepts the stored
transfer syntax (no decode/encode: that is what makes us as fast as
`storescu`). When the peer refuses a compressed syntax the instance is
decompressed and sent as Explicit/Implicit VR Little Endian - lossless, so
nothing is ever silently degraded. Each instance's outcome is reported as it
happens so a job can record it and a retry sends only what is missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.filereader import read_dataset, read_preamble
from pydicom.uid import JPEG2000, UID
from pynetdicom import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.presentation import PresentationContext

from gearview.config import Config, Node
from gearview.errors import InvalidDicomError, InvalidValueError
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.net import dimse
from gearview.net import pynetdicom_compat as compat
from gearview.net.association import association, lost
from gearview.net.client import describe_status
from gearview.net.contexts import NATIVE, plan_send

log = logging.getLogger(__name__)

SUCCESS, WARNING, FAILED = "success", "warning", "failed"
#: Storage warnings PS3.4 B.2.3: coercion, elements discarded, data set does not match.
WARNING_CODES = frozenset({0xB000, 0xB006, 0xB007})
#: Compression ratio of an admin-allowed lossy conversion (JPEG 2000 irreversible).
LOSSY_RATIO = 10


@dataclass(frozen=True)
class SendItem:
    """One instance to send: where its Part-10 file is and how it is stored."""

    path: Path
    sop_uid: str
    sop_class: str
    transfer_syntax: str

    @classmethod
    def from_record(cls, record) -> SendItem:
        return cls(
            Path(record.path),
            record.sop_instance_uid,
            record.sop_class_uid,
            record.transfer_syntax_uid,
        )

    @classmethod
    def from_path(cls, path: Path) -> SendItem:
        """Read only the file meta (fast); refuse files without one."""
        try:
            with open(path, "rb") as fh:
                read_preamble(fh, force=False)
            ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
            meta = ds.file_meta
            return cls(
                Path(path),
                str(meta.MediaStorageSOPInstanceUID),
                str(meta.MediaStorageSOPClassUID),
                str(meta.TransferSyntaxUID),
            )
        except (OSError, ValueError, AttributeError, EOFError, PydicomInvalidDicomError) as exc:
            raise InvalidDicomError(f"{path}: not a DICOM Part-10 file ({exc})") from None


@dataclass
class InstanceOutcome:
    sop_uid: str
    outcome: str
    status: int | None = None
    message: str = ""
    converted_to: str = ""


@dataclass
class SendResult:
    node: str
    outcomes: dict[str, InstanceOutcome] = field(default_factory=dict)
    seconds: float = 0.0
    bytes_sent: int = 0
    associations: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o.outcome == outcome)

    @property
    def ok(self) -> bool:
        return all(o.outcome != FAILED for o in self.outcomes.values())


OutcomeCallback = Callable[[InstanceOutcome], None]


def _dataset_bytes(path: Path) -> memoryview:
    """The data set after the file meta, exactly as stored."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[128:132] != b"DICM":
        raise InvalidDicomError(f"{path}: no DICOM preamble")
    # (0002,0000) File Meta Information Group Length: explicit VR 'UL', 4-byte value at 140.
    if data[132:136] != b"\x02\x00\x00\x00" or data[136:138] != b"UL":
        return _dataset_bytes_slow(path, data)
    group_length = int.from_bytes(data[140:144], "little")
    return memoryview(data)[144 + group_length :]


def _dataset_bytes_slow(path: Path, data: bytes) -> memoryview:
    from pynetdicom.utils import split_dataset

    _, offset = split_dataset(path)
    return memoryview(data)[offset:]


def _store(
    assoc: Association,
    context: PresentationContext,
    item: SendItem,
    payload: bytes | memoryview,
    msg_id: int,
) -> Dataset | None:
    """Send one C-STORE with a ready-encoded data set and wait for its response.

    This is `Association.send_c_store` minus its read-decode-encode of the
    file: the payload is the stored bytes (or the converted data set). The
    association must be `dimse.paused`. Returns None when the peer vanished.
    """
    sock = dimse.direct_socket(assoc)
    if sock is not None:
        command = dimse.store_command(item.sop_class, item.sop_uid, msg_id)
        try:
            dimse.write_message(
                sock, context.context_id, command, payload, assoc.dimse.maximum_pdu_size
            )
            status = dimse.read_message(dimse.reader(assoc, sock), assoc.dimse_timeout).command
        except dimse.PeerAborted:
            raise
        except (OSError, ValueError) as exc:
            log.info("C-STORE to the peer failed: %s", exc)
            return None
        compat.restart_idle_timer(assoc)
        return status
    if not compat.available("direct_dimse"):
        return _store_stock(assoc, context, payload, item)
    req = C_STORE()
    req.MessageID = msg_id
    req.AffectedSOPClassUID = UID(item.sop_class)
    req.AffectedSOPInstanceUID = UID(item.sop_uid)
    req.Priority = dimse.PRIORITY_MEDIUM
    req.DataSet = BytesIO(payload)
    assoc.dimse.send_msg(req, context.context_id)
    rsp = dimse.wait_queued_response(assoc)
    if rsp is None:
        if assoc.is_established:
            assoc.abort()
        return None
    return _status_dataset(rsp)


def _store_stock(assoc: Association, context: PresentationContext, payload: bytes | memoryview,
                 item: SendItem) -> Dataset | None:
    """pynetdicom's own `send_c_store` (its hooks for the paths above are missing)."""
    ds = read_dataset(BytesIO(bytes(payload)), *_encoding(context.transfer_syntax[0]))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = context.transfer_syntax[0]
    ds.SOPClassUID, ds.SOPInstanceUID = item.sop_class, item.sop_uid
    status = assoc.send_c_store(ds)
    return status if status and "Status" in status else None


def _encoding(transfer_syntax: str) -> tuple[bool, bool]:
    ts = UID(transfer_syntax)
    return ts.is_implicit_VR, ts.is_little_endian


def _status_dataset(rsp: Any) -> Dataset:
    """The status elements of a DIMSE response primitive (what `send_c_store` returns)."""
    status = Dataset()
    status.Status = rsp.Status
    for keyword in ("ErrorComment", "OffendingElement", "ErrorID"):
        value = getattr(rsp, keyword, None)
        if value:
            setattr(status, keyword, value)
    return status


def _converted(item: SendItem, target: str) -> tuple[bytes, SendItem]:
    """The data set re-encoded for the syntax the peer accepted, and what to send it as.

    Native targets: decompressed losslessly, same instance. JPEG 2000 (lossy,
    only when the admin allows it): a new instance (PS3.3 C.7.6.1.1.5) with
    Lossy Image Compression "01" and the ratio and method appended.
    """
    ds = dcmread(item.path)
    if UID(item.transfer_syntax).is_compressed:
        ds.decompress(generate_instance_uid=False)  # lossless: still the same instance
    ts = UID(target)
    if ts == JPEG2000:
        original = len(ds.PixelData)
        ds.compress(JPEG2000, j2k_cr=[LOSSY_RATIO], generate_instance_uid=True)
        ratio = original / max(len(ds.PixelData), 1)
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = [
            *_values(ds, "LossyImageCompressionRatio"),
            f"{ratio:.1f}"[:16],
        ]
        ds.LossyImageCompressionMethod = [
            *_values(ds, "LossyImageCompressionMethod"),
            "ISO_15444_1",
        ]
        item = replace(item, sop_uid=str(ds.SOPInstanceUID), transfer_syntax=str(ts))
    data = encode(ds, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
    if data is None:
        raise ValueError(f"cannot encode the data set as {ts.name}")
    return data, item


def _values(ds: Dataset, keyword: str) -> list:
    """The existing values of a multi-valued attribute (to append to, never replace)."""
    if keyword not in ds:
        return []
    elem = ds[keyword]
    if elem.VM == 0:
        return []
    return [elem.value] if elem.VM == 1 else list(elem.value)


def _choose(
    assoc: Association, item: SendItem, lossy_allowed: bool
) -> tuple[PresentationContext | None, str]:
    """The accepted context to use: the stored syntax if accepted, else a native one,
    else (only when allowed) lossy JPEG 2000."""
    native = lossy = None
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax != item.sop_class or not cx.as_scu:
            continue
        ts = cx.transfer_syntax[0]
        if ts == item.transfer_syntax:
            return cx, ""
        if ts in NATIVE and (native is None or ts == NATIVE[0]):
            native = cx
        if ts == JPEG2000:
            lossy = cx
    if native is not None:
        return native, str(native.transfer_syntax[0])
    if lossy is not None and lossy_allowed:
        return lossy, str(JPEG2000)
    return None, ""


def dataset_for(assoc: Association, item: SendItem) -> Dataset:
    """The instance as a data set pynetdicom's `send_c_store` can put on one of `assoc`'s
    accepted contexts (C-MOVE/C-GET sub-operations): as stored when the peer accepts its
    syntax, else decompressed - lossless, never lossy. Raises ValueError when neither works."""
    context, convert_to = _choose(assoc, item, lossy_allowed=False)
    if context is None:
        raise InvalidValueError(_no_syntax_text(item, assoc))
    ds = dcmread(item.path)
    if convert_to and UID(item.transfer_syntax).is_compressed:
        ds.decompress(generate_instance_uid=False)  # lossless: still the same instance
    return ds


def _outcome(item: SendItem, status, converted: str) -> InstanceOutcome:
    code = int(status.Status)
    text = describe_status("C-STORE", code)
    comment = str(status.get("ErrorComment", "") or "")
    if comment:
        text = f"{text} - {comment}"
    if code == 0:
        return InstanceOutcome(item.sop_uid, SUCCESS, code, "", converted)
    if code in WARNING_CODES:
        return InstanceOutcome(item.sop_uid, WARNING, code, text, converted)
    return InstanceOutcome(item.sop_uid, FAILED, code, text, converted)


def _no_syntax(node: Node, item: SendItem, assoc: Association) -> str:
    return f"{node.name} {_no_syntax_text(item, assoc)}"


def _no_syntax_text(item: SendItem, assoc: Association) -> str:
    name = UID(item.sop_class).name or item.sop_class
    offered_lossy = any(
        cx.abstract_syntax == item.sop_class and cx.transfer_syntax[0] == JPEG2000
        for cx in assoc.accepted_contexts
    )
    if offered_lossy:
        return (
            f"accepts {name} only lossy compressed; lossy conversion is not "
            "allowed (client.allow_lossy_conversion)"
        )
    return f"accepts no transfer syntax we can send for {name}"


def _send_batch(
    node: Node,
    config: Config,
    contexts: list[PresentationContext],
    items: Sequence[SendItem],
    result: SendResult,
    report: Callable[[InstanceOutcome], None],
    token: CancelToken | None,
) -> None:
    with association(node, config, contexts) as assoc, dimse.paused(assoc):
        result.associations += 1
        for msg_id, item in enumerate(items, 1):
            if token is not None:
                token.check()
            lossy_allowed = config.client.allow_lossy_conversion
            context, convert_to = _choose(assoc, item, lossy_allowed)
            if context is None:
                report(InstanceOutcome(item.sop_uid, FAILED, None, _no_syntax(node, item, assoc)))
                continue
            sent_as = item
            try:
                if convert_to:
                    payload, sent_as = _converted(item, convert_to)
                else:
                    payload = _dataset_bytes(item.path)
            except (
                OSError,
                ValueError,
                InvalidDicomError,
                RuntimeError,
                NotImplementedError,
            ) as exc:
                report(
                    InstanceOutcome(item.sop_uid, FAILED, None, f"cannot read or convert: {exc}")
                )
                continue
            try:
                status = _store(assoc, context, sent_as, payload, msg_id % 65536)
            except dimse.PeerAborted:
                raise lost(assoc, node, "C-STORE", aborted=True) from None
            if not status or "Status" not in status:
                raise lost(assoc, node, "C-STORE")
            result.bytes_sent += len(payload)
            outcome = _outcome(item, status, convert_to)
            if sent_as.sop_uid != item.sop_uid:
                outcome.message = (
                    f"{outcome.message} sent lossy (JPEG 2000) as new instance {sent_as.sop_uid}"
                ).strip()
            report(outcome)


def send_items(
    node: Node,
    config: Config,
    items: Iterable[SendItem],
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
    skip: Iterable[str] = (),
    on_outcome: OutcomeCallback | None = None,
) -> SendResult:
    """Send `items` (minus the SOP Instance UIDs in `skip`) and report each outcome.

    Raises NetworkError when the peer cannot be reached or vanishes, and
    Cancelled on cancel - in both cases the outcomes reported so far stand,
    so a retry with `skip` set to the successes sends only what is missing.
    """
    skipped = set(skip)
    todo = [i for i in dict((i.sop_uid, i) for i in items).values() if i.sop_uid not in skipped]
    result = SendResult(node.name)
    total = len(todo)
    start = time.perf_counter()

    tally = {SUCCESS: 0, WARNING: 0, FAILED: 0}

    def report(outcome: InstanceOutcome) -> None:
        result.outcomes[outcome.sop_uid] = outcome
        tally[outcome.outcome] += 1
        if outcome.outcome != SUCCESS:
            log.warning("send to %s: %s %s", node.name, outcome.outcome, outcome.message)
        if on_outcome is not None:
            on_outcome(outcome)
        progress(
            Progress(
                len(result.outcomes),
                total,
                f"{tally[SUCCESS] + tally[WARNING]} sent, {tally[FAILED]} failed",
            )
        )

    progress(Progress(0, total, f"connecting to {node.name}"))
    # The lossy context is always proposed so that a peer accepting only lossy
    # syntaxes is named as such; it is used only when the admin allows it.
    for batch in plan_send(((i.sop_class, i.transfer_syntax) for i in todo), lossy=True):
        batch_items = [i for i in todo if i.sop_class in batch.sop_classes]
        _send_batch(node, config, batch.contexts, batch_items, result, report, token)
    result.seconds = time.perf_counter() - start
    return result


def items_for(cache, targets: Iterable[str]) -> list[SendItem]:
    """Resolve study UIDs, series UIDs, SOP Instance UIDs or file/folder paths to send items."""
    items: list[SendItem] = []
    for target in targets:
        path = Path(target)
        if path.exists():
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for f in files:
                try:
                    items.append(SendItem.from_path(f))
                except InvalidDicomError:
                    if not path.is_dir():
                        raise
                    log.info("skipping non-DICOM file %s", f)
            continue
        records = (
            cache.instances(study_uid=target)
            or cache.instances(series_uid=target)
            or cache.instances(sop_uids=[target])
        )
        if not records:
            raise InvalidValueError(
                f"nothing to send for {target!r}: not a study, series or "
                "instance in the local cache, nor a file",
                hint="see `gearview ls`",
            )
        items.extend(SendItem.from_record(r) for r in records)
    if not items:
        raise InvalidValueError("nothing to send", hint="give study UIDs or DICOM files")
    return items
