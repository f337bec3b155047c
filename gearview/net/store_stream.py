"""C-STORE requests received straight into the cache as their PDUs arrive.

pynetdicom assembles each DIMSE message in memory, hands it from its DUL
thread to the association thread through a queue, copies the data set
several times and hands the response back the same way: in the receive
benchmark that cost more than the network and the disk together. This
reader runs on the DUL thread instead of pynetdicom's `_read_pdu_data`,
under the same socket guards (`GuardedSocket`): a P-DATA-TF that starts a
C-STORE-RQ on an accepted storage context, and the data PDUs after it, are
parsed here; each data fragment is written to the spool as it arrives and
the C-STORE-RSP is sent from this thread once the instance is safe.

Everything else - association set-up and release, A-ABORT, C-ECHO, C-FIND,
C-MOVE, N-EVENT-REPORT, a C-STORE whose command spans several PDUs or names
another SOP class than its context - goes to pynetdicom unchanged. A
message never switches path half-way: the decision is made on its first
PDU and `_Passing` follows pynetdicom's messages to their end.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gearview.net import dimse
from gearview.net.guard import escape, security_alert

log = logging.getLogger("gearview.net.server")

ESTABLISHED = "Sta6"
#: pynetdicom's DUL events (PS3.8 9.2): transport closed, invalid PDU.
EVT_CLOSED = "Evt17"
EVT_INVALID_PDU = "Evt19"
PDU_TYPES = range(0x01, 0x08)
COMMAND = 0x01
LAST = 0x02


@dataclass(frozen=True)
class StoreRequest:
    """What the command set and the presentation context say about an incoming instance."""

    sop_class: str
    sop_uid: str
    transfer_syntax: str
    calling_ae: str


class Receipt(Protocol):
    """The server's side of one C-STORE: bytes in, a status out."""

    def write(self, data: memoryview) -> None: ...

    def finish(self) -> tuple[int, str]: ...

    def discard(self) -> None: ...


Begin = Callable[[StoreRequest], Receipt]


def pdvs(body: bytes | bytearray | memoryview) -> list[tuple[int, int, memoryview]] | None:
    """(context ID, message control header, fragment) of each PDV of a P-DATA-TF body."""
    view = memoryview(body).cast("B")
    items = []
    offset = 0
    while offset < len(view):
        if offset + dimse.PDV_HEADER.size > len(view):
            return None
        length, context_id, control = dimse.PDV_HEADER.unpack_from(view, offset)
        end = offset + 4 + length
        if length < 2 or end > len(view):
            return None
        items.append((context_id, control, view[offset + dimse.PDV_HEADER.size : end]))
        offset = end
    return items or None


class _Passing:
    """Follows the messages pynetdicom handles so we know where the next one starts."""

    def __init__(self) -> None:
        self.open = False
        self._command = bytearray()
        self._expect_data = False

    def follow(self, items: list[tuple[int, int, memoryview]]) -> None:
        for _, control, fragment in items:
            self.open = True
            if control & COMMAND:
                self._command += fragment
                if control & LAST:
                    command = dimse.parse_command(self._command) or {}
                    self._command.clear()
                    kind = dimse.command_us(command, "CommandDataSetType")
                    self._expect_data = kind is not None and kind != dimse.NO_DATASET
                    self.open = self._expect_data
            elif control & LAST:
                self.open = self._expect_data = False

    def reset(self) -> None:
        self.__init__()


