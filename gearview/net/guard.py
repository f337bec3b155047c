"""Socket-level guards pynetdicom (3.0.4) does not give us (FACTS.md "Network").

pynetdicom reads a PDU with blocking `recv` calls and no overall limit, so a
peer that sends half a PDU and goes quiet holds a thread forever; it checks
the association limit only after a complete A-ASSOCIATE-RQ, so half-open
sockets are uncounted; and it accepts a P-DATA-TF far larger than the
maximum length we declared. This module adds, under pynetdicom's own
classes:

- a deadline per PDU (ACSE timeout before the association is established,
  network timeout after), enforced inside `recv`;
- a hard cap on a PDU's declared length (no allocation is made from it);
- a cap on open sockets: when it is reached the oldest connection that has
  not completed an association is dropped, so floods of half-open sockets
  never starve a legitimate peer;
- TLS handshakes on the connection's own thread with a deadline (pynetdicom
  does them on the accepting thread, where one silent client blocks all);
- TCP_NODELAY on every accepted socket, and a bigger, copy-free `recv`.

Refusals are logged as "Security Alert" lines with the peer address.
"""

from __future__ import annotations

import copy
import logging
import queue
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynetdicom.association
import pynetdicom.dul
import pynetdicom.transport
from pynetdicom import evt
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

log = logging.getLogger("gearview.net.server")

PDU_HEADER = 6
ASSOCIATE_RQ = 0x01
P_DATA_TF = 0x04
#: An A-ASSOCIATE-RQ is small (contexts + user items); 1 MiB is far beyond any real one.
MAX_ASSOCIATE_RQ = 1 << 20
#: With `max_pdu = 0` (unlimited) we still refuse to buffer more than this per PDU.
MAX_UNLIMITED_PDU = 64 << 20
#: pynetdicom's DUL sleeps this long between polls when idle (default 1 ms), so
#: every C-STORE response waited up to 1 ms before being sent; 0.2 ms cut the
#: 500-instance receive from ~3.3 s to ~2.7 s for a few % of a core per idle association.
DUL_LOOP_DELAY = 0.0002
#: First allocation for a PDU body; grown as bytes really arrive.
INITIAL_BUFFER = 1 << 20


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
        try:
            ready, _, _ = select.select([sock, pair[0]], [], [], seconds)
        except (OSError, ValueError):
            time.sleep(seconds)
            return
        if pair[0] in ready:
            try:
                while pair[0].recv(4096):
                    pass
            except OSError:
                pass


class _DulClock(_ReactorClock):
    """Stands in for the `time` module inside `pynetdicom.dul` (see `_DulWaker`)."""

    def sleep(self, seconds: float) -> None:
        waker = getattr(self._local, "wake", None)
        if waker is None:
            time.sleep(seconds)
        else:
            waker.wait(seconds)


def _copy_contexts(contexts: Any) -> Any:
    """Stands in for `deepcopy` in `pynetdicom.transport`, which copies the server's
    presentation contexts for every association: their UIDs are immutable, so new context
    objects with their own transfer syntax lists are copy enough (deepcopy of our ~170
    contexts held the GIL ~20 ms per association, longer than 50 C-STOREs)."""
    if not isinstance(contexts, list) or not all(
        isinstance(c, PresentationContext) for c in contexts
    ):
        return copy.deepcopy(contexts)
    fresh = []
    for context in contexts:
        twin = copy.copy(context)
        twin._transfer_syntax = list(context._transfer_syntax)
        fresh.append(twin)
    return fresh


_CLOCK = _ReactorClock()
_DUL_CLOCK = _DulClock()


def escape(text: object) -> str:
    """Printable form of a peer-controlled value (AE title, address) for a log line."""
    return "".join(c if 32 <= ord(c) < 127 and c != "\\" else f"\\x{ord(c):02x}" for c in str(text))


@dataclass
class Limits:
    """The per-connection limits, derived from the server configuration."""

    acse_timeout: float
    network_timeout: float
    max_pdu: int
    max_sockets: int

    def max_pdu_length(self, pdu_type: int) -> int:
        if pdu_type == P_DATA_TF:
            return self.max_pdu if self.max_pdu else MAX_UNLIMITED_PDU
        return MAX_ASSOCIATE_RQ


@dataclass
class Connection:
    """One accepted socket as the guard sees it."""

    sock: socket.socket
    address: str
    opened: float = field(default_factory=time.monotonic)
    established: bool = False
    pdus: int = 0


def security_alert(message: str, *args: Any) -> None:
    log.warning("Security Alert: " + message, *args)


