"""Upper Layer PDUs as a peer sends them (PS3.8 9.3): one reader with limits, and the checks.

Every socket gearview reads PDUs from - the server's connections, its C-STORE
fast path and the client's direct DIMSE I/O - reads through `PduReader`. It
never allocates from a length the peer declares (a body buffer grows only as
bytes really arrive), refuses a PDU longer than its limit before reading the
body, and gives up at a deadline, so a peer that claims 4 GiB or sends half
a PDU and goes quiet costs nothing.

The checks walk a PDU's structure before pynetdicom decodes it (pynetdicom
raises, or logs a traceback, on most malformed input): a PDU that breaks
PS3.8 raises `Refusal`, which carries the answer the peer gets - an A-ABORT
with the reason, or for an A-ASSOCIATE-RQ we can parse but not accept an
A-ASSOCIATE-RJ with the result, source and reason PS3.8 Table 9-21 gives.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from dataclasses import dataclass

#: Refusals are logged here, as one "Security Alert" line each.
alerts = logging.getLogger("gearview.net.server")

PDU_HEADER = struct.Struct(">BBL")
ITEM_HEADER = struct.Struct(">BBH")
PDV_HEADER = struct.Struct(">LBB")

ASSOCIATE_RQ = 0x01
ASSOCIATE_AC = 0x02
ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
RELEASE_RQ = 0x05
RELEASE_RP = 0x06
ABORT = 0x07
PDU_NAMES = {
    ASSOCIATE_RQ: "A-ASSOCIATE-RQ",
    ASSOCIATE_AC: "A-ASSOCIATE-AC",
    ASSOCIATE_RJ: "A-ASSOCIATE-RJ",
    P_DATA_TF: "P-DATA-TF",
    RELEASE_RQ: "A-RELEASE-RQ",
    RELEASE_RP: "A-RELEASE-RP",
    ABORT: "A-ABORT",
}

#: A-ABORT source and reason/diagnostic (PS3.8 Table 9-26).
ABORT_SOURCE_USER = 0x00
ABORT_SOURCE_PROVIDER = 0x02
ABORT_SOURCES = (0x00, 0x01, 0x02)
REASON_NOT_SPECIFIED = 0x00
REASON_UNRECOGNIZED_PDU = 0x01
REASON_UNEXPECTED_PDU = 0x02
REASON_UNRECOGNIZED_PARAMETER = 0x04
REASON_UNEXPECTED_PARAMETER = 0x05
REASON_INVALID_PARAMETER = 0x06
PROVIDER_REASONS = (0x00, 0x01, 0x02, 0x04, 0x05, 0x06)

#: A-ASSOCIATE-RJ result, source and reason (PS3.8 Table 9-21).
REJECTED_PERMANENT = 0x01
REJECTED_TRANSIENT = 0x02
SOURCE_SERVICE_USER = 0x01
SOURCE_ACSE = 0x02
SOURCE_PRESENTATION = 0x03
USER_NO_REASON = 0x01
USER_APPLICATION_CONTEXT = 0x02
USER_CALLING_AE = 0x03
USER_CALLED_AE = 0x07
ACSE_PROTOCOL_VERSION = 0x02
PRESENTATION_LOCAL_LIMIT = 0x02

#: A-ASSOCIATE-RQ item and user information sub-item types (PS3.8 9.3.2, PS3.7 D.3.3).
ITEM_APPLICATION_CONTEXT = 0x10
ITEM_PRESENTATION_CONTEXT = 0x20
ITEM_ABSTRACT_SYNTAX = 0x30
ITEM_TRANSFER_SYNTAX = 0x40
ITEM_USER_INFORMATION = 0x50
SUB_MAXIMUM_LENGTH = 0x51
SUB_IMPLEMENTATION_CLASS = 0x52
SUB_ASYNCHRONOUS_OPERATIONS = 0x53
SUB_ROLE_SELECTION = 0x54
SUB_IMPLEMENTATION_VERSION = 0x55
SUB_SOP_EXTENDED = 0x56
SUB_SOP_COMMON_EXTENDED = 0x57
SUB_USER_IDENTITY = 0x58
USER_SUB_ITEMS = range(SUB_MAXIMUM_LENGTH, SUB_USER_IDENTITY + 1)

#: An A-ASSOCIATE-RQ is small (contexts + user items); 1 MiB is far beyond any real one.
MAX_ASSOCIATE_PDU = 1 << 20
#: With a maximum PDU of 0 (unlimited) a P-DATA-TF is still refused beyond this.
MAX_UNLIMITED_PDU = 64 << 20
#: Fixed-length PDUs (release, abort, reject) have a 4-byte body.
FIXED_BODY = 4
#: Whoever sends us less per P-DATA-TF is not a DICOM implementation (a tiny-PDU loop).
MIN_MAXIMUM_LENGTH = 1024
#: gearview does not use user identity negotiation; an item above this is refused.
MAX_USER_IDENTITY = 16 << 10
MAX_UID = 64
HEADER_FIELDS = 68  # protocol version, reserved, called AE, calling AE, reserved
#: The first allocation for a PDU body; it grows only as bytes arrive.
INITIAL_BUFFER = 1 << 20


class Refusal(Exception):
    """A PDU we do not accept: `answer` is what the peer gets before the connection closes."""

    def __init__(
        self,
        what: str,
        *,
        abort_reason: int = REASON_INVALID_PARAMETER,
        reject: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__(what)
        self.abort_reason = abort_reason
        self.reject = reject

    @property
    def answer(self) -> bytes:
        if self.reject is not None:
            return reject_pdu(*self.reject)
        return abort_pdu(self.abort_reason)

    @property
    def answer_name(self) -> str:
        if self.reject is not None:
            return "A-ASSOCIATE-RJ ({},{},{})".format(*self.reject)
        return f"A-ABORT (reason {self.abort_reason})"


class PduTimeout(Refusal):
    """The peer did not complete a PDU before the deadline."""

    def __init__(self) -> None:
        super().__init__("did not complete a PDU within the deadline")


class PeerClosed(ConnectionError):
    """The peer closed (or reset) the connection."""


def abort_pdu(reason: int = REASON_NOT_SPECIFIED, source: int = ABORT_SOURCE_PROVIDER) -> bytes:
    return PDU_HEADER.pack(ABORT, 0, FIXED_BODY) + bytes((0, 0, source, reason))


def reject_pdu(result: int, source: int, reason: int) -> bytes:
    return PDU_HEADER.pack(ASSOCIATE_RJ, 0, FIXED_BODY) + bytes((0, result, source, reason))


# ---- reading -----------------------------------------------------------------


@dataclass
class PduLimits:
    """The longest body accepted per PDU type: our declared maximum for P-DATA-TF."""

    max_p_data: int
    max_other: int = MAX_ASSOCIATE_PDU

    def limit(self, pdu_type: int) -> int:
        if pdu_type == P_DATA_TF:
            return self.max_p_data if self.max_p_data else MAX_UNLIMITED_PDU
        return self.max_other


class PduReader:
    """Reads PDUs from one socket (see the module docstring); not thread-safe."""

    def __init__(self, sock: socket.socket, limits: PduLimits) -> None:
        self.sock = sock
        self.limits = limits
        self._header = bytearray(PDU_HEADER.size)
        self._body = bytearray()

    def read(self, timeout: float) -> tuple[int, memoryview]:
        """The next PDU's type and body; the body view is valid until the next read."""
        deadline = time.monotonic() + timeout
        pdu_type, length = self.read_header(deadline)
        return pdu_type, self.read_body(length, deadline)

    def read_header(self, deadline: float) -> tuple[int, int]:
        """(type, body length), checked against the limits before any body byte is read."""
        got = self._fill(self._header, PDU_HEADER.size, deadline)
        if got < PDU_HEADER.size:
            raise PeerClosed("the peer closed the connection")
        pdu_type, _, length = PDU_HEADER.unpack(self._header)
        name = PDU_NAMES.get(pdu_type)
        if name is None:
            raise Refusal(f"sent unknown PDU type 0x{pdu_type:02X}",
                          abort_reason=REASON_UNRECOGNIZED_PDU)
        limit = self.limits.limit(pdu_type)
        if length > limit:
            raise Refusal(f"declared a {length}-byte PDU ({name}, limit {limit})")
        return pdu_type, length

    def read_body(self, length: int, deadline: float) -> memoryview:
        """`length` bytes into this reader's buffer (grown as they arrive)."""
        if len(self._body) < min(length, INITIAL_BUFFER):
            self._body = _grown(self._body, min(length, INITIAL_BUFFER) - len(self._body))
        got = self._fill_growing(length, deadline)
        if got < length:
            raise PeerClosed(f"the peer closed the connection after {got} of {length} bytes")
        return memoryview(self._body)[:length]

    def _fill_growing(self, length: int, deadline: float) -> int:
        got = 0
        while got < length:
            if got == len(self._body):
                self._body = _grown(self._body, min(len(self._body), length - got))
            n = self._fill(self._body, min(length, len(self._body)), deadline, got)
            if n == got:
                return got
            got = n
        return got

    def _fill(self, buf: bytearray, size: int, deadline: float, start: int = 0) -> int:
        """Read into buf[start:size] until full, closed or the deadline; the count reached."""
        sock = self.sock
        previous = sock.gettimeout()
        got = start
        try:
            with memoryview(buf) as view:
                while got < size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise PduTimeout
                    sock.settimeout(remaining)
                    try:
                        n = sock.recv_into(view[got:size])
                    except (TimeoutError, ssl.SSLWantReadError):
                        continue
                    except OSError:  # reset, or closed under us: the peer is gone
                        return got
                    if not n:
                        return got
                    got += n
            return got
        finally:
            try:
                sock.settimeout(previous)
            except OSError:
                pass


