"""Misbehaving peers (RELIABILITY.md A/B): each is answered cleanly and the SCP stays alive."""

from __future__ import annotations

import logging
import socket
import struct
import time
from pathlib import Path

import pydicom
import pytest
from factory import make_ct, write_series
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import Verification

from peers.scp import AET, dcmtk, echo, running_server

pytestmark = pytest.mark.peers
ABORT = 0x07
ASSOCIATE_AC = 0x02
ASSOCIATE_RJ = 0x03


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - start


def _associate_rq(called: str = AET, calling: str = "RAWSCU") -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    context = build_context(Verification)
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    impl = ImplementationClassUIDNotification()
    impl.implementation_class_uid = "1.2.3.4"
    primitive.user_information = [max_length, impl]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return pdu.encode()


def _alert_logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(
        "Security Alert" in r.getMessage() and text in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        bytes.fromhex("160301002e0100002a0303") + b"\x00" * 40,  # a TLS ClientHello
        b"\x53\x00\x00\x00\x00\x04abcd",  # unknown PDU type
    ],
    ids=["http", "tls-hello", "unknown-pdu"],
)
def test_garbage_is_closed(home, payload):
    with running_server(home) as (_, port, _):
        with _connect(port) as sock:
            sock.sendall(payload)
            _, elapsed = _read_until_closed(sock, timeout=5)
        assert elapsed < 3
        assert echo(port).returncode == 0


def test_pdata_before_associate_is_aborted(home, caplog):
    caplog.set_level(logging.WARNING, logger="gearview.net.server")
    with running_server(home) as (_, port, _):
        with _connect(port) as sock:
            sock.sendall(struct.pack(">BBL", 0x04, 0, 10) + b"\x00\x00\x00\x06\x01\x03abcd")
            data, elapsed = _read_until_closed(sock, timeout=5)
        assert elapsed < 3
        assert data[:1] in (b"", bytes([ABORT]))
        assert _alert_logged(caplog, "before an A-ASSOCIATE-RQ")
        assert echo(port).returncode == 0


def test_half_sent_associate_is_dropped_by_deadline(home, caplog):
    """Slow-loris: pynetdicom alone holds this socket forever (FACTS)."""
    caplog.set_level(logging.WARNING, logger="gearview.net.server")
    rq = _associate_rq()
    with running_server(home, acse_timeout=1.0) as (_, port, _):
        with _connect(port) as sock:
            sock.sendall(rq[:20])
            _, elapsed = _read_until_closed(sock, timeout=10)
        assert elapsed < 2 * 1.0 + 1
        assert _alert_logged(caplog, "within the deadline")
        assert echo(port).returncode == 0


def test_slow_drip_is_dropped_by_deadline(home):
    """One byte at a time never trips a per-recv timeout; the PDU deadline still ends it."""
    rq = _associate_rq()
    with running_server(home, acse_timeout=1.0) as (_, port, _):
        with _connect(port) as sock:
            start = time.monotonic()
            closed = False
            for byte in rq[:-1]:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.1)
                if time.monotonic() - start > 4:
                    break
            if not closed:
                _, _ = _read_until_closed(sock, timeout=3)
            assert time.monotonic() - start < 4
        assert echo(port).returncode == 0


def test_huge_declared_pdu_is_refused_without_allocation(home, caplog):
    caplog.set_level(logging.WARNING, logger="gearview.net.server")
    with running_server(home) as (_, port, _):
        with _connect(port) as sock:
            sock.sendall(struct.pack(">BBL", 0x01, 0, 0xFFFFFFF0) + b"\x00" * 64)
            data, elapsed = _read_until_closed(sock, timeout=5)
        assert elapsed < 2
        assert data[:1] in (b"", bytes([ABORT]))
        assert _alert_logged(caplog, "declared a")
        assert echo(port).returncode == 0


def test_pdata_larger_than_our_max_pdu_aborts(home, caplog):
    caplog.set_level(logging.WARNING, logger="gearview.net.server")
    with running_server(home, max_pdu=16384) as (_, port, _):
        with _connect(port) as sock:
            sock.sendall(_associate_rq())
            sock.settimeout(5)
            reply = sock.recv(6)
            assert reply[0] == ASSOCIATE_AC
            length = struct.unpack(">L", reply[2:6])[0]
            while length:
                length -= len(sock.recv(length))
            sock.sendall(struct.pack(">BBL", 0x04, 0, 1 << 20) + b"\x00" * 1024)
            data, elapsed = _read_until_closed(sock, timeout=5)
        assert elapsed < 2
        assert data[:1] in (b"", bytes([ABORT]))
        assert _alert_logged(caplog, "declared a 1048576-byte PDU")
        assert echo(port).returncode == 0


def test_socket_flood_does_not_starve_a_real_peer(home):
    """More half-open sockets than the cap: the oldest are dropped, a real echo still works."""
    with running_server(home, max_associations=2, acse_timeout=30.0) as (_, port, _):
        socks = []
        try:
            for _ in range(20):
                sock = _connect(port)
                sock.sendall(b"\x01\x00\x00\x00\x01")
                socks.append(sock)
            time.sleep(0.3)
            assert echo(port).returncode == 0
        finally:
            for sock in socks:
                sock.close()


