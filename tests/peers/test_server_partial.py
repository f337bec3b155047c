"""RELIABILITY 18 and 20: a C-STORE cut off mid data set stores nothing; one split
into thousands of tiny PDUs is stored intact."""

from __future__ import annotations

import io
import logging
import socket
import struct
import time
import tracemalloc

import pytest
from factory import make_ct, write_series
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import A_ASSOCIATE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import build_context

from gearview.net.dimse import C_STORE_RSP as C_STORE_RSP_FIELD
from gearview.net.dimse import read_message
from gearview.store import Cache
from peers.scp import AET, dataset_bytes, dcmtk, echo, running_server

pytestmark = pytest.mark.peers
ASSOCIATE_AC = 0x02
A_ABORT = struct.pack(">BBLBBBB", 0x07, 0, 4, 0, 0, 0, 0)
A_RELEASE_RQ = struct.pack(">BBL", 0x05, 0, 4) + b"\x00" * 4


def _associate(port: int) -> socket.socket:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "RAWSTORE"
    primitive.called_ae_title = AET
    context = build_context(CTImageStorage, ExplicitVRLittleEndian)
    context.context_id = 1
    primitive.presentation_context_definition_list = [context]
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    primitive.user_information = [max_length]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(pdu.encode())
    header = sock.recv(6)
    assert header[0] == ASSOCIATE_AC, "association not accepted"
    remaining = struct.unpack(">L", header[2:6])[0]
    while remaining:
        remaining -= len(sock.recv(remaining))
    return sock


def _store_pdus(rows: int, cols: int, max_pdu: int) -> tuple[list[bytes], bytes, str]:
    """The encoded P-DATA-TF PDUs of one C-STORE, its data set bytes and SOP Instance UID."""
    ds = make_ct(generate_uid(), generate_uid(), rows=rows, cols=cols)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    payload = raw[144 + struct.unpack("<L", raw[140:144])[0] :]
    primitive = C_STORE()
    primitive.MessageID = 1
    primitive.AffectedSOPClassUID = CTImageStorage
    primitive.AffectedSOPInstanceUID = ds.SOPInstanceUID
    primitive.Priority = 2
    primitive.DataSet = io.BytesIO(payload)
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    return [_encode(p) for p in message.encode_msg(1, max_pdu)], payload, str(ds.SOPInstanceUID)


def _encode(primitive: object) -> bytes:
    pdu = P_DATA_TF()
    pdu.from_primitive(primitive)
    return pdu.encode()


def _wait_closed(sock: socket.socket, timeout: float = 5) -> None:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, TimeoutError):
        pass


@pytest.mark.parametrize("ending", [A_ABORT, A_RELEASE_RQ, b""], ids=["abort", "release", "reset"])
def test_store_cut_off_mid_dataset_stores_nothing(home, ending: bytes) -> None:
    pdus, _, sop_uid = _store_pdus(256, 256, 16384)
    with running_server(home) as (_, port, cache):
        sock = _associate(port)
        for pdu in pdus[: len(pdus) // 2]:
            sock.sendall(pdu)
        if ending:
            sock.sendall(ending)
            _wait_closed(sock)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        assert echo(port).returncode == 0, "server stopped answering"
        assert cache.instance(sop_uid) is None
        assert cache.counts()["instance"] == 0
        assert not list(cache.spool_dir.iterdir()), "a spool file was left behind"
        assert not list(cache.files_dir.rglob("*.dcm"))


def test_store_in_thousands_of_tiny_pdus_is_stored_intact(home) -> None:
    pdus, payload, sop_uid = _store_pdus(288, 512, 64)
    assert len(pdus) >= 5000
    with running_server(home) as (_, port, cache):
        sock = _associate(port)
        sock.sendall(b"".join(pdus))
        deadline = time.monotonic() + 30
        while cache.instance(sop_uid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        sock.sendall(A_RELEASE_RQ)
        _wait_closed(sock)
        sock.close()
        stored = Cache(home).instance(sop_uid)
        assert stored is not None, "the instance never arrived"
        assert stored.path.read_bytes().endswith(payload)


def _response(sock: socket.socket) -> Dataset:
    """The next C-STORE-RSP command set the server sends."""
    message = read_message(sock, timeout=30)
    assert message.command.CommandField == C_STORE_RSP_FIELD
    return message.command


def test_store_with_a_split_command_and_the_next_one_are_both_answered(home) -> None:
    """A command set spread over several PDUs goes through pynetdicom's path, the next
    C-STORE on the same association through the direct one: both stored and answered."""
    split, split_payload, split_uid = _store_pdus(64, 64, 64)
    direct, direct_payload, direct_uid = _store_pdus(64, 64, 16384)
    assert len(split) > 3 and len(direct) == 2
    with running_server(home) as (_, port, cache):
        sock = _associate(port)
        sock.sendall(b"".join(split))
        first = _response(sock)
        sock.sendall(b"".join(direct))
        second = _response(sock)
        sock.sendall(A_RELEASE_RQ)
        _wait_closed(sock)
        sock.close()
        assert (first.Status, first.AffectedSOPInstanceUID) == (0x0000, split_uid)
        assert (second.Status, second.AffectedSOPInstanceUID) == (0x0000, direct_uid)
        assert second.MessageIDBeingRespondedTo == 1
        assert cache.instance(split_uid).path.read_bytes().endswith(split_payload)
        assert cache.instance(direct_uid).path.read_bytes().endswith(direct_payload)


def test_new_command_inside_a_data_set_aborts_and_stores_nothing(home, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="gearview.net.server")
    pdus, _, sop_uid = _store_pdus(256, 256, 16384)
    with running_server(home) as (_, port, cache):
        sock = _associate(port)
        for pdu in pdus[: len(pdus) // 2]:
            sock.sendall(pdu)
        sock.sendall(pdus[0])  # a command fragment where data fragments must follow
        _wait_closed(sock)
        sock.close()
        assert echo(port).returncode == 0, "server stopped answering"
        assert cache.instance(sop_uid) is None
        assert not list(cache.spool_dir.iterdir()), "a spool file was left behind"
        assert any("Security Alert" in r.getMessage() and "before the last data fragment"
                   in r.getMessage() for r in caplog.records)


def test_a_large_instance_is_written_as_it_arrives_not_held_in_memory(home, tmp_path) -> None:
    """RELIABILITY: a big multi-frame must not cost its size in memory while it arrives."""
    path = write_series(tmp_path, 1, rows=4096, cols=4096)[0]
    size = path.stat().st_size
    assert size > 32_000_000
    with running_server(home) as (_, port, cache):
        tracemalloc.start()
        try:
            result = dcmtk("storescu", "-aec", AET, "127.0.0.1", str(port), str(path))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.returncode == 0, result.stderr
        (stored,) = cache.instances()
        assert stored.path.read_bytes().endswith(dataset_bytes(path))
        assert peak < size // 8, f"peak {peak >> 20} MiB while receiving {size >> 20} MiB"