class GuardedSocket(AssociationSocket):
    """AssociationSocket whose `recv` has a deadline and a size cap."""

    connection: Connection
    limits: Limits
    _pdu_deadline: float = 0.0

    def _abort_and_close(self) -> None:
        """Send an A-ABORT (source: service provider) and shut the socket down."""
        abort = A_ABORT_RQ()
        abort.source = 0x02
        abort.reason_diagnostic = 0x00
        sock = self.socket
        if sock is None:
            return
        try:
            sock.settimeout(1.0)
            sock.sendall(abort.encode())
        except OSError:
            pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _header(self) -> bytearray:
        conn = self.connection
        timeout = self.limits.network_timeout if conn.established else self.limits.acse_timeout
        self._pdu_deadline = time.monotonic() + timeout
        data = self._read(PDU_HEADER)
        if len(data) < PDU_HEADER:
            return data
        pdu_type, _, length = struct.unpack(">BBL", data)
        conn.pdus += 1
        if conn.pdus == 1 and pdu_type != ASSOCIATE_RQ:
            security_alert(
                "%s sent PDU type 0x%02X before an A-ASSOCIATE-RQ; aborted", conn.address, pdu_type
            )
            self._abort_and_close()
            return bytearray()
        self._expected = length
        self._limit = self.limits.max_pdu_length(pdu_type)
        return data

    def recv(self, nr_bytes: int) -> bytearray:
        """Read one PDU header or body; pynetdicom calls this with 6, then the PDU length.

        A short return makes pynetdicom close the connection (Evt17) without
        logging a traceback, which is how every refusal here ends.
        """
        if nr_bytes == PDU_HEADER and not getattr(self, "_expected", None):
            return self._header()
        if not self._body_allowed(nr_bytes):
            return bytearray()
        body, got = self._read_into(bytearray(min(nr_bytes, INITIAL_BUFFER)), nr_bytes)
        del body[got:]
        if self.connection.pdus == 1 and len(body) == nr_bytes and not self._titles_ok(body):
            self._abort_and_close()
            return bytearray()
        return body

    def recv_body_reusing(self, nr_bytes: int) -> memoryview:
        """`recv` of a PDU body into a buffer this connection reuses (no allocation and page
        faults per PDU); the view is valid until the next call and must be released by then."""
        if not self._body_allowed(nr_bytes):
            return memoryview(b"")
        buf = getattr(self, "_reused", None)
        if buf is None:
            buf = bytearray(min(nr_bytes, INITIAL_BUFFER))
        self._reused, got = self._read_into(buf, nr_bytes)
        return memoryview(self._reused)[:got]

    def _body_allowed(self, nr_bytes: int) -> bool:
        """Check a PDU's declared length against our limit before reading its body."""
        self._expected = 0
        if nr_bytes > self._limit:
            security_alert(
                "%s declared a %d-byte PDU (limit %d); aborted",
                self.connection.address,
                nr_bytes,
                self._limit,
            )
            self._abort_and_close()
            return False
        return True

    def _titles_ok(self, body: bytearray) -> bool:
        """Called/calling AE titles of an A-ASSOCIATE-RQ: printable, not blank (PS3.8 9.3.2)."""
        called, calling = bytes(body[4:20]), bytes(body[20:36])
        for title in (called, calling):
            if not title.strip(b" ") or any(b < 0x20 or b > 0x7E or b == 0x5C for b in title):
                security_alert(
                    "%s sent an A-ASSOCIATE-RQ with a blank or binary AE title "
                    "(called %s, calling %s); aborted",
                    self.connection.address,
                    escape(called.decode("latin-1")),
                    escape(calling.decode("latin-1")),
                )
                return False
        return True

    def _read(self, nr_bytes: int) -> bytearray:
        buf, got = self._read_into(bytearray(nr_bytes), nr_bytes)
        del buf[got:]
        return buf

    def _read_into(self, buf: bytearray, nr_bytes: int) -> tuple[bytearray, int]:
        """Read up to nr_bytes into buf (grown only as bytes really arrive) before the PDU
        deadline; returns the buffer (a new one if it had to grow while exported) and the
        count, which is short when the peer failed."""
        sock = self.socket
        if sock is None:
            return buf, 0
        got = 0
        view = memoryview(buf)
        try:
            while got < nr_bytes:
                remaining = self._pdu_deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                if got == len(buf):
                    view.release()
                    buf = _grown(buf, min(len(buf), nr_bytes - len(buf)))
                    view = memoryview(buf)
                sock.settimeout(remaining)
                n = sock.recv_into(view[got:nr_bytes])
                if not n:
                    break
                got += n
        except TimeoutError:
            security_alert(
                "%s did not complete a PDU within the deadline; dropped", self.connection.address
            )
            self._abort_and_close()
        except (OSError, ssl.SSLError):
            pass
        finally:
            view.release()
        if self.socket is not None:
            try:
                self.socket.settimeout(self.limits.network_timeout)
            except OSError:
                pass
        return buf, got


