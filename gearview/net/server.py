"""The embedded DICOM server: Verification, Storage and Study Root FIND/MOVE SCP.

pynetdicom runs it in its own threads; `Server` starts and stops it from the
GUI or `gearview serve`, and tells listeners its state through the event bus.
Received data sets are stored exactly as they arrived (no decoding) through
`Cache.add_received`; success is answered only once the file is fsynced,
renamed into place and indexed. Socket-level guards live in `net/guard.py`.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.status import Status

from gearview import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, conformance
from gearview import events as ev
from gearview.config import Config, ServerConfig
from gearview.errors import (
    InvalidDicomError,
    InvalidValueError,
    ListenError,
    StorageFullError,
    StoragePermissionError,
    StoreError,
    describe_error,
)
from gearview.home import Home
from gearview.net import commitment
from gearview.net.contexts import plan_send
from gearview.net.guard import GuardedServer, Limits, StoreHooks
from gearview.net.pdu import (
    PRESENTATION_LOCAL_LIMIT,
    REJECTED_TRANSIENT,
    SOURCE_PRESENTATION,
    escape,
    security_alert,
)
from gearview.net.send import SendItem, dataset_for
from gearview.net.store_stream import StoreRequest
from gearview.store import Cache, InstanceInfo, StoredInstance, audit
from gearview.store import query as q
from gearview.store.cache import build_file_meta
from gearview.store.incoming import Incoming

log = logging.getLogger(__name__)

#: Half-open sockets allowed beyond max_associations before the oldest is dropped.
SOCKET_HEADROOM = 8
#: How long stop() waits for open associations to end.
STOP_TIMEOUT = 5.0
#: Kept far above any real count: our own checks (guard + _on_requested) apply the limits.
PYNETDICOM_ASSOCIATION_LIMIT = 100_000
#: C-STORE statuses (PS3.4 B.2.3); pynetdicom names them, we only pick.
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_MISMATCH = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000
STATUS_WRITE_REFUSED = 0xC001
STATUS_PROCESSING_FAILURE = 0xC002
#: Warning "Coercion of Data Elements": a correction made here was re-applied (SPEC §2.10).
STATUS_COERCED = 0xB000
#: C-FIND/C-MOVE statuses we choose ourselves.
STATUS_IDENTIFIER_MISMATCH = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC000
ERROR_COMMENT_MAX = 64


@dataclass
class ServerState:
    running: bool = False
    ae_title: str = ""
    port: int = 0
    associations: int = 0
    last_error: str = ""


class UidMismatchError(InvalidDicomError):
    """The data set's SOP Instance/Class UID differ from the C-STORE command's."""


@dataclass
class ReceiveTally:
    """What one association brought: instances per study, corrections, conflicts."""

    calling_ae: str = ""
    studies: dict[str, int] = field(default_factory=dict)
    corrected: int = 0
    not_stored: int = 0

    def add(self, stored: StoredInstance, calling_ae: str) -> None:
        self.calling_ae = self.calling_ae or escape(calling_ae)
        uid = stored.info.study_instance_uid
        self.studies[uid] = self.studies.get(uid, 0) + 1
        self.corrected += bool(stored.corrected)
        self.not_stored += not stored.stored

    def audit(self, home: Home) -> None:
        """One audit line per association that stored anything."""
        if self.studies:
            audit.append(home, "receive", calling_ae=self.calling_ae, studies=self.studies,
                         instances=sum(self.studies.values()), corrected=self.corrected,
                         not_stored=self.not_stored)


class _Receipt:
    """One incoming instance: its bytes go to the cache, `finish` gives the C-STORE status."""

    def __init__(self, server: Server, request: StoreRequest,
                 tally: ReceiveTally | None = None) -> None:
        self._server = server
        self._request = request
        self._tally = tally
        self._incoming: Incoming | None = None
        self._error: Exception | None = None
        meta = build_file_meta(request.sop_class, request.sop_uid, request.transfer_syntax,
                               request.calling_ae)
        try:
            self._incoming = server.cache.begin_received(meta)
        except StoreError as exc:
            self._error = exc

    def write(self, data: memoryview) -> None:
        if self._incoming is not None:
            self._incoming.write(data)

    def discard(self) -> None:
        if self._incoming is not None:
            self._incoming.discard()

    def finish(self) -> tuple[int, str]:
        request = self._request

        def same_uids(info: InstanceInfo) -> None:
            if info.sop_instance_uid != request.sop_uid or info.sop_class_uid != request.sop_class:
                raise UidMismatchError(
                    "the data set's SOP Instance/Class UID differ from the command's"
                )

        try:
            if self._error is not None:
                raise self._error
            assert self._incoming is not None
            stored = self._incoming.finish(request.calling_ae, check=same_uids)
        except Exception as exc:  # never let one bad instance end the association
            return self._server.store_failure(exc, request.calling_ae)
        if self._tally is not None:
            self._tally.add(stored, request.calling_ae)
        if stored.corrected:
            return STATUS_COERCED, "attributes coerced: this station's correction re-applied"
        return Status.SUCCESS, ""


def _status(code: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = " ".join(comment.split())[:ERROR_COMMENT_MAX]
    return ds


def _transfer_syntaxes(cfg: ServerConfig) -> list[str]:
    return list(cfg.accepted_transfer_syntaxes) or list(conformance.TRANSFER_SYNTAXES)


def _contexts(cfg: ServerConfig) -> list[PresentationContext]:
    """What we accept: every configured storage class in every configured syntax, plus echo/Q-R."""
    syntaxes = _transfer_syntaxes(cfg)
    sops = list(cfg.accepted_sop_classes) or list(conformance.storage_sop_classes())
    contexts = [build_context(sop, syntaxes) for sop in sops]
    for context in contexts:  # either role: a C-GET peer takes the instances as SCP
        context.scu_role = context.scp_role = True
    plain = [str(ts) for ts in conformance.UNCOMPRESSED]
    for sop in (conformance.VERIFICATION, conformance.QR_FIND, conformance.QR_MOVE,
                conformance.QR_GET):
        contexts.append(build_context(sop, plain))
    contexts.append(commitment.server_context())
    return contexts


class Server:
    """Start/stop the SCP and report its state (SERVER_STATE, ASSOCIATION_*, SERVER_ERROR)."""

    def __init__(self, home: Home, config: Config, cache: Cache, bus: ev.EventBus = ev.bus) -> None:
        self.home = home
        self.config = config
        self.cache = cache
        self.bus = bus
        self._lock = threading.RLock()
        self._ae: AE | None = None
        self._server: GuardedServer | None = None
        self._thread: threading.Thread | None = None
        self._open: set[int] = set()
        #: What each association stored, audited when it ends (id(assoc) -> tally).
        self._tallies: dict[int, ReceiveTally] = {}
        self._admitted: set[int] = set()
        self._state = ServerState(ae_title=config.server.ae_title, port=config.server.port)

    # ---- lifecycle -----------------------------------------------------

    @property
    def state(self) -> ServerState:
        with self._lock:
            return replace(self._state, associations=len(self._open))

    def start(self) -> None:
        """Listen on the configured port; raises ListenError (with a hint) when that fails."""
        with self._lock:
            if self._server is not None:
                return
            cfg = self.config.server
            removed = self.cache.clear_spool()
            if removed:
                log.info("removed %d spool leftovers of an earlier crash", removed)
            ae = self._make_ae(cfg)
            limits = Limits(
                acse_timeout=cfg.acse_timeout,
                network_timeout=cfg.network_timeout,
                max_pdu=cfg.max_pdu,
                max_sockets=cfg.max_associations + SOCKET_HEADROOM,
            )
            ssl_context = None
            if cfg.tls.enabled:
                from gearview.net.tls import server_context

                ssl_context = server_context(cfg.tls)
            address = (cfg.bind_address or "0.0.0.0", cfg.port)
            try:
                server = ae.make_server(
                    address,
                    ae_title=cfg.ae_title,
                    contexts=_contexts(cfg),
                    ssl_context=ssl_context,
                    evt_handlers=self._handlers(),
                    server_class=GuardedServer,
                    limits=limits,
                )
            except OSError as exc:
                self._fail(exc, cfg)
            self.cache.reserve_spool_files()
            server.store_for = self._store_for
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"gearview-scp-{cfg.port}",
                daemon=True,
            )
            thread.start()
            self._ae, self._server, self._thread = ae, server, thread
            port = server.server_address[1]
            self._state = ServerState(running=True, ae_title=cfg.ae_title, port=port)
            log.info(
                "listening as %s on %s:%d%s",
                cfg.ae_title,
                address[0],
                port,
                " (TLS)" if ssl_context else "",
            )
        self._emit_state()

    def _fail(self, exc: OSError, cfg: ServerConfig) -> None:
        if exc.errno == errno.EADDRINUSE:
            error = ListenError(
                f"port {cfg.port} is already in use",
                hint="stop the other program or choose another port (server.port)",
            )
        elif exc.errno in (errno.EACCES, errno.EPERM):
            error = ListenError(
                f"not allowed to listen on port {cfg.port}",
                hint="ports below 1024 need privileges; choose a port above 1024",
            )
        else:
            error = ListenError(
                f"cannot listen on {cfg.bind_address or '*'}:{cfg.port}: {exc.strerror or exc}",
                hint="check server.bind_address and server.port",
            )
        self._state = ServerState(
            running=False, ae_title=cfg.ae_title, port=cfg.port, last_error=error.one_line()
        )
        self.bus.emit(ev.SERVER_ERROR, message=error.one_line())
        self._emit_state()
        raise error

    def stop(self) -> None:
        """Stop listening, end open associations and wait for their threads."""
        with self._lock:
            server, thread, ae = self._server, self._thread, self._ae
            self._server = self._thread = self._ae = None
        if server is None:
            return
        server.shutdown()
        server.close_all()
        deadline = time.monotonic() + STOP_TIMEOUT
        if ae is not None:
            # Threads of connections that never associated wait out their ACSE
            # timeout in pynetdicom; they are daemons with closed sockets, so we
            # only wait for the established ones.
            for assoc in [a for a in ae.active_associations if a.is_established]:
                assoc.abort()
                assoc.join(timeout=max(0.0, deadline - time.monotonic()))
            for assoc in ae.active_associations:
                dul = assoc.dul
                if dul.is_alive():
                    dul.join(timeout=max(0.0, deadline - time.monotonic()))
        if thread is not None:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        self.cache.release_spool_files()
        with self._lock:
            self._open.clear()
            self._admitted.clear()
            self._state = replace(self._state, running=False)
        log.info("server stopped")
        self._emit_state()

    def restart(self, config: Config) -> None:
        """Apply a new configuration (port, AE title, limits, TLS) by stopping and starting."""
        self.stop()
        self.config = config
        with self._lock:
            self._state = ServerState(ae_title=config.server.ae_title, port=config.server.port)
        self.start()

    def _emit_state(self) -> None:
        self.bus.emit(ev.SERVER_STATE, state=self.state)

    # ---- pynetdicom setup ---------------------------------------------

    def _make_ae(self, cfg: ServerConfig) -> AE:
        ae = AE(ae_title=cfg.ae_title)
        ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
        ae.maximum_pdu_size = cfg.max_pdu
        # pynetdicom counts every connection thread, half-open ones included, so a
        # socket flood would make it refuse real peers: we count established
        # associations ourselves (_on_requested) and keep its check out of the way.
        ae.maximum_associations = PYNETDICOM_ASSOCIATION_LIMIT
        ae.acse_timeout = cfg.acse_timeout
        ae.dimse_timeout = cfg.dimse_timeout
        ae.network_timeout = cfg.network_timeout
        ae.require_called_aet = cfg.require_called_ae
        ae.require_calling_aet = list(cfg.allowed_calling_aets)
        return ae

    def _handlers(self) -> list[tuple[Any, Any]]:
        return [
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_N_EVENT_REPORT, commitment.EventReports(self.home)),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_CONN_CLOSE, self._on_conn_close),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_ABORTED, self._on_aborted),
        ]

    # ---- association events -------------------------------------------

    @staticmethod
    def _peer(event: evt.Event) -> tuple[str, str]:
        requestor = event.assoc.requestor
        return escape(requestor.ae_title or ""), escape(f"{requestor.address}:{requestor.port}")

    def _on_requested(self, event: evt.Event) -> None:
        """Admit at most max_associations; the rest get RJ transient, local-limit-exceeded."""
        assoc = event.assoc
        with self._lock:
            full = len(self._admitted) >= self.config.server.max_associations
            if not full:
                self._admitted.add(id(assoc))
        if full:
            calling, address = self._peer(event)
            log.warning(
                "association from %s (%s) rejected: %d associations already open",
                calling,
                address,
                self.config.server.max_associations,
            )
            assoc.acse.send_reject(REJECTED_TRANSIENT, SOURCE_PRESENTATION,
                                   PRESENTATION_LOCAL_LIMIT)
            assoc.kill()

    def _on_established(self, event: evt.Event) -> None:
        assoc = event.assoc
        sock = assoc.dul.socket.socket if assoc.dul.socket else None
        if self._server is not None:
            self._server.mark_established(sock)
        with self._lock:
            self._open.add(id(assoc))
            count = len(self._open)
        calling, address = self._peer(event)
        log.info("association from %s (%s) established", calling, address)
        self.bus.emit(
            ev.ASSOCIATION_OPENED, calling_ae=calling, address=address, associations=count
        )
        self._emit_state()

    def _on_conn_close(self, event: evt.Event) -> None:
        with self._lock:
            self._admitted.discard(id(event.assoc))
            if id(event.assoc) not in self._open:
                return
            self._open.discard(id(event.assoc))
            count = len(self._open)
        calling, address = self._peer(event)
        self.bus.emit(
            ev.ASSOCIATION_CLOSED, calling_ae=calling, address=address, associations=count
        )
        self._emit_state()

    def _on_rejected(self, event: evt.Event) -> None:
        primitive = event.assoc.requestor.primitive
        calling = escape(primitive.calling_ae_title if primitive else "")
        called = escape(primitive.called_ae_title if primitive else "")
        _, address = self._peer(event)
        security_alert(
            "association from %s (calling %s, called %s) rejected", address, calling, called
        )

    def _on_aborted(self, event: evt.Event) -> None:
        calling, address = self._peer(event)
        log.info("association from %s (%s) aborted", calling, address)

    # ---- services -----------------------------------------------------

    def _on_echo(self, event: evt.Event) -> int:
        return 0x0000

    def _on_store(self, event: evt.Event) -> Dataset:
        """pynetdicom's path, for the C-STOREs `StoreStream` leaves to it."""
        request = event.request
        receipt = self.begin_store(StoreRequest(
            sop_class=str(request.AffectedSOPClassUID or ""),
            sop_uid=str(request.AffectedSOPInstanceUID or ""),
            transfer_syntax=str(event.context.transfer_syntax),
            calling_ae=event.assoc.requestor.ae_title or "",
        ), self._tallies.get(id(event.assoc)))
        receipt.write(request.DataSet.getbuffer())  # a BytesIO: we never enable chunked receive
        return _status(*receipt.finish())

    def begin_store(self, request: StoreRequest, tally: ReceiveTally | None = None) -> _Receipt:
        return _Receipt(self, request, tally)

    def store_failure(self, exc: Exception, calling: str) -> tuple[int, str]:
        """The C-STORE status (and error comment) for why an instance was not stored."""
        if isinstance(exc, UidMismatchError):
            security_alert("C-STORE from %s: %s", escape(calling), exc)
            return STATUS_MISMATCH, str(exc)
        if isinstance(exc, InvalidDicomError):
            log.warning("C-STORE from %s refused: %s", escape(calling), exc)
            return STATUS_CANNOT_UNDERSTAND, str(exc)
        self._report_error(exc)
        if isinstance(exc, StorageFullError):
            return STATUS_OUT_OF_RESOURCES, "storage full"
        if isinstance(exc, StoragePermissionError):
            return STATUS_WRITE_REFUSED, "storage not writable"
        if isinstance(exc, StoreError):
            return STATUS_OUT_OF_RESOURCES, str(exc)
        log.error("unexpected error storing an instance", exc_info=exc)
        return STATUS_PROCESSING_FAILURE, type(exc).__name__

    def _store_for(self, assoc: Any) -> StoreHooks:
        """C-STOREs of this association go straight to the cache, tallied for the audit."""
        tally = ReceiveTally()  # the calling AE is known once the association is requested
        self._tallies[id(assoc)] = tally

        def ended() -> None:
            self._tallies.pop(id(assoc), None)
            tally.audit(self.home)

        return StoreHooks(lambda request: self.begin_store(request, tally), ended)

    def _report_error(self, exc: Exception) -> None:
        message = describe_error(exc)
        log.error("server: %s", message)
        with self._lock:
            self._state = replace(self._state, last_error=message)
        self.bus.emit(ev.SERVER_ERROR, message=message)
        self._emit_state()

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        try:
            identifier = event.identifier
            matches = q.find(self.cache.conn, identifier)
            for match in matches:
                if event.is_cancelled:
                    yield Status.CANCEL, None
                    return
                yield Status.PENDING, match
        except InvalidValueError as exc:
            log.info("C-FIND refused: %s", exc)
            yield STATUS_IDENTIFIER_MISMATCH, None
            return
        except Exception:
            log.exception("C-FIND failed")
            yield STATUS_UNABLE_TO_PROCESS, None
            return
        yield Status.SUCCESS, None

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        """C-MOVE to a configured node: contexts as `send` builds them, TLS where the node has
        it; each instance goes as stored, or decompressed when the node refused its syntax."""
        destination = str(event.move_destination or "").strip()
        node = next((n for n in self.config.nodes if n.ae_title == destination), None)
        if node is None:
            log.warning("C-MOVE to unknown destination %s refused", escape(destination))
            yield None, None
            return
        items = self._retrieve_items(event, "C-MOVE")
        sub = _SubAssociation()
        yield node.host, node.port, self._move_association(node, items, sub)
        yield len(items)
        yield from _sub_operations(event, items, lambda: sub.assoc, "C-MOVE")

    def _on_get(self, event: evt.Event) -> Iterator[Any]:
        """C-GET: the instances go back on the peer's own association, chosen the same way."""
        items = self._retrieve_items(event, "C-GET")
        yield len(items)
        yield from _sub_operations(event, items, lambda: event.assoc, "C-GET")

    def _retrieve_items(self, event: evt.Event, service: str) -> list[SendItem]:
        """The instances a C-MOVE/C-GET identifier names (none for an identifier we refuse)."""
        try:
            instances = q.instance_paths(self.cache.conn, event.identifier, self.cache.files_dir)
        except InvalidValueError as exc:
            log.info("%s matches nothing: %s", service, exc)
            return []
        return [SendItem(path, uid, sop_class, ts) for path, sop_class, ts, uid in instances]

    def _move_association(self, node: Any, items: list[SendItem],
                          sub: _SubAssociation) -> dict[str, Any]:
        """`AE.associate` arguments for the sub-operations' association to `node`."""
        batches = plan_send((i.sop_class, i.transfer_syntax) for i in items)
        if len(batches) > 1:
            log.warning("C-MOVE to %s: %d SOP classes need more than one association; "
                        "instances of the last %d batches will fail", node.name,
                        sum(len(b.sop_classes) for b in batches), len(batches) - 1)
        contexts = batches[0].contexts if batches else [build_context(conformance.VERIFICATION)]
        args: dict[str, Any] = {
            "contexts": contexts,
            "evt_handlers": [(evt.EVT_CONN_OPEN, _set_nodelay), (evt.EVT_ESTABLISHED, sub.bind)],
            "max_pdu": self.config.client.max_pdu,
        }
        if node.tls:
            from gearview.net.tls import client_context

            args["tls_args"] = (client_context(self.config), node.host)
        return args


