"""A corpus of crafted Upper Layer PDUs against our real server (RELIABILITY 1-15).

Each input gets the answer PS3.8 gives it within 2 s (with ACSE and network
timeouts far longer, so no timeout does the work), one Security Alert line,
no traceback anywhere, nothing read after the server aborted, and the server
still answers C-ECHO afterwards.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from peers import pdus as P
from peers.scp import AET, echo, running_server

pytestmark = pytest.mark.peers
ANSWER_WITHIN = 2.0
#: Long timeouts: an answer must never come from one of them.
PATIENT = {"acse_timeout": 30.0, "network_timeout": 60.0}

ABORT, REJECT, STATUS = "abort", "reject", "status"


def _rq(**fields: object) -> bytes:
    return P.AssociateRq(**fields).encode()  # type: ignore[arg-type]


#: name -> (bytes sent on a fresh connection, expected answer)
BEFORE_ASSOCIATION = {
    "p-data-first": (P.p_data(P.pdv(1, 3, b"abcd")), (ABORT, 2)),
    "release-rq-first": (P.RELEASE_RQ_PDU, (ABORT, 2)),
    "ac-to-acceptor": (P.pdu(P.ASSOCIATE_AC, bytes(68)), (ABORT, 2)),
    "unknown-pdu-type": (b"\x53\x00\x00\x00\x00\x04abcd", (ABORT, 1)),
    "rq-too-short": (P.pdu(P.ASSOCIATE_RQ, b"\x00\x01\x00\x00abc"), (ABORT, 6)),
    "item-length-overflow": (_rq(contexts=[P.item(0x20, b"\x01\x00\x00\x00", length=4000)]),
                             (ABORT, 6)),
    "even-context-id": (_rq(contexts=[P.context_item(2)]), (ABORT, 6)),
    "200-contexts": (_rq(contexts=[P.context_item((2 * i + 1) % 256) for i in range(200)]),
                     (ABORT, 6)),
    "two-application-contexts": (_rq(app_context=P.uid_item(0x10, P.APPLICATION_CONTEXT) * 2),
                                 (ABORT, 5)),
    "no-user-information": (_rq(user=b""), (ABORT, 6)),
    "unknown-item": (_rq(extra=P.item(0x99, b"abcd")), (ABORT, 4)),
    "user-sub-item-overflow": (_rq(user=P.item(0x50, P.item(0x51, b"\x00\x00", length=400))),
                               (ABORT, 6)),
    "context-without-abstract-syntax": (
        _rq(contexts=[P.item(0x20, b"\x01\x00\x00\x00" + P.uid_item(0x40, P.IMPLICIT_LE))]),
        (ABORT, 6),
    ),
    "60-kib-user-identity": (_rq(user=P.user_info(extra=P.user_identity(bytes(range(256)) * 234))),
                             (REJECT, (1, 1, 1))),
    "protocol-version-2": (_rq(protocol_version=2), (REJECT, (1, 2, 2))),
    "unknown-application-context": (_rq(app_context=P.uid_item(0x10, "1.2.3.4.5")),
                                    (REJECT, (1, 1, 2))),
    "blank-called-ae": (_rq(called=b""), (REJECT, (1, 1, 7))),
    "binary-called-ae": (_rq(called=b"\x01\x02EVIL\xff"), (REJECT, (1, 1, 7))),
    "blank-calling-ae": (_rq(calling=b""), (REJECT, (1, 1, 3))),
    "no-presentation-context": (_rq(contexts=[]), (REJECT, (1, 1, 1))),
    "max-pdu-8": (_rq(user=P.user_info(max_length=8)), (REJECT, (1, 1, 1))),
    "abort-with-bad-source": (P.pdu(P.ABORT, b"\x00\x00\x05\x00"), (ABORT, 2)),
    "rq-declaring-4-gib": (struct.pack(">BBL", P.ASSOCIATE_RQ, 0, 0xFFFFFFF0) + bytes(64),
                           (ABORT, 6)),
}

#: name -> (bytes sent on an established Verification association, expected answer)
ON_AN_ASSOCIATION = {
    "zero-length-p-data": (P.pdu(P.P_DATA_TF, b""), (ABORT, 6)),
    "pdv-length-overflow": (P.p_data(P.pdv(1, 3, b"abcd", length=4000)), (ABORT, 6)),
    "pdv-length-1": (P.p_data(P.pdv(1, 3, b"", length=1)), (ABORT, 6)),
    "unaccepted-context-id": (P.p_data(P.pdv(99, 3, P.echo_command())), (ABORT, 6)),
    "data-set-before-command": (P.p_data(P.pdv(1, 2, b"\x08\x00\x18\x00\x02\x00\x00\x001\x00")),
                                (ABORT, 6)),
    "garbage-command": (P.p_data(P.pdv(1, 3, b"\xde\xad\xbe\xef" * 5)), (ABORT, 6)),
    "cancel-without-its-message-id": (P.p_data(P.pdv(1, 3, P.echo_command(field_=0x0FFF))),
                                      (ABORT, 6)),
    "unknown-command-field": (P.p_data(P.pdv(1, 3, P.echo_command(field_=0x0ABC))),
                              (STATUS, 0x0211)),
    "echo-naming-another-sop-class": (P.p_data(P.pdv(1, 3, P.echo_command(sop_class=P.CT_IMAGE))),
                                      (STATUS, 0x0122)),
    "p-data-declaring-4-gib": (struct.pack(">BBL", P.P_DATA_TF, 0, 0xFFFFFFF0) + bytes(10),
                               (ABORT, 6)),
    "second-associate-rq": (_rq(), (ABORT, 2)),
    "unknown-pdu-type": (b"\x53\x00\x00\x00\x00\x04abcd", (ABORT, 1)),
    "associate-ac": (P.pdu(P.ASSOCIATE_AC, bytes(68)), (ABORT, 2)),
    "associate-rj": (P.pdu(P.ASSOCIATE_RJ, b"\x00\x01\x01\x01"), (ABORT, 2)),
    "release-rp-unasked": (P.pdu(P.RELEASE_RP, bytes(4)), (ABORT, 2)),
    "abort-with-bad-source": (P.pdu(P.ABORT, b"\x00\x00\x05\x00"), (ABORT, 6)),
    "release-rq-of-5-bytes": (P.pdu(P.RELEASE_RQ, bytes(5)), (ABORT, 6)),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from gearview.home import Home

    home = Home(tmp_path_factory.mktemp("hostile")).ensure()
    with running_server(home, **PATIENT) as (scp, port, cache):
        yield scp, port


class _Seen:
    """Log records and thread exceptions while one input is served."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.thread_errors: list[BaseException | None] = []

    def alerts(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if "Security Alert" in r.getMessage()]

    def tracebacks(self) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            for r in self.caplog.records
            if r.exc_info or "Traceback" in r.getMessage()
        ] + [repr(e) for e in self.thread_errors]