def _grown(buf: bytearray, extra: int) -> bytearray:
    """buf with `extra` more bytes (a copy when someone still holds a view of it)."""
    try:
        buf.extend(bytes(extra))
        return buf
    except BufferError:
        return buf + bytes(extra)


# ---- checks ------------------------------------------------------------------


@dataclass
class AssociateRequest:
    """What we need from a well-formed A-ASSOCIATE-RQ before pynetdicom decodes it."""

    called_ae: str
    calling_ae: str
    context_ids: list[int]
    maximum_length: int | None


def _items(view: memoryview, offset: int, end: int, what: str):
    """(type, body view) of each item in view[offset:end]; Refusal when one overruns."""
    while offset < end:
        if offset + ITEM_HEADER.size > end:
            raise Refusal(f"sent an {what} with a truncated item header")
        item_type, _, length = ITEM_HEADER.unpack_from(view, offset)
        body_start = offset + ITEM_HEADER.size
        if body_start + length > end:
            raise Refusal(f"sent an {what} whose item 0x{item_type:02X} overruns it "
                          f"({length} bytes declared)")
        yield item_type, view[body_start : body_start + length]
        offset = body_start + length


def _uid(value: memoryview, what: str) -> str:
    raw = bytes(value).rstrip(b"\x00 ")
    if not raw or len(raw) > MAX_UID or any(c not in b"0123456789." for c in raw):
        raise Refusal(f"sent an A-ASSOCIATE-RQ with a malformed {what}")
    return raw.decode("ascii")


