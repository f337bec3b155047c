"""The Station: one engine object opening, serving, rebuilding and closing a gearview home."""

from __future__ import annotations

import copy
import socket
import time
from pathlib import Path

import pytest
from factory import write_series
from peers.tools import free_port
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from gearview import events as ev
from gearview.config import Node, load_config
from gearview.errors import (
    ConfigError,
    IndexCorruptError,
    NetworkError,
    StorageFullError,
    StoreError,
)
from gearview.home import Home
from gearview.jobqueue import DONE
from gearview.lifecycle.space import FULL
from gearview.station import Station


def _echo(port: int) -> int:
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="GEARVIEW")
    try:
        assert assoc.is_established
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


def _station(home: Home, port: int = 0) -> Station:
    config = load_config(home)
    config.server.port = port
    config.server.bind_address = "127.0.0.1"
    return Station(home, config)


def test_a_station_that_is_not_open_has_no_cache(home: Home) -> None:
    station = _station(home)
    with pytest.raises(StoreError, match="not open"):
        station.cache  # noqa: B018
    assert station.files_dir == station.config.storage_dir(home)
    station.close()  # closing what never opened is harmless


def test_load_names_the_refused_config_key(home: Home) -> None:
    home.config_file.write_text('[server]\nae_title = "WAY_TOO_LONG_AE_TITLE"\n')
    with pytest.raises(ConfigError, match="server.ae_title"):
        Station.load(home)


def test_serve_then_close_stops_everything(home: Home, tmp_path: Path) -> None:
    station = _station(home).open()
    for path in write_series(tmp_path / "s", 2):
        station.cache.add_file(path)
    state = station.start_server()
    assert state.running and _echo(state.port) == 0
    queue = station.jobs
    station.start_jobs()
    decoder = station.decoder
    server = station.server
    station.close()
    station.close()
    assert not server.state.running
    assert not station.is_open and station.server is None
    with pytest.raises(Exception, match="shut down"):
        decoder.decode(Path("x.dcm"), 0)
    assert queue._thread is None  # noqa: SLF001 - the queue's worker was stopped
    with socket.socket() as probe:  # nobody listens there any more (TIME_WAIT aside)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", state.port))
        probe.listen()


def test_a_busy_port_is_a_network_error_and_the_state_says_so(home: Home) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with _station(home, port).open() as station:
            with pytest.raises(NetworkError, match="already in use"):
                station.start_server()
            assert station.server_state is not None
            assert not station.server_state.running and station.server_state.last_error


def test_rebuild_pauses_the_server_and_keeps_every_file(home: Home, tmp_path: Path) -> None:
    with _station(home, free_port()).open() as station:
        for path in write_series(tmp_path / "s", 3):
            station.cache.add_file(path)
        files = sorted(station.files_dir.rglob("*.dcm"))
        port = station.start_server().port
        report, restart_error = station.rebuild_index()
        assert report.indexed == 3 and restart_error is None
        assert station.server_state.running and _echo(port) == 0
        assert sorted(station.files_dir.rglob("*.dcm")) == files
        assert station.cache.counts()["instance"] == 3  # every thread reads the new index


def test_a_damaged_index_is_found_and_rebuilt_before_opening(home: Home, tmp_path: Path) -> None:
    with _station(home).open() as station:
        for path in write_series(tmp_path / "s", 2):
            station.cache.add_file(path)
    for suffix in ("-wal", "-shm"):
        Path(str(home.index_file) + suffix).unlink(missing_ok=True)
    home.index_file.write_bytes(b"not an sqlite database" * 200)
    station = _station(home)
    with pytest.raises(IndexCorruptError):
        station.open().check_index()
    station.close()
    report, _ = station.rebuild_index()  # works on a station that is not open
    assert report.indexed == 2
    with station.open():
        station.check_index()
        assert station.cache.counts()["instance"] == 2
        assert station.check_store().clean