class _SubAssociation:
    """The association pynetdicom opens for C-MOVE sub-operations, once it is established."""

    assoc: Any = None

    def bind(self, event: evt.Event) -> None:
        self.assoc = event.assoc


def _sub_operations(event: evt.Event, items: list[SendItem], assoc: Callable[[], Any],
                    service: str) -> Iterator[tuple[int, Dataset | None]]:
    """The (status, data set) pairs pynetdicom sends as C-MOVE/C-GET sub-operations on the
    association `assoc()` returns (known only once pynetdicom made it)."""
    for item in items:
        if event.is_cancelled:
            yield Status.CANCEL, None
            return
        yield Status.PENDING, _sub_dataset(assoc(), item, service)


def _sub_dataset(assoc: Any, item: SendItem, service: str) -> Dataset:
    """What pynetdicom sends for one sub-operation; a data set with only the SOP Instance UID
    (which pynetdicom counts as a failed sub-operation) when the instance cannot go."""
    try:
        if assoc is None:
            raise InvalidValueError("the destination association is gone")
        return dataset_for(assoc, item)
    except Exception as exc:  # noqa: BLE001 - one unreadable file fails its sub-operation only
        log.warning("%s: %s not sent: %s", service, item.sop_uid, exc)
        failed = Dataset()
        failed.SOPInstanceUID = item.sop_uid
        return failed


def _set_nodelay(event: evt.Event) -> None:
    """TCP_NODELAY on the sockets we open for C-MOVE sub-operations (FACTS: ~40 ms per store)."""
    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        try:
            sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