def _ae_title(raw: bytes) -> str | None:
    """The AE title (or version name), or None when blank, longer than 16 characters or not
    printable ASCII (PS3.5 AE/SH, no backslash)."""
    if (not raw.strip(b" ") or len(raw) > 16
            or any(b < 0x20 or b > 0x7E or b == 0x5C for b in raw)):
        return None
    return raw.decode("ascii").strip()


def escape(text: object) -> str:
    """Printable form of a peer-controlled value (AE title, address) for a log line."""
    return "".join(
        c if 32 <= ord(c) < 127 and c != "\\" else f"\\x{ord(c):02x}" for c in str(text)
    )


def security_alert(message: str, *args: object) -> None:
    alerts.warning("Security Alert: " + message, *args)


def check_associate_rq(body: memoryview, application_context: str) -> AssociateRequest:
    """Walk an A-ASSOCIATE-RQ body; Refusal (A-ABORT or A-ASSOCIATE-RJ) when it is unacceptable.

    Structure errors (lengths, even or repeated context IDs, missing mandatory
    items) are aborted; a readable request we cannot serve (protocol version,
    application context, AE titles) is rejected with the PS3.8 reason.
    """
    rq = "A-ASSOCIATE-RQ"
    if len(body) < HEADER_FIELDS:
        raise Refusal(f"sent an {rq} of {len(body)} bytes (at least {HEADER_FIELDS} needed)")
    view = memoryview(body).cast("B")
    version = struct.unpack_from(">H", view, 0)[0]
    called_raw, calling_raw = bytes(view[4:20]), bytes(view[20:36])
    app_contexts: list[str] = []
    context_ids: list[int] = []
    user_items = 0
    maximum_length: int | None = None
    for item_type, item in _items(view, HEADER_FIELDS, len(view), rq):
        if item_type == ITEM_APPLICATION_CONTEXT:
            app_contexts.append(_uid(item, "application context name"))
        elif item_type == ITEM_PRESENTATION_CONTEXT:
            context_ids.append(_check_presentation_context(item, context_ids))
        elif item_type == ITEM_USER_INFORMATION:
            user_items += 1
            maximum_length = _check_user_information(item)
        else:
            raise Refusal(f"sent an {rq} with an unknown item type 0x{item_type:02X}",
                          abort_reason=REASON_UNRECOGNIZED_PARAMETER)
    if len(app_contexts) != 1:
        raise Refusal(f"sent an {rq} with {len(app_contexts)} application context items",
                      abort_reason=REASON_UNEXPECTED_PARAMETER)
    if user_items != 1:
        raise Refusal(f"sent an {rq} with {user_items} user information items")
    if not version & 0x0001:
        raise Refusal(f"sent an {rq} for protocol version 0x{version:04X}",
                      reject=(REJECTED_PERMANENT, SOURCE_ACSE, ACSE_PROTOCOL_VERSION))
    if app_contexts[0] != application_context:
        raise Refusal(f"proposed the unknown application context {app_contexts[0]}",
                      reject=(REJECTED_PERMANENT, SOURCE_SERVICE_USER, USER_APPLICATION_CONTEXT))
    called, calling = _ae_title(called_raw), _ae_title(calling_raw)
    if called is None:
        raise Refusal(
            f"sent a blank or binary called AE title {escape(called_raw.decode('latin-1'))}",
            reject=(REJECTED_PERMANENT, SOURCE_SERVICE_USER, USER_CALLED_AE),
        )
    if calling is None:
        raise Refusal(
            f"sent a blank or binary calling AE title {escape(calling_raw.decode('latin-1'))}",
            reject=(REJECTED_PERMANENT, SOURCE_SERVICE_USER, USER_CALLING_AE),
        )
    if not context_ids:
        raise Refusal(f"sent an {rq} without presentation contexts",
                      reject=(REJECTED_PERMANENT, SOURCE_SERVICE_USER, USER_NO_REASON))
    if maximum_length is not None and 0 < maximum_length < MIN_MAXIMUM_LENGTH:
        raise Refusal(
            f"offered a maximum PDU length of {maximum_length} bytes "
            f"(at least {MIN_MAXIMUM_LENGTH} needed)",
            reject=(REJECTED_PERMANENT, SOURCE_SERVICE_USER, USER_NO_REASON),
        )
    return AssociateRequest(called, calling, context_ids, maximum_length)


