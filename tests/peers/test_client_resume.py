"""A retried retrieve continues: complete series are skipped, a partial one gets only its missing
instances (Orthanc as the PACS, our real server receiving the C-MOVE)."""

from __future__ import annotations

import pytest
from factory import write_series
from pydicom.uid import generate_uid

from gearview import events as ev
from gearview.config import load_config, save_config
from gearview.jobqueue import DONE, RETRIEVE
from gearview.net.tasks import retrieve_params
from gearview.station import Station
from peers.orthanc import orthanc_with
from peers.tools import free_port

pytestmark = pytest.mark.peers

STUDY, SERIES_A, SERIES_B = generate_uid(), generate_uid(), generate_uid()
STATION_PORT = free_port()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("resume")
    a = write_series(root / "a", 3, study_uid=STUDY, series_uid=SERIES_A, series_number=1)
    b = write_series(root / "b", 4, study_uid=STUDY, series_uid=SERIES_B, series_number=2)
    return a, b


@pytest.fixture(scope="module")
def pacs(tmp_path_factory, files):
    peer = orthanc_with(
        tmp_path_factory.mktemp("orthanc"),
        list(files),
        modalities={"GEARVIEW": ("GEARVIEW", "127.0.0.1", STATION_PORT)},
    )
    yield peer
    peer.stop()


@pytest.fixture
def station(home, pacs):
    config = load_config(home)
    config.server.port = STATION_PORT
    config.nodes = [pacs.node("PACS")]
    save_config(home, config)
    with Station(home, config).open() as station:
        station.start_server()
        yield station


def _retrieve(station: Station) -> tuple[object, list[str]]:
    stored: list[str] = []

    def on_stored(event: ev.Event) -> None:
        stored.append(event.payload.info.sop_instance_uid)

    station.bus.bind(ev.INSTANCE_STORED, on_stored)
    try:
        job = station.jobs.submit(RETRIEVE, "Retrieve", retrieve_params("PACS", STUDY))
        record = station.jobs.run(job.id)
    finally:
        station.bus.unbind(ev.INSTANCE_STORED, on_stored)
    return record, stored


def test_retry_fetches_only_the_missing_instances(station, files):
    a, b = files
    for path in [*a, b[0]]:  # series A complete, one of B's four
        station.cache.add_file(path)
    record, stored = _retrieve(station)
    assert record.state == DONE, record.error
    assert len(stored) == 3 and record.result["completed"] == 3
    assert record.result["already_local"] == 4
    assert "3 instances received, 4 were already here" == record.message
    assert len(station.cache.instances(study_uid=STUDY)) == 7


def test_a_complete_study_moves_nothing(station, files):
    for path in [p for group in files for p in group]:
        station.cache.add_file(path)
    record, stored = _retrieve(station)
    assert record.state == DONE and stored == [] and record.result["completed"] == 0


def test_nothing_local_is_one_study_retrieve(station):
    record, stored = _retrieve(station)
    assert record.state == DONE and len(stored) == 7
    assert record.result["already_local"] == 0
