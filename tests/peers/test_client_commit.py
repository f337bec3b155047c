"""Storage Commitment (N-ACTION to Orthanc, N-EVENT-REPORT back to our real server)."""

from __future__ import annotations

import pytest
from factory import write_series
from pydicom import dcmread
from pydicom.uid import CTImageStorage, generate_uid

from gearview.config import Config
from gearview.home import Home
from gearview.net.commitment import request_commitment
from peers.orthanc import orthanc_with
from peers.scp import running_server
from peers.tools import free_port

pytestmark = pytest.mark.peers

STATION_PORT = free_port()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("commit")
    files = write_series(root / "study", 3)
    peer = orthanc_with(
        root / "orthanc", [files], modalities={"GEARVIEW": ("GEARVIEW", "127.0.0.1", STATION_PORT)}
    )
    peer.files = files
    yield peer
    peer.stop()


@pytest.fixture
def listening(tmp_path_factory: pytest.TempPathFactory):
    """Our embedded server on the station port: Orthanc reports commitment to it."""
    station_home = Home(tmp_path_factory.mktemp("station")).ensure()
    with running_server(station_home, port=STATION_PORT, ae_title="GEARVIEW",
                        require_called_ae=False):
        yield


def test_commitment_of_sent_instances(pacs, listening):
    pairs = [(CTImageStorage, str(dcmread(f).SOPInstanceUID)) for f in pacs.files]
    result = request_commitment(pacs.node(), Config(), pairs, wait=20)
    assert result is not None and result.ok
    assert sorted(result.committed) == sorted(uid for _, uid in pairs)


def test_commitment_reports_missing_instance(pacs, listening):
    present = str(dcmread(pacs.files[0]).SOPInstanceUID)
    missing = generate_uid()
    result = request_commitment(
        pacs.node(), Config(), [(CTImageStorage, present), (CTImageStorage, missing)], wait=20
    )
    assert result is not None and not result.ok
    assert result.committed == [present] and list(result.failed) == [missing]


def test_send_job_to_commit_node_shows_result(pacs, listening, home, cache, tmp_path, capsys):
    from gearview.cli import main
    from gearview.config import load_config, save_config

    files = write_series(tmp_path / "new", 2)
    for f in files:
        cache.add_file(f)
    config = load_config(home)
    config.nodes = [pacs.node("PACS", roles=["send", "commit"])]
    save_config(home, config)
    study = str(dcmread(files[0]).StudyInstanceUID)
    assert main(["send", "PACS", study]) == 0
    assert "2 committed, 0 not" in capsys.readouterr().out
