"""The one place gearview reaches past pynetdicom's public API (pinned to 3.0.x).

pynetdicom's public API cannot read PDUs with limits, serve a C-STORE from
the socket thread, pause its reactors for direct message I/O, or sleep less
than its polling loops do; gearview needs all four (see `net/guard.py`,
`net/inbound.py`, `net/dimse.py`). Every private name it uses is listed in
`HOOKS`, grouped by the feature that needs it, and checked when this module
is imported. A missing hook (a newer pynetdicom) is logged once and its
feature falls back to pynetdicom's stock behaviour - slower, or with
pynetdicom's own error handling - never to something broken:

- ``inbound``: our PDU checks and the C-STORE fast path on the socket thread
  (fallback: pynetdicom reads and decodes; `GuardedSocket` still caps lengths
  and enforces deadlines, its public `recv` being what pynetdicom calls);
- ``direct_dimse``: direct C-STORE/C-FIND message I/O for `send` and `find`
  (fallback: pynetdicom's own send/receive path, as for TLS);
- ``wake_clocks``: reactors that wake when a message arrives instead of
  polling (fallback: pynetdicom's sleeps);
- ``context_copy``: cheap copies of the server's presentation contexts per
  association (fallback: pynetdicom's deepcopy);
- ``quiet_defaults``: a server binds only pynetdicom's intervention defaults,
  not its per-PDU log formatters (fallback: all defaults).

The module-level replacements (``wake_clocks``, ``context_copy``) are
installed while a server needs them (`ModulePatches`) and restored after.
pynetdicom also logs a traceback for many errors a peer can cause; outside
DEBUG the traceback is dropped and the line kept (`quiet_tracebacks`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pynetdicom
import pynetdicom.association
import pynetdicom.dul
import pynetdicom.transport
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dul import DULServiceProvider
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationServer, AssociationSocket, RequestHandler

log = logging.getLogger(__name__)

#: pynetdicom's state machine states and events we name (PS3.8 9.2).
STATE_AWAITING_RQ = "Sta2"
STATE_ESTABLISHED = "Sta6"
#: States in which a peer may send P-DATA-TF (established; we asked for release).
STATES_DATA = ("Sta6", "Sta7")
#: States in which an A-RELEASE-RP is expected (we asked for release; release collision).
STATES_RELEASING = ("Sta7", "Sta9", "Sta10", "Sta11", "Sta12")
STATE_AWAITING_CLOSE = "Sta13"
EVENT_TRANSPORT_CLOSED = "Evt17"
#: The DICOM application context name (PS3.7 A.2.1), as pynetdicom proposes it.
APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"


@dataclass(frozen=True)
class Hook:
    """One private name gearview uses, the feature that needs it, and whether it exists."""

    name: str
    feature: str
    present: bool


def _sets(cls: type, attribute: str) -> bool:
    """Whether `cls.__init__` assigns `attribute` (an instance attribute, checked without
    building one)."""
    init = getattr(cls, "__init__", None)
    code = getattr(init, "__code__", None)
    return code is not None and attribute in code.co_names


def _has(owner: Any, attribute: str) -> bool:
    return hasattr(owner, attribute)


def _globals_context_name() -> bool:
    from pynetdicom import _globals

    return getattr(_globals, "APPLICATION_CONTEXT_NAME", None) == APPLICATION_CONTEXT_NAME


def _connect_logs_reason() -> bool:
    code = AssociationSocket.connect.__code__
    return any(isinstance(c, str) and "TCP Initialisation Error" in c for c in code.co_consts)


_CHECKS: list[tuple[str, str, Callable[[], bool]]] = [
    ("DULServiceProvider._read_pdu_data", "inbound",
     lambda: _has(DULServiceProvider, "_read_pdu_data")),
    ("DULServiceProvider._decode_pdu", "inbound",
     lambda: _has(DULServiceProvider, "_decode_pdu")),
    ("DULServiceProvider._recv_pdu", "inbound", lambda: _sets(DULServiceProvider, "_recv_pdu")),
    ("Association._accepted_cx", "inbound", lambda: _sets(Association, "_accepted_cx")),
    ("pynetdicom._globals.APPLICATION_CONTEXT_NAME", "inbound", _globals_context_name),
    ("Association._reactor_checkpoint", "direct_dimse",
     lambda: _sets(Association, "_reactor_checkpoint")),
    ("Association._is_paused", "direct_dimse", lambda: _sets(Association, "_is_paused")),
    ("AssociationSocket._is_connected", "direct_dimse",
     lambda: _sets(AssociationSocket, "_is_connected")),
    ("DULServiceProvider._idle_timer", "direct_dimse",
     lambda: _sets(DULServiceProvider, "_idle_timer")),
    ("pynetdicom.association.time", "wake_clocks",
     lambda: pynetdicom.association.__dict__.get("time") is time),
    ("pynetdicom.dul.time", "wake_clocks", lambda: pynetdicom.dul.__dict__.get("time") is time),
    ("DULServiceProvider._run_loop_delay", "wake_clocks",
     lambda: _sets(DULServiceProvider, "_run_loop_delay")),
    ("pynetdicom.transport.deepcopy", "context_copy",
     lambda: pynetdicom.transport.__dict__.get("deepcopy") is copy.deepcopy),
    ("PresentationContext._transfer_syntax", "context_copy",
     lambda: _sets(PresentationContext, "_transfer_syntax")),
    ("evt._INTERVENTION_EVENTS", "quiet_defaults", lambda: _has(evt, "_INTERVENTION_EVENTS")),
    ("AssociationServer._bind_defaults", "quiet_defaults",
     lambda: _has(AssociationServer, "_bind_defaults")),
    ("RequestHandler._create_association", "server",
     lambda: _has(RequestHandler, "_create_association")),
    ("AssociationSocket.connect logs 'TCP Initialisation Error: <reason>'", "connect_reason",
     _connect_logs_reason),
]


def _probe() -> tuple[Hook, ...]:
    hooks = []
    for name, feature, check in _CHECKS:
        try:
            present = bool(check())
        except Exception:  # noqa: BLE001 - a hook we cannot even check is a missing hook
            present = False
        hooks.append(Hook(name, feature, present))
    return tuple(hooks)


def report_missing(hooks: tuple[Hook, ...]) -> frozenset[str]:
    """Log one line per feature that lacks a hook; the features that do."""
    missing = frozenset(h.feature for h in hooks if not h.present)
    for feature in sorted(missing):
        log.warning(
            "pynetdicom %s lacks %s: gearview's '%s' falls back to pynetdicom's own behaviour",
            pynetdicom.__version__,
            ", ".join(h.name for h in hooks if h.feature == feature and not h.present),
            feature,
        )
    return missing


HOOKS: tuple[Hook, ...] = _probe()
FEATURES: frozenset[str] = frozenset(h.feature for h in HOOKS)
_MISSING = report_missing(HOOKS)


def available(feature: str) -> bool:
    """Whether every hook of `feature` exists in the installed pynetdicom."""
    if feature not in FEATURES:
        raise KeyError(feature)
    return feature not in _MISSING and feature not in _disabled


_disabled: set[str] = set()


@contextlib.contextmanager
def without(feature: str) -> Iterator[None]:
    """Run as if `feature`'s hooks were missing (tests of the fallbacks)."""
    _disabled.add(feature)
    try:
        yield
    finally:
        _disabled.discard(feature)


