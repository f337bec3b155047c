"""DIMSE messages on the wire: command sets built and parsed, and direct message I/O.

pynetdicom sends every PDU through its reactor thread and hands every
response back through two more threads, decoding and pretty-printing each
identifier on the way; per message that costs more than the network (stock
`send_c_store` is 7-12x slower than storescu, a 1000-study C-FIND 2x slower
than findscu). For the hot paths (C-STORE, C-FIND) we let pynetdicom
negotiate and release the association and do the message exchange in
between ourselves:

- `paused(assoc)` takes pynetdicom's reactors off the connection for a batch
  and gives it back before release/abort;
- `write_message` writes P-DATA-TF PDUs with scatter/gather `sendmsg` (each
  PDU joined into one `sendall` where the platform has no `sendmsg`) and never
  copies the data set;
- `read_message` reads PDUs (through the shared `PduReader`, so with length
  caps and a deadline) until a whole DIMSE message arrived.

Only plain TCP takes this path (`direct_socket` is None for TLS, where one
thread writing while another reads an SSL socket is unsafe, and when the
installed pynetdicom lacks the hooks); callers then use pynetdicom's path.

The server uses the command parsing here too: `parse_command` reads a
command set without trusting any length in it, and `check_command` says
whether pynetdicom may see it (see `net/inbound.py`).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pynetdicom import Association

from gearview.net import pynetdicom_compat as compat
from gearview.net.pdu import (
    ABORT,
    P_DATA_TF,
    PDU_HEADER,
    PDV_HEADER,
    PduLimits,
    PduReader,
    Refusal,
    pdvs,
)

_ELEMENT_HEADER = struct.Struct("<HHI")
_US = struct.Struct("<H")
_UL = struct.Struct("<I")
#: Buffers per sendmsg call (below the usual IOV_MAX of 1024).
_IOV_BATCH = 512
#: A response's data set (a C-FIND identifier) is small; more than this is refused.
MAX_RESPONSE_DATA = 16 << 20
#: A command set is a few hundred bytes; more than this is not one.
MAX_COMMAND = 64 << 10

#: PS3.7 E.1 command fields; a response is its request's field with bit 15 set.
C_STORE_RQ = 0x0001
C_GET_RQ = 0x0010
C_FIND_RQ = 0x0020
C_MOVE_RQ = 0x0021
C_ECHO_RQ = 0x0030
N_EVENT_REPORT_RQ = 0x0100
N_GET_RQ = 0x0110
N_SET_RQ = 0x0120
N_ACTION_RQ = 0x0130
N_CREATE_RQ = 0x0140
N_DELETE_RQ = 0x0150
C_CANCEL_RQ = 0x0FFF
RESPONSE_BIT = 0x8000
C_STORE_RSP = C_STORE_RQ | RESPONSE_BIT
PRIORITY_MEDIUM = 0x0000
#: PS3.7 E.1: medium, high, low.
PRIORITIES = (0x0000, 0x0001, 0x0002)
DATASET_PRESENT = 0x0000
NO_DATASET = 0x0101
#: General DIMSE statuses (PS3.7 C.5) we answer ourselves.
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122
STATUS_UNRECOGNIZED_OPERATION = 0x0211

#: The command elements PS3.7 makes mandatory ("M") in each request (9.3, 10.3).
_REQUEST_ELEMENTS: dict[int, tuple[str, ...]] = {
    C_STORE_RQ: ("AffectedSOPClassUID", "MessageID", "Priority", "AffectedSOPInstanceUID"),
    C_FIND_RQ: ("AffectedSOPClassUID", "MessageID", "Priority"),
    C_GET_RQ: ("AffectedSOPClassUID", "MessageID", "Priority"),
    C_MOVE_RQ: ("AffectedSOPClassUID", "MessageID", "Priority", "MoveDestination"),
    C_ECHO_RQ: ("AffectedSOPClassUID", "MessageID"),
    C_CANCEL_RQ: ("MessageIDBeingRespondedTo",),
    N_EVENT_REPORT_RQ: ("AffectedSOPClassUID", "MessageID", "AffectedSOPInstanceUID",
                        "EventTypeID"),
    N_GET_RQ: ("RequestedSOPClassUID", "MessageID", "RequestedSOPInstanceUID"),
    N_SET_RQ: ("RequestedSOPClassUID", "MessageID", "RequestedSOPInstanceUID"),
    N_ACTION_RQ: ("RequestedSOPClassUID", "MessageID", "RequestedSOPInstanceUID",
                  "ActionTypeID"),
    N_CREATE_RQ: ("AffectedSOPClassUID", "MessageID"),
    N_DELETE_RQ: ("RequestedSOPClassUID", "MessageID", "RequestedSOPInstanceUID"),
}
_RESPONSE_ELEMENTS = ("MessageIDBeingRespondedTo", "Status")
#: Value types of the command elements above (US or UI/AE text).
_FIXED_SIZES = {"US": 2, "UL": 4, "AT": 4}
MAX_UID = 64
MAX_AE = 16
_US_ELEMENTS = frozenset({"MessageID", "MessageIDBeingRespondedTo", "Priority", "Status",
                          "EventTypeID", "ActionTypeID", "CommandField",
                          "CommandDataSetType"})


class PeerAborted(ConnectionError):
    """The peer sent A-ABORT while we were waiting for a response."""


def direct_socket(assoc: Association) -> socket.socket | None:
    """The plain TCP socket we write and read ourselves during a batch (None for TLS)."""
    if not compat.available("direct_dimse"):
        return None
    transport = assoc.dul.socket
    sock = transport.socket if transport is not None else None
    if sock is None or isinstance(sock, ssl.SSLSocket):
        return None
    return sock


@contextlib.contextmanager
def paused(assoc: Association) -> Iterator[None]:
    """pynetdicom's reactors off the connection for a batch (see `compat.paused`); on the
    stock path (no hooks) pynetdicom's own send methods pause them per message."""
    if not compat.available("direct_dimse"):
        yield
        return
    with compat.paused(assoc, direct=direct_socket(assoc) is not None):
        yield


