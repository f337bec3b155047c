"""Socket-level guards pynetdicom (3.0.4) does not give us (FACTS.md "Network").

pynetdicom reads a PDU with blocking `recv` calls and no overall limit, so a
peer that sends half a PDU and goes quiet holds a thread forever; it checks
the association limit only after a complete A-ASSOCIATE-RQ, so half-open
sockets are uncounted; and it accepts a P-DATA-TF far larger than the
maximum length we declared. This module adds, under pynetdicom's own
classes:

- every PDU read through the shared `PduReader`: a deadline per PDU (ACSE
  timeout before the association is established, network timeout after)
  and a cap on its declared length (no allocation is made from it); the
  PDUs themselves are checked and routed by `net/inbound.py`;
- a refused connection gets its answer and is closed at once (`refuse`);
- a cap on open sockets: when it is reached the oldest connection that has
  not completed an association is dropped, so floods of half-open sockets
  never starve a legitimate peer;
- TLS handshakes on the connection's own thread with a deadline (pynetdicom
  does them on the accepting thread, where one silent client blocks all);
- TCP_NODELAY on every accepted socket, and reactors that wake when there is
  work instead of polling (`_WakingQueue`, `_ReactorClock`, `_DulWaker`).

Refusals are logged as "Security Alert" lines with the peer address.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from gearview.net import pynetdicom_compat as compat
from gearview.net.inbound import Inbound
from gearview.net.pdu import (
    ASSOCIATE_RQ,
    PDU_HEADER,
    PRESENTATION_LOCAL_LIMIT,
    REASON_UNEXPECTED_PDU,
    REJECTED_TRANSIENT,
    SOURCE_PRESENTATION,
    PduLimits,
    PduReader,
    PeerClosed,
    Refusal,
    escape,
    reject_pdu,
    security_alert,
)
from gearview.net.store_stream import Begin, StoreStream

log = logging.getLogger("gearview.net.server")

#: pynetdicom's DUL sleeps this long between polls when idle (default 1 ms), so
#: every C-STORE response waited up to 1 ms before being sent; 0.2 ms cut the
#: 500-instance receive from ~3.3 s to ~2.7 s for a few % of a core per idle association.
DUL_LOOP_DELAY = 0.0002
#: Bytes already received that are read and dropped before a refused socket is closed
#: (closing with unread data sends a reset, which can destroy our answer in flight).
DRAIN_LIMIT = 1 << 20
#: How long an answer to a refused peer may take to send.
ANSWER_TIMEOUT = 1.0


class _WakingQueue(queue.Queue):
    """One of pynetdicom's queues that also wakes the reactor reading it."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake()


class _ReactorClock:
    """Stands in for the `time` module inside `pynetdicom.association`.

    pynetdicom's association reactor polls its DIMSE queue with
    `time.sleep(0.001)`, so each received C-STORE waited ~0.5 ms on average
    before its handler ran (~0.3 s per 500 instances). On the threads of our
    server's associations `sleep` waits on an event that the DIMSE queue sets
    (`_WakingQueue`), so a complete message is served at once; the reactor
    still wakes at least as often as before for its other checks. Every
    other thread sleeps exactly as before.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        wake = getattr(self._local, "wake", None)
        if wake is None:
            time.sleep(seconds)
            return
        wake.wait(seconds)
        wake.clear()

    def register(self, wake: Any) -> None:
        """Make `sleep` on the calling thread end early when `wake` is set (None: plain sleep)."""
        self._local.wake = wake


class _DulWaker:
    """Lets the DUL reactor sleep until its socket has data or a PDU is queued to send.

    pynetdicom's DUL thread polls both with short sleeps (DUL_LOOP_DELAY), so
    each incoming C-STORE and each outgoing response waited up to that long.
    `wait` keeps the same upper bound but returns as soon as either happens.
    It polls (not `select`), which keeps working past 1024 descriptors.
    """

    def __init__(self, dul: Any) -> None:
        self._dul = dul
        self._pair: tuple[socket.socket, socket.socket] | None = None

    def open(self) -> None:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._pair = (reader, writer)

    def close(self) -> None:
        pair, self._pair = self._pair, None
        for end in pair or ():
            end.close()

    def wake(self) -> None:
        pair = self._pair
        if pair is not None:
            try:
                pair[1].send(b"\0")
            except OSError:
                pass  # already pending (buffer full) or closing: the reactor wakes anyway

    def wait(self, seconds: float) -> None:
        pair = self._pair
        transport = self._dul.socket
        sock = transport.socket if transport is not None else None
        if pair is None or sock is None or sock.fileno() < 0:
            time.sleep(seconds)
            return
        if not _readable([sock, pair[0]], seconds):
            return
        try:
            while pair[0].recv(4096):
                pass
        except OSError:
            pass


def _readable(socks: list[socket.socket], seconds: float) -> bool:
    """Wait until one of `socks` is readable (or `seconds` pass); False on an error."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            for sock in socks:
                poller.register(sock, select.POLLIN)
            poller.poll(seconds * 1000)
        else:
            select.select(socks, [], [], seconds)
        return True
    except (OSError, ValueError):
        time.sleep(seconds)
        return False