@pytest.fixture
def seen(caplog: pytest.LogCaptureFixture) -> Iterator[_Seen]:
    caplog.set_level(logging.DEBUG)  # so that nothing strips a traceback before we look
    watcher = _Seen(caplog)
    previous = threading.excepthook
    threading.excepthook = lambda args: watcher.thread_errors.append(args.exc_value)
    try:
        yield watcher
    finally:
        threading.excepthook = previous


def _check(answer: P.Answer, expected: tuple, seen: _Seen) -> None:
    kind, value = expected
    assert answer.seconds < ANSWER_WITHIN, f"answered after {answer.seconds:.1f} s"
    if kind == ABORT:
        assert answer.types == [P.ABORT] and answer.closed, answer
        assert answer.pdus[0][1][3] == value, f"abort reason {answer.pdus[0][1][3]}"
    elif kind == REJECT:
        assert answer.types == [P.ASSOCIATE_RJ] and answer.closed, answer
        assert answer.reject() == value
    else:
        assert answer.types == [P.P_DATA_TF], answer
        assert P.response_status(answer.pdus[0][1]) == value
    assert len(seen.alerts()) == 1, seen.alerts()
    assert not seen.tracebacks(), seen.tracebacks()


@pytest.mark.parametrize("name", list(BEFORE_ASSOCIATION))
def test_before_association(server, seen, name):
    data, expected = BEFORE_ASSOCIATION[name]
    _, port = server
    with P.connect(port) as sock:
        _check(P.answer(sock, data, wait=ANSWER_WITHIN + 1), expected, seen)
    assert echo(port).returncode == 0