class StoreStream:
    """The C-STORE fast path of one association (see the module docstring)."""

    def __init__(self, assoc: Any, begin: Begin) -> None:
        self._assoc = assoc
        self._begin = begin
        self._passing = _Passing()
        self._receipt: Receipt | None = None
        self._context_id = 0
        self._msg_id = 0
        self._request: StoreRequest | None = None

    # ---- PDUs ------------------------------------------------------------

    def feed(self, body: memoryview) -> bool:
        """Take a P-DATA-TF body received while established; False hands it to pynetdicom."""
        items = pdvs(body)
        if self._receipt is not None:
            if items is None:
                self._violation("a malformed P-DATA-TF")
                return True
            self._receive(items)
            return True
        if items is None or self._passing.open or not self._start(items):
            if items is not None:
                self._passing.follow(items)
            return False
        return True

    def interrupt(self) -> None:
        """The message ends without its last fragment (abort, release, lost connection)."""
        receipt, self._receipt = self._receipt, None
        if receipt is not None:
            receipt.discard()
            log.info("C-STORE from %s interrupted before its last fragment; nothing stored",
                     escape(self._request.calling_ae if self._request else ""))
        self._passing.reset()

    # ---- one C-STORE -------------------------------------------------------

    def _start(self, items: list[tuple[int, int, memoryview]]) -> bool:
        context_id, control, fragment = items[0]
        if control != COMMAND | LAST:
            return False
        if any(c != context_id or ctl & COMMAND for c, ctl, _ in items[1:]):
            return False
        request, msg_id = self._store_request(context_id, fragment)
        if request is None:
            return False
        self._request, self._msg_id, self._context_id = request, msg_id, context_id
        self._receipt = self._begin(request)
        self._receive(items[1:])
        return True

    def _store_request(self, context_id: int, command_bytes: memoryview,
                       ) -> tuple[StoreRequest | None, int]:
        """The request when this command is a C-STORE-RQ we take; (None, 0) otherwise."""
        command = dimse.parse_command(command_bytes)
        if command is None or dimse.command_us(command, "CommandField") != dimse.C_STORE_RQ:
            return None, 0
        msg_id = dimse.command_us(command, "MessageID")
        kind = dimse.command_us(command, "CommandDataSetType")
        sop_class = dimse.command_text(command, "AffectedSOPClassUID")
        sop_uid = dimse.command_text(command, "AffectedSOPInstanceUID")
        context = self._assoc._accepted_cx.get(context_id)
        if (msg_id is None or kind in (None, dimse.NO_DATASET) or not sop_class or not sop_uid
                or context is None or context.abstract_syntax != sop_class
                or context.as_scp is False or not context.transfer_syntax):
            return None, 0
        calling = self._assoc.requestor.ae_title or ""
        request = StoreRequest(sop_class, sop_uid, str(context.transfer_syntax[0]), calling)
        return request, msg_id

    def _receive(self, items: list[tuple[int, int, memoryview]]) -> None:
        receipt = self._receipt
        assert receipt is not None
        for context_id, control, fragment in items:
            if control & COMMAND or context_id != self._context_id:
                self._violation("a new message before the last data fragment")
                return
            receipt.write(fragment)
            if control & LAST:
                self._receipt = None
                self._respond(*receipt.finish())
                return

    def _respond(self, status: int, comment: str) -> None:
        request = self._request
        assert request is not None
        command = dimse.store_response(request.sop_class, request.sop_uid, self._msg_id,
                                       status, comment)
        max_pdu = self._assoc.requestor.maximum_length
        parts = dimse.pdus(self._context_id, command, COMMAND, max_pdu)
        for start in range(0, len(parts), 2):
            self._assoc.dul.socket.send(bytes(parts[start]) + bytes(parts[start + 1]))

    def _violation(self, what: str) -> None:
        """The peer broke PS3.7 fragment rules inside a C-STORE: drop it and abort."""
        calling = escape(self._request.calling_ae if self._request else "")
        security_alert("C-STORE from %s: %s; association aborted", calling, what)
        self.interrupt()
        self._assoc.dul.socket._abort_and_close()


def install(dul: Any, stream: StoreStream) -> None:
    """Put `stream` in front of pynetdicom's PDU reader on this association's DUL."""

    def read_pdu_data() -> None:
        """pynetdicom's `_read_pdu_data`, with the C-STORE fast path and its events."""
        sock = dul.socket
        try:
            header = sock.recv(dimse.PDU_HEADER.size)
            pdu_type, _, length = dimse.PDU_HEADER.unpack(header)
        except (OSError, TimeoutError, struct.error):
            stream.interrupt()
            dul.event_queue.put(EVT_CLOSED)
            return
        if pdu_type not in PDU_TYPES:
            log.error("unknown PDU type 0x%02X received", pdu_type)
            stream.interrupt()
            dul.event_queue.put(EVT_INVALID_PDU)
            return
        fast = pdu_type == dimse.P_DATA_TF and dul.state_machine.current_state == ESTABLISHED
        try:
            body = sock.recv_body_reusing(length) if fast else sock.recv(length)
        except (OSError, TimeoutError):
            body = memoryview(b"")
        with memoryview(body) as view:
            if len(view) != length:
                stream.interrupt()
                dul.event_queue.put(EVT_CLOSED)
                return
            if fast:
                try:
                    if stream.feed(view):
                        return
                except BaseException:
                    stream.interrupt()
                    raise
            elif pdu_type != dimse.P_DATA_TF:
                stream.interrupt()
            encoded = header + view
        try:
            pdu, event = dul._decode_pdu(encoded)
        except Exception:
            log.exception("unable to decode a received PDU")
            dul.event_queue.put(EVT_INVALID_PDU)
            return
        dul.event_queue.put(event)
        dul._recv_pdu.put(pdu)

    dul._read_pdu_data = read_pdu_data