def element(keyword: str, value: bytes) -> bytes:
    """One implicit VR little endian command element (values padded to even length)."""
    if len(value) % 2:
        value += b"\x00"
    tag = tag_for_keyword(keyword)
    return _ELEMENT_HEADER.pack(tag >> 16, tag & 0xFFFF, len(value)) + value


def command_set(*elements: bytes) -> bytes:
    """A command set: the elements (in tag order) after their group length."""
    body = b"".join(elements)
    return element("CommandGroupLength", _UL.pack(len(body))) + body


def us(value: int) -> bytes:
    return _US.pack(value)


def store_command(sop_class: str, sop_uid: str, msg_id: int) -> bytes:
    """C-STORE-RQ (PS3.7 9.3.1.1); built directly - via pydicom it cost more CPU than the send."""
    return command_set(
        element("AffectedSOPClassUID", sop_class.encode()),
        element("CommandField", us(C_STORE_RQ)),
        element("MessageID", us(msg_id)),
        element("Priority", us(PRIORITY_MEDIUM)),
        element("CommandDataSetType", us(DATASET_PRESENT)),
        element("AffectedSOPInstanceUID", sop_uid.encode()),
    )


def store_response(sop_class: str, sop_uid: str, msg_id: int, status: int,
                   comment: str = "") -> bytes:
    """C-STORE-RSP (PS3.7 9.3.1.2); the error comment (LO) only with a failure status."""
    comment_element = (
        [element("ErrorComment", _pad_text(comment.encode("ascii", "replace")))] if comment else []
    )
    return command_set(
        element("AffectedSOPClassUID", sop_class.encode()),
        element("CommandField", us(C_STORE_RSP)),
        element("MessageIDBeingRespondedTo", us(msg_id)),
        element("CommandDataSetType", us(NO_DATASET)),
        element("Status", us(status)),
        *comment_element,
        element("AffectedSOPInstanceUID", sop_uid.encode()),
    )


def _pad_text(value: bytes) -> bytes:
    return value + b" " if len(value) % 2 else value


def parse_command(data: bytes | memoryview) -> dict[int, bytes] | None:
    """The elements of an implicit VR little endian command set by tag, or None if malformed."""
    view = memoryview(data).cast("B")
    elements: dict[int, bytes] = {}
    offset = 0
    while offset < len(view):
        if offset + _ELEMENT_HEADER.size > len(view):
            return None
        group, elem, length = _ELEMENT_HEADER.unpack_from(view, offset)
        offset += _ELEMENT_HEADER.size
        if group != 0x0000 or offset + length > len(view):
            return None
        elements[elem] = bytes(view[offset : offset + length])
        offset += length
    return elements


def command_us(elements: dict[int, bytes], keyword: str) -> int | None:
    """A US value of a parsed command set (None when absent or not 2 bytes)."""
    value = elements.get(tag_for_keyword(keyword) & 0xFFFF)
    return _US.unpack(value)[0] if value is not None and len(value) == 2 else None


def command_text(elements: dict[int, bytes], keyword: str) -> str | None:
    """A UI/AE value of a parsed command set, padding removed (None when absent or not ASCII)."""
    value = elements.get(tag_for_keyword(keyword) & 0xFFFF)
    if value is None or not value.isascii():
        return None
    return value.rstrip(b"\x00 ").decode("ascii")


class CommandError(ValueError):
    """A command set that is not one: unreadable, or missing a mandatory element."""


