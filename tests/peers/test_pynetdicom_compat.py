"""The fence around pynetdicom: every private hook listed and present in the pinned version,
module patches installed once and restored, and each feature's stock fallback working."""

from __future__ import annotations

import copy
import logging

import pynetdicom
import pynetdicom.association
import pynetdicom.dul
import pynetdicom.transport
import pytest
from factory import write_series
from pydicom.dataset import Dataset
from pynetdicom.dul import DULServiceProvider

from gearview.config import Node, load_config
from gearview.home import Home
from gearview.net import client
from gearview.net import pynetdicom_compat as compat
from gearview.net.send import SendItem, send_items
from peers import pdus as P
from peers.scp import AET, dcmtk, echo, running_server
from peers.storescp import StoreSCP

pytestmark = pytest.mark.peers

#: Every private name gearview relies on, by the feature that needs it. Adding one means
#: adding it here, in `compat._CHECKS`, and a fallback for when it is missing.
EXPECTED_HOOKS = {
    "inbound": [
        "DULServiceProvider._read_pdu_data",
        "DULServiceProvider._decode_pdu",
        "DULServiceProvider._recv_pdu",
        "Association._accepted_cx",
        "pynetdicom._globals.APPLICATION_CONTEXT_NAME",
    ],
    "direct_dimse": [
        "Association._reactor_checkpoint",
        "Association._is_paused",
        "AssociationSocket._is_connected",
        "DULServiceProvider._idle_timer",
    ],
    "wake_clocks": [
        "pynetdicom.association.time",
        "pynetdicom.dul.time",
        "DULServiceProvider._run_loop_delay",
    ],
    "context_copy": ["pynetdicom.transport.deepcopy", "PresentationContext._transfer_syntax"],
    "quiet_defaults": ["evt._INTERVENTION_EVENTS", "AssociationServer._bind_defaults"],
    "server": ["RequestHandler._create_association"],
    "connect_reason": ["AssociationSocket.connect logs 'TCP Initialisation Error: <reason>'"],
}


def test_the_hooks_are_the_listed_ones_and_all_present():
    listed: dict[str, list[str]] = {}
    for hook in compat.HOOKS:
        listed.setdefault(hook.feature, []).append(hook.name)
    assert listed == EXPECTED_HOOKS
    assert all(hook.present for hook in compat.HOOKS), [h for h in compat.HOOKS if not h.present]


def test_the_installed_pynetdicom_is_inside_the_pin():
    installed = tuple(int(part) for part in pynetdicom.__version__.split(".")[:3])
    assert (3, 0, 4) <= installed < (3, 1)


def test_a_missing_hook_is_found_and_logged_once_per_feature(monkeypatch, caplog):
    monkeypatch.delattr(DULServiceProvider, "_read_pdu_data")
    monkeypatch.delattr(DULServiceProvider, "_decode_pdu")
    hooks = compat._probe()
    missing = [h.name for h in hooks if not h.present]
    assert missing == ["DULServiceProvider._read_pdu_data", "DULServiceProvider._decode_pdu"]
    with caplog.at_level(logging.WARNING, logger="gearview.net.pynetdicom_compat"):
        assert compat.report_missing(hooks) == frozenset({"inbound"})
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "'inbound' falls back" in lines[0]


def _pristine() -> bool:
    import time as time_module

    return (
        pynetdicom.association.__dict__["time"] is time_module
        and pynetdicom.dul.__dict__["time"] is time_module
        and pynetdicom.transport.__dict__["deepcopy"] is copy.deepcopy
    )


def test_module_patches_live_only_while_a_server_runs(home, tmp_path):
    assert _pristine()
    with running_server(home) as (_, port, _):
        assert not _pristine()
        with running_server(Home(tmp_path / "second").ensure()) as (_, other, _):
            assert echo(other).returncode == 0
        assert not _pristine(), "the second server's stop restored what the first needs"
        assert echo(port).returncode == 0
    assert _pristine()


def test_stock_reading_still_stores_and_caps_lengths(home, tmp_path, caplog):
    """Without the inbound hooks pynetdicom reads; GuardedSocket.recv keeps the limits."""
    caplog.set_level(logging.WARNING, logger="gearview.net.server")
    files = write_series(tmp_path / "src", 3)
    with compat.without("inbound"), running_server(home) as (_, port, cache):
        result = dcmtk("storescu", "-aec", AET, "127.0.0.1", str(port), *map(str, files))
        assert result.returncode == 0, result.stderr
        assert cache.counts()["instance"] == 3
        with P.connect(port) as sock:
            answer = P.answer(sock, P.pdu(P.ASSOCIATE_RQ, b"", length=0xFFFFFFF0))
        assert answer.closed and answer.seconds < 2
        assert any("declared a 4294967280-byte PDU" in r.getMessage() for r in caplog.records)
        assert echo(port).returncode == 0


def test_stock_send_and_find_without_the_direct_hooks(home, tmp_path):
    files = write_series(tmp_path / "src", 3)
    items = [SendItem.from_path(f) for f in files]
    config = load_config(home)
    with compat.without("direct_dimse"), StoreSCP(tmp_path / "out") as scp:
        result = send_items(scp.node(), config, items)
        assert result.ok and result.count("success") == 3
        assert len(scp.received()) == 3
    with compat.without("direct_dimse"), running_server(home) as (_, port, _):
        dcmtk("storescu", "-aec", AET, "127.0.0.1", str(port), *map(str, files))
        node = Node(name="SELF", ae_title=AET, host="127.0.0.1", port=port, roles=["query"])
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        assert len(client.find(node, config, query)) == 1