# ---- inbound: reading PDUs on the server's socket thread ---------------------


def replace_pdu_reader(dul: DULServiceProvider, read: Callable[[], None]) -> bool:
    """Make `read` this DUL's PDU reader (it runs when the socket is readable)."""
    if not available("inbound"):
        return False
    dul._read_pdu_data = read  # type: ignore[method-assign]
    return True


def deliver_pdu(dul: DULServiceProvider, encoded: bytes) -> None:
    """Hand a whole PDU (header and body) to pynetdicom as if its reader had read it.

    pynetdicom decodes it (and may raise on input our checks let through).
    """
    pdu, event = dul._decode_pdu(bytearray(encoded))
    dul.event_queue.put(event)
    dul._recv_pdu.put(pdu)


def accepted_context(assoc: Association, context_id: int) -> PresentationContext | None:
    """The accepted presentation context with this ID (None when not accepted)."""
    if available("inbound"):
        return assoc._accepted_cx.get(context_id)
    return next((c for c in assoc.accepted_contexts if c.context_id == context_id), None)


def state(dul: DULServiceProvider) -> str:
    return str(dul.state_machine.current_state)


def transport_closed(dul: DULServiceProvider) -> None:
    """Tell the state machine the connection is gone (PS3.8 Evt17)."""
    dul.event_queue.put(EVENT_TRANSPORT_CLOSED)


def wake_acceptor(dul: DULServiceProvider) -> None:
    """End the association thread's wait for an A-ASSOCIATE-RQ that will not come.

    pynetdicom's acceptor waits the whole ACSE timeout for it; an empty
    primitive makes it stop at once, as on that timeout.
    """
    dul.to_user_queue.put(None)  # type: ignore[arg-type]


def application_context_name() -> str:
    if available("inbound"):
        from pynetdicom import _globals

        return str(_globals.APPLICATION_CONTEXT_NAME)
    return APPLICATION_CONTEXT_NAME


# ---- direct DIMSE I/O on a requestor's association ---------------------------


@contextlib.contextmanager
def paused(assoc: Association, direct: bool) -> Iterator[None]:
    """Take the association's reactors off the connection for a whole batch.

    The association reactor is paused (pynetdicom's own pause flag can be
    stale - the reactor may already be past its checkpoint and steal a
    response - so we confirm it stays paused), and with `direct` the DUL
    reactor is told the transport is not readable so that the caller reads
    the responses itself. Both are restored on exit, so pynetdicom's release
    or abort then work as usual.
    """
    assoc._reactor_checkpoint.clear()
    transport = assoc.dul.socket
    try:
        while True:
            while not assoc._is_paused and assoc.is_alive():
                time.sleep(0.0005)
            time.sleep(0.005)
            if assoc._is_paused or not assoc.is_alive():
                break
        if direct and transport is not None:
            transport._is_connected = False
        yield
    finally:
        if direct and transport is not None and transport.socket is not None:
            transport._is_connected = True
        assoc._reactor_checkpoint.set()