def _check_presentation_context(item: memoryview, seen: list[int]) -> int:
    what = "A-ASSOCIATE-RQ presentation context"
    if len(item) < 4:
        raise Refusal(f"sent an {what} of {len(item)} bytes")
    context_id = item[0]
    if context_id % 2 == 0 or context_id in seen:
        raise Refusal(f"sent an {what} with an even or repeated ID ({context_id})")
    abstract = transfer = 0
    for sub_type, sub in _items(item, 4, len(item), what):
        if sub_type == ITEM_ABSTRACT_SYNTAX:
            abstract += 1
            _uid(sub, "abstract syntax")
        elif sub_type == ITEM_TRANSFER_SYNTAX:
            transfer += 1
            _uid(sub, "transfer syntax")
        else:
            raise Refusal(f"sent an {what} with an unknown sub-item 0x{sub_type:02X}",
                          abort_reason=REASON_UNRECOGNIZED_PARAMETER)
    if abstract != 1 or not transfer:
        raise Refusal(f"sent an {what} with {abstract} abstract and {transfer} transfer syntaxes")
    return context_id


def _check_user_information(item: memoryview) -> int | None:
    """The maximum length sub-item's value; Refusal when a sub-item is malformed."""
    what = "A-ASSOCIATE-RQ user information item"
    maximum_length = None
    for sub_type, sub in _items(item, 0, len(item), what):
        if sub_type not in USER_SUB_ITEMS:
            raise Refusal(f"sent an {what} with an unknown sub-item 0x{sub_type:02X}",
                          abort_reason=REASON_UNRECOGNIZED_PARAMETER)
        if sub_type == SUB_MAXIMUM_LENGTH:
            if len(sub) != 4:
                raise Refusal(f"sent a maximum length sub-item of {len(sub)} bytes")
            maximum_length = struct.unpack(">L", sub)[0]
        elif sub_type == SUB_IMPLEMENTATION_CLASS:
            _uid(sub, "implementation class UID")
        elif sub_type == SUB_ASYNCHRONOUS_OPERATIONS and len(sub) != 4:
            raise Refusal(f"sent an asynchronous operations sub-item of {len(sub)} bytes")
        elif sub_type == SUB_IMPLEMENTATION_VERSION and _ae_title(bytes(sub)) is None:
            raise Refusal("sent a blank or binary implementation version name")
        elif sub_type == SUB_ROLE_SELECTION:
            _check_uid_prefixed(sub, 2, "role selection")
            if len(sub) != 2 + struct.unpack_from(">H", sub, 0)[0] + 2 or any(
                role not in (0, 1) for role in sub[-2:]
            ):
                raise Refusal("sent a role selection sub-item with roles other than 0 or 1")
        elif sub_type in (SUB_SOP_EXTENDED, SUB_SOP_COMMON_EXTENDED):
            _check_uid_prefixed(sub, 0, "SOP class extended negotiation")
        elif sub_type == SUB_USER_IDENTITY:
            _check_user_identity(sub)
    return maximum_length