def test_apply_config_saves_and_restarts_the_server(home: Home) -> None:
    with _station(home, free_port()).open() as station:
        station.start_server()
        config = load_config(home)
        config.server.port = free_port()
        config.server.bind_address = "127.0.0.1"
        config.server.ae_title = "QCSTATION"
        assert station.apply_config(config) is None
        assert station.config is config
        assert station.server_state.running and station.server_state.ae_title == "QCSTATION"
        assert load_config(home).server.port == config.server.port


def test_apply_config_without_server_changes_keeps_it_listening(home: Home) -> None:
    with _station(home, free_port()).open() as station:
        station.start_server()
        server, listening = station.server, station.server._server
        config = copy.deepcopy(station.config)
        config.nodes = [Node("PACS", "PACS", "127.0.0.1", 104)]
        config.client.dimse_timeout = 12
        assert station.apply_config(config) is None
        assert station.server is server and server._server is listening
        assert server.config is config  # C-MOVE destinations come from the new node list
        assert load_config(home).nodes[0].name == "PACS"


def test_apply_config_onto_a_busy_port_saves_and_returns_why(home: Home) -> None:
    with _station(home, free_port()).open() as station, socket.socket() as blocker:
        station.start_server()
        blocker.bind(("0.0.0.0", 0))
        blocker.listen()
        config = load_config(home)
        config.server.port = blocker.getsockname()[1]
        error = station.apply_config(config)
        assert isinstance(error, NetworkError) and "already in use" in error.one_line()
        assert load_config(home).server.port == config.server.port
        assert not station.server_state.running


def test_a_config_that_cannot_be_saved_applies_nothing(home: Home, monkeypatch) -> None:
    with _station(home).open() as station:
        before = station.config

        def refuse(*args: object) -> None:
            raise StoreError("disk full")

        monkeypatch.setattr("gearview.station.save_config", refuse)
        with pytest.raises(StoreError):
            station.apply_config(load_config(home))
        assert station.config is before


def test_jobs_run_with_the_config_applied_since_the_queue_opened(home: Home) -> None:
    seen: list[str] = []
    with _station(home).open() as station:
        queue = station.jobs
        queue.runners["probe"] = lambda ctx: seen.append(station.config.server.ae_title)
        changed = load_config(home)
        changed.server.ae_title = "LATER"
        station.apply_config(changed)
        record = queue.submit("probe", "probe", {})
        assert queue.run(record.id).state == DONE
    assert seen == ["LATER"]


def test_the_station_emits_on_its_own_bus(home: Home, tmp_path: Path) -> None:
    bus = ev.EventBus()
    seen: list[ev.Event] = []
    bus.bind(ev.CACHE_CHANGED, seen.append)
    config = load_config(home)
    with Station(home, config, bus).open() as station:
        station.cache.add_file(write_series(tmp_path / "s", 1)[0])
    assert len(seen) == 1 and seen[0].initiator == "import"


def test_the_server_starts_the_retention_gate_and_close_stops_it(home: Home, tmp_path: Path):
    station = _station(home).open()
    for path in write_series(tmp_path / "s", 2):
        station.cache.add_file(path)
    station.config.storage.max_size = "1 kB"
    station.config.storage.when_full = "reject"
    station.start_server()
    cache, monitor = station.cache, station.retention
    assert monitor.running and monitor.state.level == FULL
    with pytest.raises(StorageFullError, match="storage.max_size"):
        cache.admission()
    station.rebuild_index()  # paused meanwhile, running again after
    assert monitor.running and cache.admission is not None
    station.close()
    assert not monitor.running and cache.admission is None


def test_limits_applied_reach_the_gate_without_waiting_an_hour(home: Home, tmp_path: Path):
    with _station(home).open() as station:
        station.cache.add_file(write_series(tmp_path / "s", 1)[0])
        config = load_config(home)
        config.storage.max_size, config.storage.when_full = "1 kB", "reject"
        station.apply_config(config)
        station.start_retention()
        with pytest.raises(StorageFullError):
            station.cache.admission()
        lifted = load_config(home)
        lifted.storage.max_size = ""
        station.apply_config(lifted)
        deadline = time.monotonic() + 10
        while station.retention.state.limits.any:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        station.cache.admission()