def _grown(buf: bytearray, extra: int) -> bytearray:
    """buf with `extra` more bytes (a copy when someone still holds a view of it)."""
    try:
        buf.extend(bytes(extra))
        return buf
    except BufferError:
        return buf + bytes(extra)


class GuardedRequestHandler(RequestHandler):
    """Gives each association our GuardedSocket."""

    server: GuardedServer

    def _create_association(self):  # noqa: ANN202 - pynetdicom's Association
        assoc = super()._create_association()
        sock = assoc.dul.socket
        # Re-class the socket pynetdicom just wrapped (re-creating it would
        # queue a second transport-connected event).
        sock.__class__ = GuardedSocket
        sock.connection = self.server.connection_for(self.request)
        sock.limits = self.server.limits
        sock._expected = 0
        sock._limit = MAX_ASSOCIATE_RQ
        assoc.dul._run_loop_delay = DUL_LOOP_DELAY
        wake = threading.Event()
        assoc.dimse.msg_queue = _WakingQueue(wake.set)
        hook = self.server.on_association_end
        created = self.server.on_association_created
        dul_ended = created(assoc) if created is not None else None
        self._wake_dul(assoc.dul, [dul_ended, hook])
        run = assoc.run

        def run_then_clean_up() -> None:
            """Serve with the waking reactor; per-thread resources (the index connection) end
            with the association's thread."""
            _CLOCK.register(wake)
            try:
                run()
            finally:
                _CLOCK.register(None)
                if hook is not None:
                    hook()

        assoc.run = run_then_clean_up
        return assoc

    @staticmethod
    def _wake_dul(dul: Any, on_end: list[Callable[[], None] | None]) -> None:
        """Give the DUL thread a `_DulWaker` for its idle sleeps; `on_end` runs as it ends."""
        waker = _DulWaker(dul)
        dul.to_provider_queue = _WakingQueue(waker.wake)
        run = dul.run

        def run_with_waker() -> None:
            waker.open()
            _DUL_CLOCK.register(waker)
            try:
                run()
            finally:
                _DUL_CLOCK.register(None)
                waker.close()
                for hook in on_end:
                    if hook is not None:
                        hook()

        dul.run = run_with_waker


class GuardedServer(ThreadedAssociationServer):
    """ThreadedAssociationServer with a socket cap, TCP_NODELAY and deferred TLS handshakes."""

    daemon_threads = True
    block_on_close = False
    #: socketserver's default backlog (5) makes a burst of connects wait for SYN retries.
    request_queue_size = 128
    limits: Limits
    #: Called on each association's own thread, and on its DUL thread, when they end.
    on_association_end: Callable[[], None] | None = None
    #: Called with each new pynetdicom Association before its threads start; what it
    #: returns is called when the association's DUL thread ends.
    on_association_created: Callable[[Any], Callable[[], None] | None] | None = None

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        self.limits = limits
        pynetdicom.association.time = _CLOCK  # type: ignore[assignment]
        pynetdicom.dul.time = _DUL_CLOCK  # type: ignore[assignment]
        pynetdicom.transport.deepcopy = _copy_contexts  # type: ignore[attr-defined]
        self._conn_lock = threading.Lock()
        self._connections: dict[int, Connection] = {}
        super().__init__(*args, request_handler=GuardedRequestHandler, **kwargs)

    def _bind_defaults(self) -> None:
        """Only pynetdicom's intervention defaults: its per-PDU/DIMSE log handlers format every
        message even when nobody reads the log (~5 % of the receive CPU); we log our own lines."""
        for event in evt._INTERVENTION_EVENTS:
            self.bind(event, evt.get_default_handler(event))

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
            return len(self._connections)

    def mark_established(self, sock: socket.socket | None) -> None:
        with self._conn_lock:
            conn = self._connections.get(id(sock))
            if conn is not None:
                conn.established = True

    def process_request(self, request: Any, client_address: Any) -> None:
        address = escape(f"{client_address[0]}:{client_address[1]}")
        victim = None
        with self._conn_lock:
            if len(self._connections) >= self.limits.max_sockets:
                pending = [c for c in self._connections.values() if not c.established]
                if not pending:
                    victim = None
                    refuse = True
                else:
                    victim = min(pending, key=lambda c: c.opened)
                    refuse = False
            else:
                refuse = False
            if not refuse:
                self._connections[id(request)] = Connection(request, address)
        if refuse:
            security_alert("%s refused: %d sockets already open", address, self.limits.max_sockets)
            self.shutdown_request(request)
            return
        if victim is not None:
            security_alert(
                "%s dropped: socket limit reached and it had not associated after %.1f s",
                victim.address,
                time.monotonic() - victim.opened,
            )
            try:
                victim.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket) and not self._handshake(request):
                self.shutdown_request(request)
                return
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.pop(id(request), None)

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