def _check_uid_prefixed(sub: memoryview, tail: int, what: str) -> None:
    """A sub-item that starts with a 2-byte UID length and the UID (then `tail` bytes at least)."""
    if len(sub) < 2:
        raise Refusal(f"sent a {what} sub-item of {len(sub)} bytes")
    uid_length = struct.unpack_from(">H", sub, 0)[0]
    if 2 + uid_length + tail > len(sub):
        raise Refusal(f"sent a {what} sub-item whose UID overruns it")
    _uid(sub[2 : 2 + uid_length], f"{what} SOP class UID")


def _check_user_identity(sub: memoryview) -> None:
    if len(sub) > MAX_USER_IDENTITY:
        raise Refusal(
            f"sent a {len(sub)}-byte user identity (limit {MAX_USER_IDENTITY}; "
            "gearview does not use user identity negotiation)",
            reject=(REJECTED_PERMANENT, SOURCE_SERVICE_USER, USER_NO_REASON),
        )
    if len(sub) < 6:
        raise Refusal(f"sent a user identity sub-item of {len(sub)} bytes")
    primary = struct.unpack_from(">H", sub, 2)[0]
    if 4 + primary + 2 > len(sub):
        raise Refusal("sent a user identity whose primary field overruns it")
    secondary = struct.unpack_from(">H", sub, 4 + primary)[0]
    if 6 + primary + secondary > len(sub):
        raise Refusal("sent a user identity whose secondary field overruns it")


def check_fixed(pdu_type: int, body: memoryview) -> None:
    """A-RELEASE-RQ/RP and A-ABORT: four bytes, and for an abort a defined source and reason."""
    name = PDU_NAMES[pdu_type]
    if len(body) != FIXED_BODY:
        raise Refusal(f"sent a {len(body)}-byte {name} ({FIXED_BODY} expected)")
    if pdu_type == ABORT:
        source, reason = body[2], body[3]
        if source not in ABORT_SOURCES or (
            source == ABORT_SOURCE_PROVIDER and reason not in PROVIDER_REASONS
        ):
            raise Refusal(f"sent an A-ABORT with source {source} and reason {reason}")


@dataclass(frozen=True)
class Pdv:
    """One presentation data value item of a P-DATA-TF (PS3.8 9.3.5.1, E.2)."""

    context_id: int
    control: int
    fragment: memoryview

    @property
    def is_command(self) -> bool:
        return bool(self.control & 0x01)

    @property
    def is_last(self) -> bool:
        return bool(self.control & 0x02)


def pdvs(body: memoryview | bytes | bytearray) -> list[Pdv]:
    """The PDV items of a P-DATA-TF body; Refusal when it is empty or an item is malformed."""
    view = memoryview(body).cast("B")
    if not len(view):
        raise Refusal("sent an empty P-DATA-TF")
    items = []
    offset = 0
    while offset < len(view):
        if offset + PDV_HEADER.size > len(view):
            raise Refusal("sent a P-DATA-TF with a truncated PDV header")
        length, context_id, control = PDV_HEADER.unpack_from(view, offset)
        end = offset + 4 + length
        if length < 2 or end > len(view):
            raise Refusal(f"sent a PDV of declared length {length} in a "
                          f"{len(view)}-byte P-DATA-TF")
        items.append(Pdv(context_id, control, view[offset + PDV_HEADER.size : end]))
        offset = end
    return items


def p_data_tf(items: list[tuple[int, int, bytes | memoryview]]) -> bytes:
    """A P-DATA-TF PDU carrying (context ID, control, fragment) items."""
    body = b"".join(
        PDV_HEADER.pack(len(fragment) + 2, context_id, control) + bytes(fragment)
        for context_id, control, fragment in items
    )
    return PDU_HEADER.pack(P_DATA_TF, 0, len(body)) + body
