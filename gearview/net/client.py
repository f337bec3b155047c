"""SCU operations against remote nodes: C-ECHO, C-FIND, C-MOVE and C-GET.

Every function takes a `Node` and the `Config` (our AE title, timeouts, PDU
size, TLS) and raises `NetworkError` with a readable message and a hint.
Long operations report `Progress` and honour a `CancelToken`; a cancelled
move sends C-CANCEL and waits for the peer's final answer, so nothing is
left running on the peer. Sending lives in `gearview.net.send`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context, evt
from pynetdicom.dsutils import encode

from gearview.config import Config, Node
from gearview.conformance import QR_FIND, QR_GET, QR_MOVE, VERIFICATION
from gearview.errors import Cancelled, InvalidValueError, NetworkError, NotFoundError
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.net import dimse
from gearview.net import pynetdicom_compat as compat
from gearview.net.association import association, lost
from gearview.net.query import StudyQuery, found_study, merge_studies, parse_text_identifier
from gearview.store.records import StudyRecord

log = logging.getLogger(__name__)

#: Identifiers are exchanged in little endian only (our fast parser reads both VR forms).
NATIVE_LE = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
STATUS_SUCCESS = 0x0000
STATUS_CANCEL = 0xFE00
PENDING = (0xFF00, 0xFF01)
#: Sub-operations complete, one or more failed or had warnings (PS3.4 C.4.2.1.5).
STATUS_SUBOPS_WARNING = 0xB000


def describe_status(service: str, status: int) -> str:
    """'0xA801 Refused: Move Destination unknown' style text for a status code."""
    from pynetdicom import status as st

    tables = {
        "C-MOVE": st.QR_MOVE_SERVICE_CLASS_STATUS,
        "C-GET": st.QR_GET_SERVICE_CLASS_STATUS,
        "C-FIND": st.QR_FIND_SERVICE_CLASS_STATUS,
        "C-STORE": st.STORAGE_SERVICE_CLASS_STATUS,
    }
    entry = tables.get(service, {}).get(status) or st.GENERAL_STATUS.get(status)
    if entry:
        return f"0x{status:04X} {entry[0]}: {entry[1]}"
    return f"0x{status:04X} {st.code_to_category(status)}"


# ---- C-ECHO ---------------------------------------------------------------


def echo(node: Node, config: Config) -> float:
    """C-ECHO `node`; the round trip (association + echo + release) in seconds."""
    start = time.perf_counter()
    with association(node, config, [build_context(VERIFICATION)]) as assoc:
        status = assoc.send_c_echo()
        if not status or "Status" not in status:
            raise lost(assoc, node, "C-ECHO")
        if status.Status != STATUS_SUCCESS:
            raise NetworkError(
                f"{node.name} answered C-ECHO with {describe_status('C-ECHO', status.Status)}"
            )
    return time.perf_counter() - start


# ---- C-FIND ---------------------------------------------------------------


@dataclass
class RawIdentifier:
    """A C-FIND match as received (decoded only when and as far as needed)."""

    data: bytes
    implicit_vr: bool

    def dataset(self) -> Dataset:
        return read_dataset(BytesIO(self.data), self.implicit_vr, True)


def _check_final(node: Node, code: int, cancelled: bool) -> None:
    if code == STATUS_CANCEL or cancelled:
        raise Cancelled("query cancelled")
    if code != STATUS_SUCCESS:
        raise NetworkError(f"{node.name} refused the query: {describe_status('C-FIND', code)}")


def _find_direct(
    assoc, sock, node: Node, identifier: Dataset, model: str, token: CancelToken | None
) -> list[RawIdentifier]:
    """C-FIND over our own message I/O (see `gearview.net.dimse`)."""
    context = assoc.accepted_contexts[0]
    ts = UID(context.transfer_syntax[0])
    data = encode(identifier, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
    max_pdu = assoc.dimse.maximum_pdu_size
    matches: list[RawIdentifier] = []
    cancelled = False
    reader = dimse.reader(assoc, sock)
    try:
        dimse.write_message(sock, context.context_id, dimse.find_command(model, 1), data, max_pdu)
        while True:
            msg = dimse.read_message(reader, assoc.dimse_timeout)
            code = int(msg.command.get("Status", -1))
            if code in PENDING:
                if msg.data:
                    matches.append(RawIdentifier(msg.data, ts.is_implicit_VR))
                if token is not None and token.cancelled and not cancelled:
                    dimse.write_message(
                        sock, context.context_id, dimse.cancel_command(1), None, max_pdu
                    )
                    cancelled = True
                continue
            compat.restart_idle_timer(assoc)
            _check_final(node, code, cancelled)
            return matches
    except (OSError, ValueError) as exc:
        log.info("C-FIND to %s failed: %s", node.name, exc)
        raise lost(assoc, node, "C-FIND", isinstance(exc, dimse.PeerAborted)) from None


def _find_queued(
    assoc, node: Node, identifier: Dataset, model: str, token: CancelToken | None
) -> list[Dataset]:
    """C-FIND through pynetdicom (TLS associations)."""
    context_id = assoc.accepted_contexts[0].context_id
    matches: list[Dataset] = []
    cancelled = False
    for status, ident in assoc.send_c_find(identifier, model):
        if not status or "Status" not in status:
            raise lost(assoc, node, "C-FIND")
        code = int(status.Status)
        if code in PENDING:
            if ident is not None:
                matches.append(ident)
            if token is not None and token.cancelled and not cancelled:
                assoc.send_c_cancel(1, context_id)
                cancelled = True
            continue
        _check_final(node, code, cancelled)
    return matches


def _find_any(
    node: Node, config: Config, identifier: Dataset, token: CancelToken | None, model: str
) -> list[Dataset | RawIdentifier]:
    context = build_context(model, list(NATIVE_LE))
    with association(node, config, [context]) as assoc:
        sock = dimse.direct_socket(assoc)
        if sock is None:
            return list(_find_queued(assoc, node, identifier, model, token))
        with dimse.paused(assoc):
            return list(_find_direct(assoc, sock, node, identifier, model, token))


def find(
    node: Node,
    config: Config,
    identifier: Dataset,
    token: CancelToken | None = None,
    model: str = QR_FIND,
) -> list[Dataset]:
    """One Study Root C-FIND; the matches as data sets (cancel sends C-CANCEL)."""
    return [
        m.dataset() if isinstance(m, RawIdentifier) else m
        for m in _find_any(node, config, identifier, token, model)
    ]


def find_studies(
    node: Node, config: Config, query: StudyQuery, token: CancelToken | None = None
) -> list[StudyRecord]:
    """STUDY-level C-FIND with the SPEC §2.5 keys; one `StudyRecord` per match."""
    studies = []
    for match in _find_any(node, config, query.to_dataset(), token, QR_FIND):
        values = match
        if isinstance(match, RawIdentifier):
            values = parse_text_identifier(match.data, match.implicit_vr) or match.dataset()
        if values.get("StudyInstanceUID"):
            studies.append(found_study(values, node.name))
    return studies


def find_series(
    node: Node, config: Config, study_uid: str, token: CancelToken | None = None
) -> list[Dataset]:
    """SERIES-level drill-down of one study."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_uid
    for keyword in (
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
        "BodyPartExamined",
    ):
        setattr(ds, keyword, "")
    return find(node, config, ds, token)