@pytest.mark.parametrize("name", list(ON_AN_ASSOCIATION))
def test_on_an_association(server, seen, name):
    data, expected = ON_AN_ASSOCIATION[name]
    _, port = server
    with P.associate(port) as sock:
        until_closed = expected[0] != STATUS
        _check(P.answer(sock, data, wait=ANSWER_WITHIN + 1, until_closed=until_closed),
               expected, seen)
        if not until_closed:  # answered, not aborted: the association goes on
            follow = P.answer(sock, P.p_data(P.pdv(1, 3, P.echo_command(msg_id=2))),
                              until_closed=False)
            assert follow.types == [P.P_DATA_TF]
            assert P.response_status(follow.pdus[0][1]) == 0x0000
    assert echo(port).returncode == 0


def test_nothing_is_read_after_the_server_aborted(server, seen):
    """Two bad PDUs in one write: the first is answered; the second is never parsed."""
    _, port = server
    with P.connect(port) as sock:
        answer = P.answer(sock, P.RELEASE_RQ_PDU + b"\x53\x00\x00\x00\x00\x04abcd" * 100)
    assert answer.types == [P.ABORT] and answer.closed
    assert len(seen.alerts()) == 1 and "A-RELEASE-RQ before" in seen.alerts()[0]


def test_nothing_is_read_after_the_peer_aborted(server, seen):
    _, port = server
    with P.associate(port) as sock:
        answer = P.answer(sock, P.ABORT_PDU + b"\x53\x00\x00\x00\x00\x04abcd" * 100)
    assert answer.closed and answer.types == []
    assert seen.alerts() == [] and not seen.tracebacks()


def test_an_abort_right_after_the_request_ends_quietly(server, seen):
    _, port = server
    with P.connect(port) as sock:
        answer = P.answer(sock, _rq() + P.ABORT_PDU + bytes(200))
    assert answer.closed and answer.seconds < ANSWER_WITHIN
    assert seen.alerts() == [] and not seen.tracebacks()


def test_maximum_pdu_0_means_unlimited(server):
    _, port = server
    with P.associate(port, P.AssociateRq(user=P.user_info(max_length=0))) as sock:
        reply = P.answer(sock, P.p_data(P.pdv(1, 3, P.echo_command())), until_closed=False)
    assert reply.types == [P.P_DATA_TF]


def test_huge_declared_lengths_allocate_nothing(server):
    _, port = server
    tracemalloc.start()
    try:
        for header in (struct.pack(">BBL", P.ASSOCIATE_RQ, 0, 0xFFFFFFF0),
                       struct.pack(">BBL", P.ASSOCIATE_RQ, 0, 900_000) + bytes(100)):
            with P.connect(port) as sock:
                P.answer(sock, header, wait=ANSWER_WITHIN)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak} bytes"


def test_fifty_half_sent_requests_leave_a_real_echo_working(tmp_path):
    """RELIABILITY 4: 50 sockets each holding half an A-ASSOCIATE-RQ; threads stay bounded."""
    from gearview.home import Home

    home = Home(tmp_path / "h").ensure()
    with running_server(home, max_associations=4, **PATIENT) as (_, port, _):
        before = threading.active_count()
        held = []
        try:
            for _ in range(50):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(_rq()[:30])
                held.append(sock)
            time.sleep(0.5)
            assert echo(port).returncode == 0
            # each held socket costs at most an association's two threads, and only up to
            # the socket cap (max_associations + headroom)
            assert threading.active_count() - before <= 2 * (4 + 8) + 2
        finally:
            for sock in held:
                sock.close()


def test_more_associations_than_allowed_are_rejected_transient(tmp_path):
    """RELIABILITY 8: 30 at once with a limit of 4: none hangs, the surplus gets RJ (2,3,2)."""
    from gearview.home import Home

    home = Home(tmp_path / "h").ensure()
    with running_server(home, max_associations=4, **PATIENT) as (_, port, _):
        ae = AE(ae_title="CROWD")
        ae.add_requested_context(Verification)
        ae.acse_timeout = 5
        results: list[object] = []
        lock = threading.Lock()

        def one() -> None:
            assoc = ae.associate("127.0.0.1", port, ae_title=AET)
            with lock:
                results.append(assoc)

        threads = [threading.Thread(target=one) for _ in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        try:
            assert len(results) == 30
            established = [a for a in results if a.is_established]
            rejected = [a for a in results if a.is_rejected]
            assert 1 <= len(established) <= 4
            assert len(established) + len(rejected) == 30
            for assoc in rejected:
                rj = assoc.acceptor.primitive
                assert (rj.result, rj.result_source, rj.diagnostic) == (2, 3, 2)
        finally:
            for assoc in results:
                if assoc.is_established:
                    assoc.release()
        assert echo(port).returncode == 0
