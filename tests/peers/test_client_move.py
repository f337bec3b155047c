"""C-MOVE (into our real Server) and C-GET from Orthanc; cancel mid-move; the move CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from factory import write_series
from pydicom.uid import generate_uid

from gearview.cli import main
from gearview.config import load_config, save_config
from gearview.errors import NetworkError
from gearview.jobs import CancelToken, Progress
from gearview.net import client
from gearview.station import Station
from peers.orthanc import orthanc_with
from peers.tools import free_port

pytestmark = pytest.mark.peers

SMALL, LARGE = generate_uid(), generate_uid()
STATION_PORT = free_port()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("move")
    small = write_series(root / "small", 4, study_uid=SMALL, patient_id="MV1")
    large = write_series(root / "large", 60, study_uid=LARGE, patient_id="MV2", rows=256, cols=256)
    peer = orthanc_with(
        root / "orthanc",
        [small, large],
        modalities={"GEARVIEW": ("GEARVIEW", "127.0.0.1", STATION_PORT)},
    )
    yield peer
    peer.stop()


@pytest.fixture
def listening(home):
    """A station's real embedded server on the port Orthanc knows, storing into its cache."""
    config = load_config(home)
    config.server.port = STATION_PORT
    save_config(home, config)
    with Station(home, config).open() as station:
        station.start_server()
        yield config, station.cache


def test_move_study_into_cache(pacs, listening):
    config, cache = listening
    seen: list[Progress] = []
    result = client.retrieve_to_cache(pacs.node(), config, cache, SMALL, progress=seen.append)
    assert result.ok and result.completed == 4
    local = sorted(i.sop_instance_uid for i in cache.instances(study_uid=SMALL))
    assert local == pacs.study_instances(SMALL)
    assert seen and seen[-1].done == seen[-1].total == 4


def test_cancel_mid_move(pacs, listening):
    config, cache = listening
    token = CancelToken()

    def cancel_soon(progress: Progress) -> None:
        if progress.done >= 2:
            token.cancel()

    result = client.retrieve_to_cache(
        pacs.node(), config, cache, LARGE, progress=cancel_soon, token=token
    )
    assert result.cancelled
    assert 2 <= len(cache.instances(study_uid=LARGE)) < 60


def test_get_for_node_marked_get(pacs, home, cache):
    """A 'get' node is retrieved with C-GET: no server needed."""
    node = pacs.node(roles=["query", "get"])
    result = client.retrieve_to_cache(node, load_config(home), cache, SMALL)
    assert result.ok and result.completed == 4
    local = sorted(i.sop_instance_uid for i in cache.instances(study_uid=SMALL))
    assert local == pacs.study_instances(
        SMALL
    )


def test_unknown_destination_is_an_error(pacs, home, cache):
    """Orthanc answers an unknown destination with C000 (not A801): still a clear error."""
    with pytest.raises(NetworkError, match="0xC000") as info:
        client.move(
            pacs.node(), load_config(home), client.retrieve_identifier(SMALL), destination="NOWHERE"
        )
    assert "C-MOVE destination" in info.value.hint


def test_cli_move_starts_its_own_server(pacs, home, capsys):
    config = load_config(home)
    config.server.port = STATION_PORT
    config.nodes = [pacs.node("PACS")]
    save_config(home, config)
    assert main(["move", "PACS", SMALL]) == 0
    assert "4 instances received" in capsys.readouterr().out
    with Station.load(home).open() as station:
        assert len(station.cache.instances(study_uid=SMALL)) == 4


def test_cli_move_unknown_study_is_one_line_error(pacs, home, capsys):
    config = load_config(home)
    config.server.port = STATION_PORT
    config.nodes = [pacs.node("PACS")]
    save_config(home, config)
    assert main(["move", "PACS", generate_uid()]) == 1
    err = capsys.readouterr().err.strip()
    assert "has no study" in err and "\n" not in err


def test_move_counts_match_orthanc_rest(pacs, listening):
    config, cache = listening
    client.retrieve_to_cache(pacs.node(), config, cache, SMALL)
    study = pacs.rest("/tools/lookup", SMALL.encode(), method="POST")
    orthanc_id = study[0]["ID"]
    stats = pacs.rest(f"/studies/{orthanc_id}/statistics")
    assert int(stats["CountInstances"]) == len(cache.instances(study_uid=SMALL))
    assert Path(cache.instances(study_uid=SMALL)[0].path).is_file()


def test_cli_move_unknown_node(home, capsys):
    assert main(["move", "NOSUCH", SMALL]) == 1
    err = capsys.readouterr().err.strip()
    assert "unknown node" in err and "\n" not in err