@dataclass(frozen=True)
class Command:
    """What the server needs to know of a received command set before routing it."""

    field: int
    message_id: int | None
    has_dataset: bool
    sop_class: str | None
    elements: dict[int, bytes]

    @property
    def is_request(self) -> bool:
        return not self.field & RESPONSE_BIT

    @property
    def known(self) -> bool:
        """A command PS3.7 defines (there is no C-CANCEL response)."""
        base = self.field & ~RESPONSE_BIT
        return base in _REQUEST_ELEMENTS and (self.is_request or base != C_CANCEL_RQ)


def check_command(data: bytes | memoryview) -> Command:
    """Parse and check a command set (PS3.7 9.3, 10.3, E.1); CommandError when it is not one.

    An unknown command field is not an error here (`Command.known` is False):
    PS3.7 answers it with status 0x0211.
    """
    elements = parse_command(data)
    if elements is None:
        raise CommandError("an unreadable command set")
    field = command_us(elements, "CommandField")
    kind = command_us(elements, "CommandDataSetType")
    if field is None or kind is None:
        raise CommandError("a command set without a Command Field or Command Data Set Type")
    command = Command(
        field,
        command_us(elements, "MessageID"),
        kind != NO_DATASET,
        command_text(elements, "AffectedSOPClassUID")
        or command_text(elements, "RequestedSOPClassUID"),
        elements,
    )
    if not command.known:
        if command.message_id is None:
            raise CommandError(f"an unknown command 0x{field:04X} without a Message ID")
        return command
    for element_number, value in elements.items():
        problem = _value_problem(element_number, value)
        if problem:
            raise CommandError(f"a command 0x{field:04X} with {problem}")
    priority = command_us(elements, "Priority")
    if priority is not None and priority not in PRIORITIES:
        raise CommandError(f"a command 0x{field:04X} with priority {priority}")
    wanted = _REQUEST_ELEMENTS[field] if command.is_request else _RESPONSE_ELEMENTS
    for keyword in wanted:
        value = (command_us(elements, keyword) if keyword in _US_ELEMENTS
                 else command_text(elements, keyword))
        if value is None or value == "":
            raise CommandError(f"a command 0x{field:04X} without a valid {keyword}")
    return command


def _value_problem(element_number: int, value: bytes) -> str:
    """Why a command element's value is unusable for its VR (empty when it is fine)."""
    try:
        vr = dictionary_VR(element_number)  # group 0000: the tag is the element number
    except KeyError:
        return ""
    size = _FIXED_SIZES.get(vr)
    if size is not None and len(value) % size:
        return f"a {len(value)}-byte {vr} value in (0000,{element_number:04X})"
    text = value.rstrip(b"\x00 ")
    # a non-conformant UID (the store hashes names) is fine; pynetdicom refuses these
    if vr == "UI" and (len(text) > MAX_UID or not _printable(text)):
        return f"a binary or over-long UID in (0000,{element_number:04X})"
    if vr == "AE" and text and (len(text) > MAX_AE or not _printable(text)):
        return f"a malformed AE title in (0000,{element_number:04X})"
    if vr in ("LO", "SH", "ST", "LT") and not _printable(text):
        return f"non-printable text in (0000,{element_number:04X})"
    return ""


def _printable(text: bytes) -> bool:
    return all(0x20 <= c <= 0x7E and c != 0x5C for c in text)


def failure_response(command: Command, status: int) -> bytes:
    """The response to a request we refuse ourselves (its field with bit 15, no data set)."""
    field = (command.field | RESPONSE_BIT) & 0xFFFF
    sop_class = (
        [element("AffectedSOPClassUID", command.sop_class.encode())] if command.sop_class else []
    )
    return command_set(
        *sop_class,
        element("CommandField", us(field)),
        element("MessageIDBeingRespondedTo", us(command.message_id or 0)),
        element("CommandDataSetType", us(NO_DATASET)),
        element("Status", us(status)),
    )


def find_command(model: str, msg_id: int) -> bytes:
    """C-FIND-RQ (PS3.7 9.3.2.1)."""
    return command_set(
        element("AffectedSOPClassUID", model.encode()),
        element("CommandField", us(C_FIND_RQ)),
        element("MessageID", us(msg_id)),
        element("Priority", us(PRIORITY_MEDIUM)),
        element("CommandDataSetType", us(DATASET_PRESENT)),
    )


def cancel_command(msg_id: int) -> bytes:
    """C-CANCEL-RQ (PS3.7 9.3.2.3) for the request with `msg_id`."""
    return command_set(
        element("CommandField", us(C_CANCEL_RQ)),
        element("MessageIDBeingRespondedTo", us(msg_id)),
        element("CommandDataSetType", us(NO_DATASET)),
    )