def test_calling_ae_outside_allowlist_is_rejected(home, caplog):
    caplog.set_level(logging.WARNING, logger="gearview.net.server")
    with running_server(home, allowed_calling_aets=["FRIEND"]) as (_, port, _):
        stranger = echo(port, aet="STRANGER")
        assert stranger.returncode != 0
        assert "Calling AE Title Not Recognized" in stranger.stdout + stranger.stderr
        assert _alert_logged(caplog, "STRANGER")
        assert echo(port, aet="FRIEND").returncode == 0


def test_binary_ae_title_is_escaped_in_the_log(home, caplog):
    caplog.set_level(logging.WARNING, logger="gearview.net.server")
    with running_server(home, allowed_calling_aets=["FRIEND"]) as (_, port, _):
        with _connect(port) as sock:
            rq = bytearray(_associate_rq(calling="PLACEHOLDER"))
            rq[26:42] = b"EVIL\x1b[31m\x00\xff".ljust(16)  # calling AE field of the RQ
            sock.sendall(bytes(rq))
            _read_until_closed(sock, timeout=5)
        assert echo(port, aet="FRIEND").returncode == 0
    messages = [r.getMessage() for r in caplog.records if "Security Alert" in r.getMessage()]
    assert messages and not any("\x1b" in m for m in messages)


def test_association_over_the_limit_is_rejected_transient(home):
    with running_server(home, max_associations=2) as (_, port, _):
        ae = AE(ae_title="HOLDER")
        ae.add_requested_context(Verification)
        held = [ae.associate("127.0.0.1", port, ae_title=AET) for _ in range(2)]
        try:
            assert all(a.is_established for a in held)
            third = ae.associate("127.0.0.1", port, ae_title=AET)
            assert third.is_rejected
            rj = third.acceptor.primitive
            assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)
        finally:
            for assoc in held:
                assoc.release()
        time.sleep(0.2)
        assert echo(port).returncode == 0


def _send_path(port: int, path: Path) -> int:
    """C-STORE a file's bytes as they are (command UIDs from its meta, data set unparsed)."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        return _send_raw(port, path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


def _send_raw(port: int, path: Path) -> int:
    ae = AE(ae_title="RAWSCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title=AET)
    assert assoc.is_established
    try:
        status = assoc.send_c_store(path)
        return int(status.Status)
    finally:
        assoc.release()


def _nothing_stored(cache) -> bool:
    return cache.counts()["instance"] == 0 and not list(cache.spool_dir.iterdir())


def test_truncated_dataset_is_refused_c000(home, tmp_path):
    (path,) = write_series(tmp_path / "src", 1, rows=256, cols=256)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with running_server(home) as (_, port, cache):
        assert _send_path(port, path) == 0xC000
        assert _nothing_stored(cache)
        assert echo(port).returncode == 0


def test_uid_mismatch_is_refused_a900(home, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="gearview.net.server")
    ds = make_ct(generate_uid(), generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()  # the command will carry this one
    ds.preamble = b"\x00" * 128
    path = tmp_path / "mismatch.dcm"
    ds.save_as(path, enforce_file_format=False)
    assert pydicom.dcmread(path).file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID
    with running_server(home) as (_, port, cache):
        assert _send_path(port, path) == 0xA900
        assert _nothing_stored(cache)
        assert _alert_logged(caplog, "differ from the command")
        good = tmp_path / "good.dcm"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(good, enforce_file_format=True)
        assert _send_path(port, good) == 0x0000
        assert cache.instance(ds.SOPInstanceUID) is not None


def test_path_traversal_uid_stays_in_the_cache(home, tmp_path):
    ds = make_ct("1.2.3", "1.2.3.4", sop_uid="../../../../../tmp/gv_pwned_net")
    path = tmp_path / "evil.dcm"
    ds.save_as(path, enforce_file_format=True)
    with running_server(home) as (_, port, cache):
        _send_path(port, path)
        stored = cache.instance("../../../../../tmp/gv_pwned_net")
        if stored is not None:
            assert cache.files_dir in stored.path.resolve().parents
        assert not list(Path("/tmp").glob("gv_pwned*"))
        assert echo(port).returncode == 0


def test_findscu_patient_level_is_refused_cleanly(home):
    with running_server(home) as (_, port, _):
        result = dcmtk(
            "findscu",
            "-S",
            "-v",
            "-aec",
            AET,
            "-k",
            "QueryRetrieveLevel=PATIENT",
            "-k",
            "PatientID",
            "127.0.0.1",
            str(port),
        )
        log = result.stdout + result.stderr
        assert "Received Final Find Response" in log
        assert "Final Find Response (Success)" not in log
        assert echo(port).returncode == 0


def test_stored_file_is_readable(home, tmp_path):
    """A sanity check that the refusal tests above refuse for the right reason."""
    (path,) = write_series(tmp_path / "src", 1)
    with running_server(home) as (_, port, cache):
        assert _send_path(port, path) == 0
        record = cache.instance(pydicom.dcmread(path).SOPInstanceUID)
        assert pydicom.dcmread(record.path).PixelData == pydicom.dcmread(path).PixelData


def test_stalled_association_is_ended_at_network_timeout(home):
    """RELIABILITY 9: an association that goes quiet is aborted; its slot is freed."""
    with running_server(home, network_timeout=1.0, max_associations=1) as (scp, port, _):
        ae = AE(ae_title="STALLER")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title=AET)
        assert assoc.is_established
        deadline = time.monotonic() + 5
        while assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not assoc.is_established
        while scp.state.associations and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scp.state.associations == 0
        assert echo(port).returncode == 0