def find_images(
    node: Node, config: Config, study_uid: str, series_uid: str, token: CancelToken | None = None
) -> list[Dataset]:
    """IMAGE-level drill-down of one series."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "IMAGE"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    for keyword in ("SOPInstanceUID", "SOPClassUID", "InstanceNumber"):
        setattr(ds, keyword, "")
    return find(node, config, ds, token)


@dataclass
class MultiFindResult:
    """Studies merged over nodes, and the nodes that failed (name -> one-line error)."""

    studies: list[StudyRecord] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def find_on_nodes(
    nodes: Iterable[Node], config: Config, query: StudyQuery, token: CancelToken | None = None
) -> MultiFindResult:
    """Query several nodes in parallel; merge by Study Instance UID.

    A node that is down or times out is reported in `errors` and never fails
    the others.
    """
    nodes = list(nodes)
    if not nodes:
        raise InvalidValueError("no node to query", hint="configure a node with the query role")
    result = MultiFindResult()
    per_node: list[list[StudyRecord]] = []
    with ThreadPoolExecutor(max_workers=min(8, len(nodes)), thread_name_prefix="gv-find") as pool:
        futures = {pool.submit(find_studies, node, config, query, token): node for node in nodes}
        for future, node in futures.items():
            try:
                per_node.append(future.result())
            except Cancelled:
                raise
            except NetworkError as exc:
                result.errors[node.name] = exc.one_line()
            except Exception as exc:  # noqa: BLE001  - one broken peer must not fail the others
                log.warning("query to %s failed", node.name, exc_info=True)
                result.errors[node.name] = f"{type(exc).__name__}: {exc}"
    result.studies = merge_studies(per_node)
    return result


# ---- C-MOVE / C-GET -------------------------------------------------------


class RetrieveRefused(NetworkError):
    """The peer ended a C-MOVE/C-GET with a failure status."""


@dataclass
class RetrieveResult:
    """Final counts of a C-MOVE / C-GET (PS3.4 C.4.2.1.5)."""

    status: int = STATUS_SUCCESS
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    cancelled: bool = False
    message: str = ""
    failed_uids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_SUCCESS and not self.failed


def retrieve_identifier(
    study_uid: str, series_uid: str | None = None, sop_uids: Iterable[str] | None = None
) -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID = study_uid
    ds.QueryRetrieveLevel = "STUDY"
    if series_uid:
        ds.QueryRetrieveLevel = "SERIES"
        ds.SeriesInstanceUID = series_uid
    sop_uids = list(sop_uids or [])
    if sop_uids:
        if not series_uid:
            raise InvalidValueError("an IMAGE-level retrieve needs the series UID")
        ds.QueryRetrieveLevel = "IMAGE"
        ds.SOPInstanceUID = sop_uids
    return ds


def _counts(status: Dataset, result: RetrieveResult) -> None:
    for attr, keyword in (
        ("completed", "NumberOfCompletedSuboperations"),
        ("failed", "NumberOfFailedSuboperations"),
        ("warning", "NumberOfWarningSuboperations"),
        ("remaining", "NumberOfRemainingSuboperations"),
    ):
        value = status.get(keyword)
        if value is not None:
            setattr(result, attr, int(value))


def _drive(
    responses: Iterator[tuple[Dataset, Dataset | None]],
    service: str,
    node: Node,
    assoc,
    context_id: int,
    progress: ProgressCallback,
    token: CancelToken | None,
) -> RetrieveResult:
    """Consume pending C-MOVE/C-GET responses, reporting progress and sending C-CANCEL."""
    result = RetrieveResult()
    cancel_sent = False
    for status, ident in responses:
        if not status or "Status" not in status:
            raise lost(assoc, node, service)
        code = int(status.Status)
        _counts(status, result)
        if code in PENDING:
            done = result.completed + result.failed + result.warning
            progress(
                Progress(
                    done,
                    done + result.remaining,
                    f"{result.completed} received, {result.failed} failed",
                )
            )
            if token is not None and token.cancelled and not cancel_sent:
                assoc.send_c_cancel(1, context_id)
                cancel_sent = True
            continue
        result.status = code
        if ident is not None and "FailedSOPInstanceUIDList" in ident:
            value = ident.FailedSOPInstanceUIDList
            result.failed_uids = [value] if isinstance(value, str) else list(value or [])
        result.cancelled = code == STATUS_CANCEL or cancel_sent
        result.message = describe_status(service, code)
    if result.cancelled:
        return result
    if result.status not in (STATUS_SUCCESS, STATUS_SUBOPS_WARNING):
        raise RetrieveRefused(
            f"{node.name} could not {service} the study: {result.message}",
            hint=_retrieve_hint(service, result.status),
        )
    done = result.completed + result.failed + result.warning
    progress(Progress(done, done, f"{result.completed} received, {result.failed} failed"))
    return result


def _study_exists(node: Node, config: Config, study_uid: str) -> bool:
    try:
        return bool(find_studies(node, config, StudyQuery(study_instance_uid=study_uid)))
    except NetworkError:
        return True


def _retrieve_hint(service: str, status: int) -> str:
    if service == "C-MOVE":
        return (
            "this station's DICOM server must be running and the node must know our AE title, "
            "host and port as a C-MOVE destination (or mark the node 'get' to use C-GET)"
        )
    return "check the node's logs"


def move(
    node: Node,
    config: Config,
    identifier: Dataset,
    destination: str | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> RetrieveResult:
    """C-MOVE to `destination` (this station's AE title by default).

    Our server must be running to receive. Returns the final counts; a
    cancelled move returns with `cancelled` set once the peer confirmed.
    """
    dest = destination or config.server.ae_title
    try:
        with association(node, config, [build_context(QR_MOVE)]) as assoc:
            context_id = assoc.accepted_contexts[0].context_id
            responses = assoc.send_c_move(identifier, dest, QR_MOVE)
            return _drive(responses, "C-MOVE", node, assoc, context_id, progress, token)
    except RetrieveRefused:
        # Peers (Orthanc) answer C000 both for an unknown study and an unknown
        # destination: tell the user which one it is.
        if not _study_exists(node, config, str(identifier.StudyInstanceUID)):
            raise NotFoundError(
                f"{node.name} has no study {identifier.StudyInstanceUID}",
                hint="query the node first",
            ) from None
        raise


def get(
    node: Node,
    config: Config,
    identifier: Dataset,
    store: Callable[[Dataset, bytes, str], None],
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
    sop_classes: Iterable[str] | None = None,
) -> RetrieveResult:
    """C-GET for a node that cannot connect back to us.

    `store(file_meta, data, ae)` keeps each instance the peer sends.
    """
    from gearview.net.contexts import get_contexts

    contexts, roles = get_contexts(QR_GET, sop_classes)

    def on_store(event: evt.Event) -> int:
        from gearview.store.cache import build_file_meta

        req = event.request
        meta = build_file_meta(
            req.AffectedSOPClassUID,
            req.AffectedSOPInstanceUID,
            event.context.transfer_syntax,
            node.ae_title,
        )
        data = req.DataSet.getvalue() if hasattr(req.DataSet, "getvalue") else bytes(req.DataSet)
        try:
            store(meta, data, node.ae_title)
        except Exception:  # noqa: BLE001  - the peer gets a failure status, we log why
            log.warning("C-GET: could not store %s", req.AffectedSOPInstanceUID, exc_info=True)
            return 0xA700
        return STATUS_SUCCESS

    with association(
        node, config, contexts, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    ) as assoc:
        qr = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == QR_GET]
        if not qr:
            raise NetworkError(f"{node.name} does not support C-GET (Study Root)")
        responses = assoc.send_c_get(identifier, QR_GET)
        return _drive(responses, "C-GET", node, assoc, qr[0].context_id, progress, token)


def retrieve_to_cache(
    node: Node,
    config: Config,
    cache,
    study_uid: str,
    series_uid: str | None = None,
    sop_uids: Iterable[str] | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> RetrieveResult:
    """Bring a study (or series/instances) into the cache: C-GET for 'get' nodes, else C-MOVE.

    For C-MOVE our server (which stores through the cache) must be running.
    """
    identifier = retrieve_identifier(study_uid, series_uid, sop_uids)
    if "get" in node.roles:
        return get(
            node,
            config,
            identifier,
            lambda meta, data, ae: cache.add_received(meta, data, ae),
            progress,
            token,
        )
    return move(node, config, identifier, progress=progress, token=token)