def pdus(context_id: int, data: bytes | memoryview, control: int, max_pdu: int) -> list:
    """P-DATA-TF PDUs carrying `data` in fragments (control: 1 command, 0 data; 2 = last)."""
    step = max(max_pdu - 6, 1) if max_pdu else max(len(data), 1)
    view = memoryview(data).cast("B")
    out: list = []
    for start in range(0, max(len(view), 1), step):
        fragment = view[start : start + step]
        last = 2 if start + step >= len(view) else 0
        out.append(
            PDU_HEADER.pack(P_DATA_TF, 0x00, len(fragment) + 6)
            + PDV_HEADER.pack(len(fragment) + 2, context_id, control | last)
        )
        out.append(fragment)
    return out


def write_message(
    sock: socket.socket,
    context_id: int,
    command: bytes,
    data: bytes | memoryview | None,
    max_pdu: int,
) -> None:
    """Write one DIMSE message (command set, then the data set if any)."""
    parts = pdus(context_id, command, 1, max_pdu)
    if data is not None:
        parts += pdus(context_id, data, 0, max_pdu)
    for start in range(0, len(parts), _IOV_BATCH):
        _sendmsg_all(sock, parts[start : start + _IOV_BATCH])


def _sendmsg_all(sock: socket.socket, parts: list) -> None:
    """`sendmsg` until every buffer is written (it may write only part).

    Windows sockets have no sendmsg: there each PDU (header + fragment) is
    joined and sent whole, so Nagle never holds back a lone header.
    """
    if not hasattr(sock, "sendmsg"):
        for start in range(0, len(parts), 2):
            sock.sendall(b"".join(parts[start : start + 2]))
        return
    views = [memoryview(p).cast("B") for p in parts]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def reader(assoc: Association, sock: socket.socket) -> PduReader:
    """A reader for our end of a requestor association: PDUs up to the length we declared."""
    return PduReader(sock, PduLimits(assoc.requestor.maximum_length or 0))


@dataclass
class Message:
    """A received DIMSE message: its command set and the raw data set bytes (if any)."""

    command: Dataset
    data: bytes | None
    context_id: int


def read_message(source: socket.socket | PduReader, timeout: float | None) -> Message:
    """Read PDUs until one whole DIMSE message arrived (raises OSError/ConnectionError).

    `source` is a socket (read with our default limits) or the caller's
    `PduReader`; `timeout` bounds the whole message.
    """
    reader = source if isinstance(source, PduReader) else PduReader(source, PduLimits(0))
    deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
    command = bytearray()
    data = bytearray()
    parsed: Dataset | None = None
    while True:
        try:
            pdu_type, length = reader.read_header(deadline)
            body = reader.read_body(length, deadline)
            items = pdvs(body) if pdu_type == P_DATA_TF else []
        except Refusal as refusal:
            raise ConnectionError(f"the peer {refusal}") from None
        if pdu_type == ABORT:
            raise PeerAborted("the peer aborted the association")
        if pdu_type != P_DATA_TF:
            raise ConnectionError(f"the peer sent PDU type 0x{pdu_type:02X} instead of a response")
        for item in items:
            if item.is_command:
                command += item.fragment
                if len(command) > MAX_COMMAND:
                    raise ConnectionError("the peer sent a command set larger than 64 KiB")
                if item.is_last:
                    parsed = _command_dataset(command)
                    if parsed.get("CommandDataSetType", NO_DATASET) == NO_DATASET:
                        return Message(parsed, None, item.context_id)
            elif parsed is None:
                raise ConnectionError("the peer sent a data set before its command")
            else:
                data += item.fragment
                if len(data) > MAX_RESPONSE_DATA:
                    raise ConnectionError("the peer sent a response data set larger than 16 MiB")
                if item.is_last:
                    return Message(parsed, bytes(data), item.context_id)


def _command_dataset(data: bytes | bytearray) -> Dataset:
    """A response's command set as a Dataset (checked before pydicom reads it)."""
    try:
        check_command(data)
        return read_dataset(BytesIO(bytes(data)), True, True)
    except (CommandError, ValueError, EOFError, struct.error) as exc:
        raise ConnectionError(f"the peer sent {exc}") from None


def wait_queued_response(assoc: Association):
    """pynetdicom's path: the next response, or None on DIMSE timeout or a dropped connection.

    pynetdicom would wait the whole DIMSE timeout after the peer vanished
    (its reactor is paused while we wait); we look at the transport state.
    """
    deadline = time.monotonic() + (assoc.dimse_timeout or 3600.0)
    while time.monotonic() < deadline:
        try:
            _, rsp = assoc.dimse.msg_queue.get(timeout=0.05)
            return rsp
        except queue.Empty:
            if assoc.dul.state_machine.current_state == "Sta1" or not assoc.dul.is_alive():
                return None
    return None
