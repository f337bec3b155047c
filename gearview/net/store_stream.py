"""C-STORE requests received straight into the cache as their PDUs arrive.

pynetdicom assembles each DIMSE message in memory, hands it from its DUL
thread to the association thread through a queue, copies the data set
several times and hands the response back the same way: in the receive
benchmark that cost more than the network and the disk together. On our
server the socket thread's PDU reader (`net/inbound.py`) gives a C-STORE-RQ
on an accepted storage context to `StoreStream` instead: each data fragment
is written to the spool as it arrives and the C-STORE-RSP is sent from that
thread once the instance is safe. Everything else goes to pynetdicom.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gearview.net import dimse
from gearview.net.pdu import escape
from gearview.net.pynetdicom_compat import accepted_context

log = logging.getLogger("gearview.net.server")

COMMAND = 0x01


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


class StoreStream:
    """The C-STORE fast path of one association: one instance at a time."""

    def __init__(self, assoc: Any, begin: Begin) -> None:
        self._assoc = assoc
        self._begin = begin
        self._receipt: Receipt | None = None
        self._request: StoreRequest | None = None
        self._context_id = 0
        self._msg_id = 0

    def accepts(self, command: dimse.Command, context_id: int) -> StoreRequest | None:
        """The request when this command is a C-STORE-RQ we take on this context."""
        if command.field != dimse.C_STORE_RQ or not command.has_dataset:
            return None
        context = accepted_context(self._assoc, context_id)
        sop_uid = dimse.command_text(command.elements, "AffectedSOPInstanceUID")
        if (context is None or context.abstract_syntax != command.sop_class
                or context.as_scp is False or not context.transfer_syntax or not sop_uid):
            return None
        calling = self._assoc.requestor.ae_title or ""
        return StoreRequest(str(command.sop_class), sop_uid,
                            str(context.transfer_syntax[0]), calling)

    def start(self, request: StoreRequest, command: dimse.Command, context_id: int) -> None:
        self.interrupt()
        self._request, self._context_id = request, context_id
        self._msg_id = command.message_id or 0
        self._receipt = self._begin(request)

    def write(self, fragment: memoryview) -> None:
        if self._receipt is not None:
            self._receipt.write(fragment)

    def finish(self) -> None:
        """The last fragment arrived: store the instance, then answer the peer."""
        receipt, self._receipt = self._receipt, None
        if receipt is not None:
            self._respond(*receipt.finish())

    def interrupt(self) -> None:
        """The message ends without its last fragment (abort, release, lost connection)."""
        receipt, self._receipt = self._receipt, None
        if receipt is not None:
            receipt.discard()
            log.info("C-STORE from %s interrupted before its last fragment; nothing stored",
                     escape(self._request.calling_ae if self._request else ""))

    def _respond(self, status: int, comment: str) -> None:
        request = self._request
        assert request is not None
        command = dimse.store_response(request.sop_class, request.sop_uid, self._msg_id,
                                       status, comment)
        max_pdu = self._assoc.requestor.maximum_length
        parts = dimse.pdus(self._context_id, command, COMMAND, max_pdu)
        transport = self._assoc.dul.socket
        for start in range(0, len(parts), 2):
            transport.send(bytes(parts[start]) + bytes(parts[start + 1]))
