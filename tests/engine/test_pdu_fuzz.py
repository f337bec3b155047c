"""Bounded fuzzing of what a hostile peer controls: the PDU reader, the A-ASSOCIATE-RQ and
P-DATA-TF checks, and the DIMSE command parser (a few thousand cases, a few seconds).

The properties: nothing but a `Refusal` (answered) or `PeerClosed` ever comes out of
the reader; no body longer than its limit is returned; and whatever the checks let
through, pynetdicom decodes without raising - so no input reaches pynetdicom's code
paths that crash or log tracebacks.
"""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peers import pdus as P
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import P_DATA

from gearview.net import dimse
from gearview.net import pynetdicom_compat as compat
from gearview.net.pdu import (
    PduLimits,
    PduReader,
    PeerClosed,
    Refusal,
    check_associate_rq,
    check_fixed,
    pdvs,
)

FUZZ = settings(
    max_examples=600, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMIT = 4096
UIDS = st.sampled_from([P.VERIFICATION, P.CT_IMAGE, P.IMPLICIT_LE, P.EXPLICIT_LE, "1.2.3",
                        "", "1..2", "1.2.x", "9" * 70, "1.2.3\x00", "1.2 "])


def _read_all(data: bytes) -> list[tuple[int, int]]:
    """Read PDUs from `data` until the peer closes or is refused: (type, length) of each."""
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        reader = PduReader(ours, PduLimits(LIMIT, LIMIT))
        seen = []
        while True:
            try:
                pdu_type, body = reader.read(timeout=1.0)
            except (Refusal, PeerClosed):
                return seen
            assert len(body) <= LIMIT
            seen.append((pdu_type, len(body)))
    finally:
        ours.close()
        theirs.close()


@FUZZ
@given(st.binary(max_size=3 * LIMIT))
def test_reader_on_random_bytes(data):
    for _, length in _read_all(data):
        assert length <= LIMIT


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2 * LIMIT)), max_size=6),
       st.binary(max_size=256))
def test_reader_on_headers_that_lie(headers, filler):
    data = b"".join(struct.pack(">BBL", t, 0, n) + filler[: n % 300] for t, n in headers)
    _read_all(data)


GOOD_UIDS = st.sampled_from([P.VERIFICATION, P.CT_IMAGE, P.IMPLICIT_LE, P.EXPLICIT_LE])


def _mostly(draw, good, bad):
    """`good` nineteen times in twenty, else `bad`: with a dozen fields, about half the
    inputs are valid and the rest wrong in one or two places (where the bugs are)."""
    return draw(bad) if draw(st.integers(0, 19)) == 0 else draw(good)


def _sub_item(draw) -> bytes:
    valid = st.sampled_from([
        P.item(0x53, struct.pack(">HH", 1, 1)),
        P.item(0x54, struct.pack(">H", len(P.CT_IMAGE)) + P.CT_IMAGE.encode() + b"\x01\x01"),
        P.uid_item(0x55, "GEARVIEW_1"),
        P.item(0x56, struct.pack(">H", len(P.CT_IMAGE)) + P.CT_IMAGE.encode() + b"\x01"),
        P.user_identity(b"user", b"secret"),
        P.user_identity(bytes(range(200)), b""),
    ])
    kind = draw(st.sampled_from([0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x00]))
    invalid = st.builds(
        lambda body, length: P.item(kind, body, length=length),
        st.one_of(st.binary(max_size=24), UIDS.map(str.encode)),
        st.one_of(st.none(), st.integers(0, 80)),
    )
    return _mostly(draw, valid, invalid)


@st.composite
def associate_rqs(draw) -> bytes:
    """A-ASSOCIATE-RQ bodies near the valid ones: every part is usually right, sometimes not."""
    ids = _mostly(
        draw,
        st.lists(st.integers(0, 127).map(lambda i: 2 * i + 1), min_size=1, max_size=4,
                 unique=True),
        st.lists(st.integers(0, 255), max_size=4),
    )
    contexts = []
    for context_id in ids:
        subs = [P.uid_item(0x30, _mostly(draw, GOOD_UIDS, UIDS))]
        subs += [P.uid_item(0x40, _mostly(draw, GOOD_UIDS, UIDS))
                 for _ in range(draw(st.integers(1, 3)))]
        if draw(st.integers(0, 19)) == 0:
            subs = draw(st.permutations(subs + [P.uid_item(0x41, "1.2")]))
        body = struct.pack(">BBBB", context_id, 0, 0, 0) + b"".join(subs)
        contexts.append(P.item(0x20, body, length=_mostly(
            draw, st.none(), st.integers(0, 200))))
    user = P.user_info(extra=b"".join(_sub_item(draw) for _ in range(draw(st.integers(0, 4)))))
    rq = P.AssociateRq(
        called=_mostly(draw, st.just(b"GVTEST"), st.sampled_from([b"", b"\x01X", b"A" * 16])),
        calling=_mostly(draw, st.just(b"SCU"), st.sampled_from([b"", b"\xffY", b"\\"])),
        protocol_version=_mostly(draw, st.just(1), st.sampled_from([2, 3, 0])),
        app_context=_mostly(draw, st.none(), st.sampled_from([P.uid_item(0x10, "1.2.3"), b""])),
        contexts=contexts,
        user=_mostly(draw, st.just(user), st.sampled_from([b"", user + user, user[:7]])),
        extra=_mostly(draw, st.just(b""), st.sampled_from([P.item(0x99, b"x"), b"\x10"])),
    ).body()
    if draw(st.integers(0, 9)) == 0:
        flips = draw(st.lists(st.tuples(st.integers(0, max(len(rq) - 1, 0)),
                                        st.integers(0, 255)), min_size=1, max_size=3))
        data = bytearray(rq)
        for at, value in flips:
            data[at] = value
        rq = bytes(data)
    return rq


