"""Hand-built Upper Layer PDUs (PS3.8 9.3) for the hostile-peer tests: every field can be wrong."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"

ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ = 0x01, 0x02, 0x03
P_DATA_TF, RELEASE_RQ, RELEASE_RP, ABORT = 0x04, 0x05, 0x06, 0x07


def pdu(pdu_type: int, body: bytes, length: int | None = None) -> bytes:
    return struct.pack(">BBL", pdu_type, 0, len(body) if length is None else length) + body


def item(item_type: int, body: bytes, length: int | None = None) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(body) if length is None else length) + body


def uid_item(item_type: int, uid: str) -> bytes:
    return item(item_type, uid.encode())


def context_item(
    context_id: int, abstract: str = VERIFICATION, syntaxes: tuple[str, ...] = (IMPLICIT_LE,)
) -> bytes:
    body = struct.pack(">BBBB", context_id, 0, 0, 0) + uid_item(0x30, abstract)
    body += b"".join(uid_item(0x40, ts) for ts in syntaxes)
    return item(0x20, body)


def user_info(max_length: int = 16384, extra: bytes = b"") -> bytes:
    return item(
        0x50,
        item(0x51, struct.pack(">L", max_length)) + uid_item(0x52, "1.2.3.4") + extra,
    )


def user_identity(primary: bytes, secondary: bytes = b"") -> bytes:
    body = struct.pack(">BBH", 1, 0, len(primary)) + primary
    body += struct.pack(">H", len(secondary)) + secondary
    return item(0x58, body)


@dataclass
class AssociateRq:
    """An A-ASSOCIATE-RQ, valid unless a field is changed."""

    called: bytes = b"GVTEST"
    calling: bytes = b"RAWSCU"
    protocol_version: int = 1
    app_context: bytes | None = None
    contexts: list[bytes] = field(default_factory=lambda: [context_item(1)])
    user: bytes | None = None
    extra: bytes = b""

    def body(self) -> bytes:
        header = struct.pack(">HH", self.protocol_version, 0)
        header += self.called.ljust(16)[:16] + self.calling.ljust(16)[:16] + bytes(32)
        app = self.app_context if self.app_context is not None else uid_item(
            0x10, APPLICATION_CONTEXT
        )
        user = self.user if self.user is not None else user_info()
        return header + app + b"".join(self.contexts) + user + self.extra

    def encode(self) -> bytes:
        return pdu(ASSOCIATE_RQ, self.body())


def pdv(context_id: int, control: int, data: bytes, length: int | None = None) -> bytes:
    size = len(data) + 2 if length is None else length
    return struct.pack(">LBB", size, context_id, control) + data


def p_data(*pdvs: bytes) -> bytes:
    return pdu(P_DATA_TF, b"".join(pdvs))


def command_element(tag: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00"
    return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(value)) + value


def command(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return command_element(0x00000000, struct.pack("<L", len(body))) + body


def us(value: int) -> bytes:
    return struct.pack("<H", value)


def echo_command(msg_id: int = 1, sop_class: str = VERIFICATION, field_: int = 0x0030) -> bytes:
    return command(
        command_element(0x00000002, sop_class.encode()),
        command_element(0x00000100, us(field_)),
        command_element(0x00000110, us(msg_id)),
        command_element(0x00000800, us(0x0101)),
    )


ABORT_PDU = pdu(ABORT, b"\x00\x00\x00\x00")
RELEASE_RQ_PDU = pdu(RELEASE_RQ, b"\x00" * 4)


def connect(port: int, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_pdu(sock: socket.socket) -> tuple[int, bytes] | None:
    """The next PDU the server sends (type, body), or None once it closed the connection."""
    header = _read(sock, 6)
    if len(header) < 6:
        return None
    pdu_type, _, length = struct.unpack(">BBL", header)
    return pdu_type, _read(sock, length)


def _read(sock: socket.socket, size: int) -> bytes:
    """Up to `size` bytes, short when the server closed; raises TimeoutError when it went quiet."""
    data = b""
    try:
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


def associate(port: int, rq: AssociateRq | None = None) -> socket.socket:
    """A raw-socket association (asserted accepted)."""
    sock = connect(port)
    sock.sendall((rq or AssociateRq()).encode())
    reply = read_pdu(sock)
    assert reply is not None and reply[0] == ASSOCIATE_AC, f"association not accepted: {reply}"
    return sock


@dataclass
class Answer:
    """What the server did after a crafted input: the PDUs it sent, whether and when it closed."""

    pdus: list[tuple[int, bytes]]
    closed: bool
    seconds: float

    @property
    def types(self) -> list[int]:
        return [t for t, _ in self.pdus]

    def reject(self) -> tuple[int, int, int] | None:
        for pdu_type, body in self.pdus:
            if pdu_type == ASSOCIATE_RJ:
                return body[1], body[2], body[3]
        return None


def answer(
    sock: socket.socket, data: bytes, wait: float = 5.0, until_closed: bool = True
) -> Answer:
    """Send `data` and collect the server's PDUs until it closes (or `wait` passes)."""
    start = time.monotonic()
    sock.settimeout(wait)
    try:
        sock.sendall(data)
    except OSError:
        pass
    pdus: list[tuple[int, bytes]] = []
    closed = False
    while time.monotonic() - start < wait:
        sock.settimeout(max(0.05, wait - (time.monotonic() - start)))
        try:
            reply = read_pdu(sock)
        except TimeoutError:
            break
        except OSError:
            reply = None
        if reply is None:
            closed = True
            break
        pdus.append(reply)
        if not until_closed:
            break
    return Answer(pdus, closed, time.monotonic() - start)


STATUS_ELEMENT = struct.pack("<HHL", 0x0000, 0x0900, 2)


def response_status(p_data_body: bytes) -> int | None:
    """The Status (0000,0900) of the response command set in a P-DATA-TF body."""
    at = p_data_body.find(STATUS_ELEMENT)
    if at < 0:
        return None
    return struct.unpack_from("<H", p_data_body, at + len(STATUS_ELEMENT))[0]