class _DulClock(_ReactorClock):
    """Stands in for the `time` module inside `pynetdicom.dul` (see `_DulWaker`)."""

    def sleep(self, seconds: float) -> None:
        waker = getattr(self._local, "wake", None)
        if waker is None:
            time.sleep(seconds)
        else:
            waker.wait(seconds)


_CLOCK = _ReactorClock()
_DUL_CLOCK = _DulClock()
#: Installed while a server runs, restored when the last one stops.
PATCHES = compat.server_patches(_CLOCK, _DUL_CLOCK)


@dataclass
class Limits:
    """The per-connection limits, derived from the server configuration."""

    acse_timeout: float
    network_timeout: float
    max_pdu: int
    max_sockets: int


@dataclass
class Connection:
    """One accepted socket as the guard sees it."""

    sock: socket.socket
    address: str
    opened: float = field(default_factory=time.monotonic)
    established: bool = False
    #: An association took the socket over (it is forgotten when that ends).
    adopted: bool = False
    #: Shut down to make room; it no longer counts while its threads end.
    dropped: bool = False
    #: Its A-ASSOCIATE-RQ reached pynetdicom (whose acceptor thread then stops waiting).
    requested: bool = False


class GuardedSocket(AssociationSocket):
    """AssociationSocket read through a `PduReader`; refused peers are answered and closed."""

    connection: Connection
    limits: Limits
    reader: PduReader
    _pending_body = -1
    _first_header = True

    def adopt(self, connection: Connection, limits: Limits) -> None:
        self.connection = connection
        self.limits = limits
        assert self.socket is not None
        self.reader = PduReader(self.socket, PduLimits(limits.max_pdu))

    def pdu_timeout(self) -> float:
        """How long one PDU may take to arrive (ARTIM before the association, then network)."""
        conn = self.connection
        return self.limits.network_timeout if conn.established else self.limits.acse_timeout

    @property
    def ready(self) -> bool:
        """pynetdicom's check for incoming data, with poll instead of select (> 1024 fds)."""
        sock = self.socket
        if sock is None:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(sock, select.POLLIN)
                return bool(poller.poll(0))
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            self.event_queue.put(compat.EVENT_TRANSPORT_CLOSED)
            return False

    def refuse(self, refusal: Refusal) -> None:
        """Answer a peer that broke the protocol (one Security Alert line) and close."""
        security_alert("%s %s; answered %s", self.connection.address, refusal,
                       refusal.answer_name)
        sock = self.socket
        if sock is not None:
            try:
                sock.settimeout(ANSWER_TIMEOUT)
                sock.sendall(refusal.answer)
            except OSError:
                pass
        self.close_quietly()

    def close_quietly(self) -> None:
        """Close after what we sent (FIN first, received bytes dropped unread), then tell
        pynetdicom; an association thread still waiting for an A-ASSOCIATE-RQ stops."""
        sock = self.socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_WR)
                sock.setblocking(False)
                drained = 0
                while drained < DRAIN_LIMIT and (chunk := sock.recv(65536)):
                    drained += len(chunk)
            except (OSError, ValueError):
                pass
        self.close()
        if not self.connection.requested:  # pynetdicom's acceptor thread still waits for it
            self.connection.requested = True
            compat.wake_acceptor(self.assoc.dul)

    def recv(self, nr_bytes: int) -> bytearray:
        """pynetdicom's read (6-byte header, then the body) where our reader is not installed
        (hook missing): the same limits, deadlines and first-PDU check."""
        try:
            if self._pending_body < 0:
                deadline = time.monotonic() + self.pdu_timeout()
                pdu_type, length = self.reader.read_header(deadline)
                if self._first_header and pdu_type != ASSOCIATE_RQ:
                    raise Refusal(f"sent PDU type 0x{pdu_type:02X} before an A-ASSOCIATE-RQ",
                                  abort_reason=REASON_UNEXPECTED_PDU)
                self._first_header = False
                self._pending_body, self._deadline = length, deadline
                return bytearray(PDU_HEADER.pack(pdu_type, 0, length))
            length, self._pending_body = self._pending_body, -1
            body = bytearray(self.reader.read_body(min(nr_bytes, length), self._deadline))
            self.connection.requested = True
            return body
        except PeerClosed:
            return bytearray()
        except Refusal as refusal:
            self.refuse(refusal)
            return bytearray()


