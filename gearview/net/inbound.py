"""What our server's socket thread does with each PDU a peer sends.

This replaces pynetdicom's PDU reader on every server association (hook
``inbound`` of `pynetdicom_compat`):

1. the PDU is read through the connection's `PduReader` (length caps, a
   deadline per PDU);
2. it is checked (`net/pdu.py`) before pynetdicom decodes anything. A PDU
   that breaks PS3.8 is refused: the peer gets the answer PS3.8 gives (an
   A-ABORT with its reason, or an A-ASSOCIATE-RJ), one Security Alert line
   is logged, and the connection is closed - nothing after it is read;
3. DIMSE messages are followed across P-DATA-TF PDUs. A command set is
   collected whole and checked first: an unreadable one is refused, an
   unknown command is answered with status 0x0211 and a request for another
   SOP class than its presentation context with 0x0122, both by us. A
   C-STORE-RQ goes to `StoreStream` (written to the cache as it arrives);
   everything else is handed to pynetdicom as P-DATA-TF PDUs it decodes as
   usual. A message never switches path half-way.

Once pynetdicom's state machine waits for the connection to close (after an
A-ABORT, A-ASSOCIATE-RJ or A-RELEASE-RP was sent) the reader closes it
instead of reading on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gearview.net import dimse
from gearview.net import pynetdicom_compat as compat
from gearview.net.pdu import (
    ABORT,
    ASSOCIATE_RQ,
    P_DATA_TF,
    PDU_HEADER,
    PDU_NAMES,
    REASON_UNEXPECTED_PDU,
    RELEASE_RP,
    RELEASE_RQ,
    PeerClosed,
    Refusal,
    check_associate_rq,
    check_fixed,
    p_data_tf,
    pdvs,
    security_alert,
)
from gearview.net.store_stream import StoreStream

#: How a received message is served.
FAST, PYNETDICOM, ANSWERED = "fast", "pynetdicom", "answered"
#: Data sets other than C-STORE's (identifiers, event information) handed to pynetdicom,
#: which holds them in memory, are refused beyond this.
MAX_FORWARDED_DATA = 16 << 20
COMMAND_LAST = 0x03


@dataclass
class _Message:
    """The DIMSE message being received."""

    context_id: int
    command: bytearray = field(default_factory=bytearray)
    route: str | None = None
    field: int = 0
    expects_data: bool = False
    data_size: int = 0


class Inbound:
    """The PDU reader of one server association (see the module docstring)."""

    def __init__(self, assoc: Any, stream: StoreStream | None) -> None:
        self._assoc = assoc
        self._dul = assoc.dul
        self._stream = stream
        self._message: _Message | None = None
        self._first = True
        self._peer_aborted = False

    def read(self) -> None:
        """Read and serve one PDU; pynetdicom calls this when the socket is readable."""
        if self._peer_aborted:
            return  # pynetdicom closes the connection once it has taken the A-ABORT in
        transport = self._dul.socket
        current = compat.state(self._dul)
        if current == compat.STATE_AWAITING_CLOSE:
            self.ended()
            transport.close_quietly()
            return
        try:
            pdu_type, body = transport.reader.read(transport.pdu_timeout())
            self._dispatch(pdu_type, body, current)
        except PeerClosed:
            self.ended()
            transport.close_quietly()
        except Refusal as refusal:
            self.ended()
            transport.refuse(refusal)

    def ended(self) -> None:
        """The association ends here: an instance being received is discarded."""
        self._message = None
        if self._stream is not None:
            self._stream.interrupt()

    # ---- PDUs ------------------------------------------------------------

    def _dispatch(self, pdu_type: int, body: memoryview, current: str) -> None:
        name = _article(PDU_NAMES[pdu_type])
        first, self._first = self._first, False
        if first != (pdu_type == ASSOCIATE_RQ):
            what = f"{name} before an A-ASSOCIATE-RQ" if first else "a second A-ASSOCIATE-RQ"
            raise Refusal(f"sent {what}", abort_reason=REASON_UNEXPECTED_PDU)
        if pdu_type == ASSOCIATE_RQ:
            # (pynetdicom may not have moved to Sta2 yet: its events are queued)
            check_associate_rq(body, compat.application_context_name())
            self._deliver(pdu_type, body)
            self._dul.socket.connection.requested = True
        elif pdu_type == P_DATA_TF:
            if current not in compat.STATES_DATA:
                raise Refusal("sent a P-DATA-TF outside an established association",
                              abort_reason=REASON_UNEXPECTED_PDU)
            self._p_data(body)
        elif pdu_type == RELEASE_RP and current not in compat.STATES_RELEASING:
            raise Refusal("sent an A-RELEASE-RP without a release request",
                          abort_reason=REASON_UNEXPECTED_PDU)
        elif pdu_type in (RELEASE_RQ, RELEASE_RP, ABORT):
            check_fixed(pdu_type, body)
            self.ended()
            self._peer_aborted = pdu_type == ABORT
            self._deliver(pdu_type, body)
        else:
            raise Refusal(f"sent {name} to the association acceptor",
                          abort_reason=REASON_UNEXPECTED_PDU)

    def _deliver(self, pdu_type: int, body: bytes | memoryview) -> None:
        encoded = PDU_HEADER.pack(pdu_type, 0, len(body)) + bytes(body)
        try:
            compat.deliver_pdu(self._dul, encoded)
        except Exception as exc:  # noqa: BLE001 - pynetdicom's decoders raise anything
            raise Refusal(f"sent {_article(PDU_NAMES[pdu_type])} pynetdicom cannot decode "
                          f"({type(exc).__name__}: {exc})") from None

    # ---- DIMSE messages ----------------------------------------------------

    def _p_data(self, body: memoryview) -> None:
        forward: list[tuple[int, int, bytes | memoryview]] = []
        for item in pdvs(body):
            if compat.accepted_context(self._assoc, item.context_id) is None:
                raise Refusal(f"sent a PDV on presentation context {item.context_id}, "
                              "which was not accepted")
            message = self._message
            if message is None:
                if not item.is_command:
                    raise Refusal("sent a data set fragment before its command")
                message = self._message = _Message(item.context_id)
            elif item.context_id != message.context_id:
                raise Refusal("switched presentation context inside a message")
            if item.is_command:
                if message.route is not None:
                    raise Refusal("sent a new command before the last data fragment")
                message.command += item.fragment
                if len(message.command) > dimse.MAX_COMMAND:
                    raise Refusal("sent a command set larger than 64 KiB")
                if item.is_last:
                    self._route(message, forward)
            else:
                if message.route is None:
                    raise Refusal("sent a data set fragment before the end of its command")
                if not message.expects_data:
                    raise Refusal("sent a data set its command said would not come")
                self._data(message, item.control, item.fragment, forward)
        if forward:
            self._deliver(P_DATA_TF, p_data_tf(forward)[PDU_HEADER.size :])

    def _route(self, message: _Message, forward: list) -> None:
        """The whole command set arrived: decide how the message is served."""
        try:
            command = dimse.check_command(message.command)
        except dimse.CommandError as exc:
            raise Refusal(f"sent {exc}") from None
        message.field, message.expects_data = command.field, command.has_dataset
        context = compat.accepted_context(self._assoc, message.context_id)
        request = self._stream.accepts(command, message.context_id) if self._stream else None
        if not command.known:
            self._answer(command, message, dimse.STATUS_UNRECOGNIZED_OPERATION,
                         f"sent an unknown command 0x{command.field:04X}")
        elif (command.is_request and command.sop_class and context is not None
              and command.sop_class != context.abstract_syntax):
            self._answer(command, message, dimse.STATUS_SOP_CLASS_NOT_SUPPORTED,
                         f"sent a command for {command.sop_class} on a presentation context "
                         f"for {context.abstract_syntax}")
        elif request is not None:
            message.route = FAST
            assert self._stream is not None
            self._stream.start(request, command, message.context_id)
        else:
            message.route = PYNETDICOM
            forward.append((message.context_id, COMMAND_LAST, bytes(message.command)))
        if not message.expects_data:
            self._message = None

    def _data(self, message: _Message, control: int, fragment: memoryview,
              forward: list) -> None:
        message.data_size += len(fragment)
        last = bool(control & 0x02)
        if message.route == FAST:
            assert self._stream is not None
            self._stream.write(fragment)
            if last:
                self._message = None
                self._stream.finish()
            return
        if message.route == PYNETDICOM:
            if message.field != dimse.C_STORE_RQ and message.data_size > MAX_FORWARDED_DATA:
                raise Refusal(f"sent a data set of more than {MAX_FORWARDED_DATA} bytes "
                              f"with command 0x{message.field:04X}")
            forward.append((message.context_id, control & 0x03, fragment))
        if last:
            self._message = None

    def _answer(self, command: dimse.Command, message: _Message, status: int, what: str) -> None:
        """Answer a request ourselves (its data set, if any, is read and dropped)."""
        message.route = ANSWERED
        transport = self._dul.socket
        security_alert("%s %s; answered status 0x%04X", transport.connection.address, what,
                       status)
        parts = dimse.pdus(message.context_id, dimse.failure_response(command, status), 1,
                           self._assoc.requestor.maximum_length)
        for start in range(0, len(parts), 2):
            transport.send(bytes(parts[start]) + bytes(parts[start + 1]))


def _article(name: str) -> str:
    return f"an {name}" if name.startswith("A-") else f"a {name}"
