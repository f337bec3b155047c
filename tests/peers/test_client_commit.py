"""Storage Commitment (N-ACTION to Orthanc, N-EVENT-REPORT back to a server of the same home:
in this process, or `gearview serve` in another one while `gearview send` waits)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from factory import write_series
from pydicom import dcmread
from pydicom.uid import CTImageStorage, generate_uid

from gearview.cli import main
from gearview.config import Config, load_config, save_config
from gearview.home import Home
from gearview.net.commitment import request_commitment
from peers.orthanc import orthanc_with
from peers.scp import running_server
from peers.tools import free_port, wait_for_port

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
def listening(home: Home):
    """Our embedded server on the station port, in this home: Orthanc reports to it."""
    with running_server(home, port=STATION_PORT, ae_title="GEARVIEW", require_called_ae=False):
        yield


def test_commitment_of_sent_instances(pacs, listening, home):
    pairs = [(CTImageStorage, str(dcmread(f).SOPInstanceUID)) for f in pacs.files]
    result = request_commitment(home, pacs.node(), Config(), pairs, wait=20)
    assert result is not None and result.ok
    assert sorted(result.committed) == sorted(uid for _, uid in pairs)


def test_commitment_reports_missing_instance(pacs, listening, home):
    present = str(dcmread(pacs.files[0]).SOPInstanceUID)
    missing = generate_uid()
    result = request_commitment(
        home, pacs.node(), Config(), [(CTImageStorage, present), (CTImageStorage, missing)],
        wait=20,
    )
    assert result is not None and not result.ok
    assert result.committed == [present] and list(result.failed) == [missing]


def test_send_job_to_commit_node_shows_result(pacs, listening, home, cache, tmp_path, capsys):
    files = write_series(tmp_path / "new", 2)
    for f in files:
        cache.add_file(f)
    config = load_config(home)
    config.nodes = [pacs.node("PACS", roles=["send", "commit"])]
    save_config(home, config)
    study = str(dcmread(files[0]).StudyInstanceUID)
    assert main(["send", "PACS", study]) == 0
    assert "2 committed, 0 not" in capsys.readouterr().out


def test_report_received_by_serve_in_another_process_reaches_the_waiting_send(
    pacs, home, cache, tmp_path, capsys
):
    """The N-EVENT-REPORT lands in `gearview serve` (another process of this home)."""
    files = write_series(tmp_path / "other", 3)
    for f in files:
        cache.add_file(f)
    config = load_config(home)
    config.server.port = STATION_PORT
    config.server.ae_title = "GEARVIEW"
    config.server.require_called_ae = False
    config.nodes = [pacs.node("PACS", roles=["send", "commit"])]
    save_config(home, config)
    serve = subprocess.Popen(
        [sys.executable, "-m", "gearview", "serve", "--bind", "127.0.0.1"],
        env={**os.environ, "GEARVIEW_HOME": str(home.root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout.readline().startswith("listening on GEARVIEW@127.0.0.1:")
        wait_for_port(STATION_PORT)
        study = str(dcmread(files[0]).StudyInstanceUID)
        assert main(["send", "PACS", study]) == 0
        assert "3 committed, 0 not" in capsys.readouterr().out
    finally:
        serve.terminate()
        assert serve.wait(timeout=15) == 0
    assert not list((home.root / "commitments").glob("*.json")), "transaction files left"


def test_commitment_without_an_answer_exits_6_with_one_line(pacs, home, cache, tmp_path, capsys):
    """No server of this home runs, so Orthanc cannot deliver its report: exit 6, one line."""
    (path,) = write_series(tmp_path / "one", 1)
    cache.add_file(path)
    config = load_config(home)
    config.nodes = [pacs.node("PACS", roles=["send", "commit"])]
    config.nodes[0].timeout = 3.0
    save_config(home, config)
    code = main(["send", "PACS", str(dcmread(path).StudyInstanceUID)])
    err = capsys.readouterr().err
    assert code == 6
    assert err.count("\n") == 1 and err.startswith("gearview: error: ")
    assert "did not report storage commitment within 3 s" in err