def _reject_busy(sock: socket.socket) -> None:
    """A-ASSOCIATE-RJ transient, local limit exceeded, on a socket we will not serve (its
    thread, if any, is only reading); not on TLS sockets, whose handshake may be pending."""
    if isinstance(sock, ssl.SSLSocket):
        return
    try:
        sock.settimeout(ANSWER_TIMEOUT)
        sock.sendall(reject_pdu(REJECTED_TRANSIENT, SOURCE_PRESENTATION, PRESENTATION_LOCAL_LIMIT))
    except OSError:
        pass


@dataclass(frozen=True)
class StoreHooks:
    """One association's C-STORE sink (`begin`) and what runs once its socket thread ends."""

    begin: Begin
    ended: Callable[[], None]


class GuardedRequestHandler(RequestHandler):
    """Gives each association our GuardedSocket, PDU reader and waking reactors."""

    server: GuardedServer

    def _create_association(self):  # noqa: ANN202 - pynetdicom's Association
        assoc = super()._create_association()
        transport = assoc.dul.socket
        compat.adopt_socket(transport, GuardedSocket)
        connection = self.server.connection_for(self.request)
        connection.adopted = True
        transport.adopt(connection, self.server.limits)
        hooks = self.server.store_for(assoc) if self.server.store_for is not None else None
        inbound = Inbound(assoc, StoreStream(assoc, hooks.begin) if hooks is not None else None)
        compat.replace_pdu_reader(assoc.dul, inbound.read)
        compat.set_run_loop_delay(assoc.dul, DUL_LOOP_DELAY)
        wake = threading.Event()
        compat.replace_queue(assoc.dimse, "msg_queue", _WakingQueue(wake.set))
        compat.wrap_run(assoc, lambda: _CLOCK.register(wake), lambda: _CLOCK.register(None))
        server = self.server

        def dul_ended() -> None:
            inbound.ended()
            if hooks is not None:
                hooks.ended()
            server.forget(connection)

        self._wake_dul(assoc.dul, dul_ended)
        return assoc

    @staticmethod
    def _wake_dul(dul: Any, on_end: Callable[[], None]) -> None:
        """Give the DUL thread a `_DulWaker` for its idle sleeps; `on_end` runs as it ends."""
        waker = _DulWaker(dul)
        compat.replace_queue(dul, "to_provider_queue", _WakingQueue(waker.wake))

        def started() -> None:
            waker.open()
            _DUL_CLOCK.register(waker)

        def ended() -> None:
            _DUL_CLOCK.register(None)
            waker.close()
            on_end()

        compat.wrap_run(dul, started, ended)