@FUZZ
@given(associate_rqs())
def test_associate_rq_check_and_pynetdicom_agree(body):
    try:
        check_associate_rq(memoryview(body), compat.application_context_name())
    except Refusal:
        return
    pdu = A_ASSOCIATE_RQ()  # what we let through, pynetdicom must decode without raising
    pdu.decode(struct.pack(">BBL", 0x01, 0, len(body)) + body)
    pdu.to_primitive()


@FUZZ
@given(st.binary(max_size=64), st.sampled_from([0x05, 0x06, 0x07]))
def test_fixed_pdu_check(body, pdu_type):
    try:
        check_fixed(pdu_type, memoryview(body))
    except Refusal:
        return
    assert len(body) == 4


@FUZZ
@given(st.binary(max_size=512))
def test_pdv_split_covers_the_body(body):
    try:
        items = pdvs(body)
    except Refusal:
        return
    assert sum(len(i.fragment) + 6 for i in items) == len(body)


#: Value strategies for the command elements (tag element number -> values).
_VALUES = {
    0x0002: UIDS.map(str.encode), 0x0003: UIDS.map(str.encode),
    0x0110: st.integers(0, 0xFFFF).map(P.us), 0x0120: st.integers(0, 0xFFFF).map(P.us),
    0x0600: st.sampled_from([b"DEST", b"", b"\x00\x01"]), 0x0700: st.integers(0, 3).map(P.us),
    0x0900: st.integers(0, 0xFFFF).map(P.us), 0x1000: UIDS.map(str.encode),
    0x1001: UIDS.map(str.encode), 0x1002: st.integers(0, 9).map(P.us),
    0x1008: st.integers(0, 9).map(P.us),
}
_GOOD_VALUES = {**_VALUES, 0x0002: GOOD_UIDS.map(str.encode), 0x1000: st.just(b"1.2.3.4"),
                0x0003: GOOD_UIDS.map(str.encode), 0x1001: st.just(b"1.2.3.4")}
_MANDATORY = {
    0x0001: (0x0002, 0x0110, 0x0700, 0x1000), 0x0020: (0x0002, 0x0110, 0x0700),
    0x0010: (0x0002, 0x0110, 0x0700), 0x0021: (0x0002, 0x0110, 0x0700, 0x0600),
    0x0030: (0x0002, 0x0110), 0x0FFF: (0x0120,), 0x0100: (0x0002, 0x0110, 0x1000, 0x1002),
    0x0110: (0x0003, 0x0110, 0x1001), 0x0120: (0x0003, 0x0110, 0x1001),
    0x0130: (0x0003, 0x0110, 0x1001, 0x1008), 0x0140: (0x0002, 0x0110),
    0x0150: (0x0003, 0x0110, 0x1001),
}


@st.composite
def command_sets(draw) -> bytes:
    """Command sets near the valid ones: a command's mandatory elements (usually right),
    some others, sometimes one missing, sometimes cut short."""
    field = draw(st.sampled_from([*_MANDATORY, 0x8001, 0x8030, 0x8020, 0x0ABC, 0x8FFF]))
    wanted = set(_MANDATORY.get(field & 0x7FFF, (0x0120, 0x0900)))
    wanted |= set(draw(st.lists(st.sampled_from(sorted(_VALUES)), max_size=3)))
    if draw(st.integers(0, 4)) == 0 and wanted:
        wanted.discard(draw(st.sampled_from(sorted(wanted))))
    elements = {0x0100: P.us(field), 0x0800: P.us(_mostly(
        draw, st.just(0x0101), st.sampled_from([0x0000, 0x1234])))}
    for tag in wanted:
        elements[tag] = _mostly(draw, _GOOD_VALUES[tag], _VALUES[tag])
    data = P.command(*(P.command_element(t, v) for t, v in sorted(elements.items())))
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))] + draw(st.binary(max_size=8))
    return data


@pytest.fixture(scope="module")
def assoc() -> Association:
    return Association(AE(), "requestor")


@FUZZ
@given(st.one_of(command_sets(), st.binary(max_size=200)))
def test_command_check_and_pynetdicom_agree(assoc, data):
    try:
        command = dimse.check_command(data)
    except dimse.CommandError:
        return
    if not command.known:
        assert command.message_id is not None
        return
    primitive = P_DATA()
    primitive.presentation_data_value_list = [[1, b"\x03" + data]]
    message = DIMSEMessage()
    if message.decode_msg(primitive, assoc) and not command.has_dataset:
        message.message_to_primitive()  # what we hand pynetdicom, it must take