def restart_idle_timer(assoc: Association) -> None:
    """Traffic we read ourselves still counts as traffic for pynetdicom's network timeout."""
    assoc.dul._idle_timer.restart()


# ---- live objects of a server association ------------------------------------


def adopt_socket(transport: AssociationSocket, cls: type[AssociationSocket]) -> None:
    """Re-class the transport pynetdicom just made (a new one would queue a second Evt5)."""
    transport.__class__ = cls


def set_run_loop_delay(dul: DULServiceProvider, seconds: float) -> None:
    if available("wake_clocks"):
        dul._run_loop_delay = seconds


def replace_queue(owner: DULServiceProvider | DIMSEServiceProvider, name: str, queue: Any) -> None:
    """Swap one of pynetdicom's public queues (`to_provider_queue`, `msg_queue`) for ours."""
    setattr(owner, name, queue)


def wrap_run(thread: threading.Thread, before: Callable[[], None],
             after: Callable[[], None]) -> None:
    """Run `before` and `after` on the thread itself around pynetdicom's `run`."""
    run = thread.run

    def wrapped() -> None:
        before()
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - one line instead of threading's traceback
            log.error("%s ended with %s: %s", thread.name, type(exc).__name__, exc)
            log.debug("%s traceback", thread.name, exc_info=True)
        finally:
            after()

    thread.run = wrapped  # type: ignore[method-assign]


def intervention_events() -> tuple[Any, ...] | None:
    """pynetdicom's intervention events (None when unknown: bind all its defaults)."""
    if not available("quiet_defaults"):
        return None
    return tuple(evt._INTERVENTION_EVENTS)


def copy_contexts(contexts: Any) -> Any:
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


def server_patches(reactor_clock: Any, dul_clock: Any) -> ModulePatches:
    """The replacements a server's associations run with: the clocks for
    `pynetdicom.association` and `pynetdicom.dul`, and `copy_contexts`."""
    return ModulePatches([
        (pynetdicom.association, "time", reactor_clock, "wake_clocks"),
        (pynetdicom.dul, "time", dul_clock, "wake_clocks"),
        (pynetdicom.transport, "deepcopy", copy_contexts, "context_copy"),
    ])


class ModulePatches:
    """pynetdicom module attributes replaced while anyone holds them, restored after.

    `acquire` installs them on the first holder (a starting server), `release`
    restores the originals when the last one lets go.
    """

    def __init__(self, patches: list[tuple[types.ModuleType, str, Any, str]]) -> None:
        self._patches = patches
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: list[tuple[types.ModuleType, str, Any]] = []

    @property
    def installed(self) -> bool:
        with self._lock:
            return bool(self._saved)

    def acquire(self) -> None:
        with self._lock:
            self._holders += 1
            if self._holders > 1:
                return
            for module, name, value, feature in self._patches:
                if available(feature):
                    self._saved.append((module, name, getattr(module, name)))
                    setattr(module, name, value)

    def release(self) -> None:
        with self._lock:
            self._holders = max(0, self._holders - 1)
            if self._holders:
                return
            for module, name, original in reversed(self._saved):
                setattr(module, name, original)
            self._saved.clear()


# ---- the client side: why a connection failed --------------------------------


class ConnectErrors(logging.Handler):
    """Remembers the last transport error pynetdicom logged, per reactor thread.

    pynetdicom only logs why a connection failed (refused, timed out, TLS
    handshake error) and hands back an unestablished association.
    """

    PREFIX = "TCP Initialisation Error:"

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self._lock = threading.Lock()
        self._errors: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(self.PREFIX):
            with self._lock:
                if len(self._errors) > 256:  # failures of associations nobody asked about
                    self._errors.clear()
                self._errors[threading.get_ident()] = message.split(":", 1)[1].strip()

    def pop(self, ident: int | None) -> str:
        with self._lock:
            return self._errors.pop(ident or -1, "")


CONNECT_ERRORS = ConnectErrors()
logging.getLogger("pynetdicom").addHandler(CONNECT_ERRORS)


class _QuietTracebacks(logging.Filter):
    """pynetdicom logs a full traceback for errors a peer can cause; keep the line only,
    unless its logger is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            exc = record.exc_info[1]
            if record.msg == exc or not record.args and str(record.msg) == str(exc):
                record.msg = f"{type(exc).__name__}: {exc}"
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_tracebacks() -> None:
    """Install the traceback filter on every pynetdicom logger (idempotent)."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "pynetdicom"]
    for name in ["pynetdicom", *names]:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietTracebacks) for f in logger.filters):
            logger.addFilter(_QuietTracebacks())


quiet_tracebacks()


def register_defaults(server: AssociationServer, bind: Callable[[Any, Any], None]) -> bool:
    """Bind only pynetdicom's intervention defaults on `server`; False: bind them all."""
    events = intervention_events()
    if events is None:
        return False
    for event in events:
        bind(event, evt.get_default_handler(event))
    return True