class GuardedServer(ThreadedAssociationServer):
    """ThreadedAssociationServer with a socket cap, TCP_NODELAY and deferred TLS handshakes."""

    daemon_threads = True
    block_on_close = False
    #: socketserver's default backlog (5) makes a burst of connects wait for SYN retries.
    request_queue_size = 128
    limits: Limits
    #: Per association: where C-STOREs received on the socket thread go and what runs
    #: when it ends (None: all C-STOREs through pynetdicom).
    store_for: Callable[[Any], StoreHooks] | None = None

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        self.limits = limits
        self._conn_lock = threading.Lock()
        self._connections: dict[int, Connection] = {}
        self._patched = False
        PATCHES.acquire()
        self._patched = True
        try:
            super().__init__(*args, request_handler=GuardedRequestHandler, **kwargs)
        except BaseException:
            self._release_patches()
            raise

    def _release_patches(self) -> None:
        if self._patched:
            self._patched = False
            PATCHES.release()

    def _bind_defaults(self) -> None:
        """Only pynetdicom's intervention defaults: its per-PDU/DIMSE log handlers format every
        message even when nobody reads the log (~5 % of the receive CPU); we log our own lines."""
        if not compat.register_defaults(self, self.bind):
            super()._bind_defaults()

    def shutdown(self) -> None:
        """Stop serving and close the listening socket (pynetdicom's own `shutdown` also
        unregisters from an AE's server list, which this server never joined)."""
        socketserver.BaseServer.shutdown(self)
        self.server_close()

    def server_close(self) -> None:
        super().server_close()
        self._release_patches()

    def get_request(self) -> tuple[socket.socket, Any]:
        assert self.socket is not None
        client, address = self.socket.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address

    def connection_for(self, sock: socket.socket) -> Connection:
        with self._conn_lock:
            return self._connections[id(sock)]

    def open_connections(self) -> int:
        with self._conn_lock:
            return sum(1 for c in self._connections.values() if not c.dropped)

    def mark_established(self, sock: socket.socket | None) -> None:
        with self._conn_lock:
            conn = self._connections.get(id(sock))
            if conn is not None:
                conn.established = True

    def process_request(self, request: Any, client_address: Any) -> None:
        address = escape(f"{client_address[0]}:{client_address[1]}")
        victim = None
        refuse = False
        with self._conn_lock:
            live = [c for c in self._connections.values() if not c.dropped]
            if len(live) >= self.limits.max_sockets:
                pending = [c for c in live if not c.requested]
                if pending:
                    victim = min(pending, key=lambda c: c.opened)
                    victim.dropped = True
                else:
                    refuse = True
            if not refuse:
                self._connections[id(request)] = Connection(request, address)
        if refuse:
            security_alert("%s refused: %d sockets already open; answered A-ASSOCIATE-RJ "
                           "(2,3,2)", address, self.limits.max_sockets)
            _reject_busy(request)
            self.shutdown_request(request)
            return
        if victim is not None:
            security_alert(
                "%s dropped: socket limit reached and it had not asked to associate after "
                "%.1f s; answered A-ASSOCIATE-RJ (2,3,2)",
                victim.address,
                time.monotonic() - victim.opened,
            )
            _reject_busy(victim.sock)
            try:
                victim.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        super().process_request(request, client_address)

    def forget(self, connection: Connection) -> None:
        """The connection's socket is closed: it no longer counts against the cap."""
        with self._conn_lock:
            if self._connections.get(id(connection.sock)) is connection:
                del self._connections[id(connection.sock)]

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket) and not self._handshake(request):
                self.shutdown_request(request)
                return
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                connection = self._connections.get(id(request))
            if connection is not None and not connection.adopted:
                self.forget(connection)

    def _handshake(self, request: ssl.SSLSocket) -> bool:
        conn = self.connection_for(request)
        try:
            request.settimeout(self.limits.acse_timeout)
            request.do_handshake()
            return True
        except (OSError, ssl.SSLError, ValueError) as exc:
            security_alert("%s TLS handshake refused: %s", conn.address, escape(exc))
            return False

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning(
            "connection from %s ended with an error",
            escape(client_address),
            exc_info=log.isEnabledFor(logging.DEBUG),
        )

    def close_all(self) -> None:
        """Shut every open socket down (server stop): their threads then end."""
        with self._conn_lock:
            conns = list(self._connections.values())
        for conn in conns:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
