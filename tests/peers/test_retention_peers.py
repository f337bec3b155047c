"""Retention against real peers: `store purge` after real sends, A700 when full, recycle on receive.

Four studies - one never sent, one sent only as a de-identified copy, one
sent to a DCMTK `storescp`, one sent to an Orthanc with the `commit` role and
committed - and a size limit below the cache: `--dry-run` lists only the two
sent ones, oldest first; the real run removes them until the cache is within
the limit; the other two stay.
"""

from __future__ import annotations

import time

import factory
import pytest
from factory import write_series

from gearview.cli import main
from gearview.config import load_config, save_config
from gearview.home import Home
from gearview.store import audit
from gearview.store.check import iter_cache_files
from peers.orthanc import orthanc_with
from peers.scp import AET, dcmtk, echo, running_server
from peers.storescp import StoreSCP
from peers.tools import free_port

pytestmark = pytest.mark.peers

STATION_PORT = free_port()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):
    peer = orthanc_with(tmp_path_factory.mktemp("retention") / "orthanc", [],
                        modalities={"GEARVIEW": ("GEARVIEW", "127.0.0.1", STATION_PORT)})
    yield peer
    peer.stop()


@pytest.fixture
def commit_listener(home: Home):
    """Our server in the test's home, where Orthanc reports Storage Commitment."""
    with running_server(home, port=STATION_PORT, ae_title="GEARVIEW", require_called_ae=False):
        yield


def add_study(cache, folder, n: int = 3) -> str:
    return factory.add_study(cache, folder, n, rows=32, cols=32)


def test_purge_lists_and_removes_only_sent_studies_oldest_first(
    pacs, commit_listener, home, cache, tmp_path, capsys
):
    unsent = add_study(cache, tmp_path / "unsent")
    deidentified = add_study(cache, tmp_path / "deid")
    committed = add_study(cache, tmp_path / "committed")
    sent = add_study(cache, tmp_path / "sent")
    size = cache.study_sizes()[sent]
    with StoreSCP(tmp_path / "archive") as archive:
        config = load_config(home)
        config.nodes = [pacs.node("PACS", roles=["send", "commit"]), archive.node("ARCHIVE")]
        config.storage.keep_sent_days = 0
        save_config(home, config)
        assert main(["send", "ARCHIVE", deidentified, "--anonymize"]) == 0
        assert main(["send", "PACS", committed]) == 0
        assert "3 committed, 0 not" in capsys.readouterr().out
        assert main(["send", "ARCHIVE", sent]) == 0
    config.storage.max_size = f"{2 * size + size // 2} B"  # two of the four studies must go
    save_config(home, config)
    capsys.readouterr()

    assert main(["store", "purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove 2 studies" in out and "over storage.max_size" in out
    listed = [line.split()[-1] for line in out.splitlines()[2:4]]
    assert listed == [committed, sent]  # oldest send first
    assert unsent not in out and "staying: 2 not sent since it last changed" in out
    assert {s.study_instance_uid for s in cache.studies()} == {
        unsent, deidentified, committed, sent}

    assert main(["store", "purge"]) == 0
    out = capsys.readouterr().out
    assert "removed 2 studies" in out
    assert {s.study_instance_uid for s in cache.studies()} == {unsent, deidentified}
    assert len(list(iter_cache_files(cache.files_dir))) == 6
    assert cache.size() <= 2 * size + size // 2
    purged = [r["study_uid"] for r in audit.read(home) if r["action"] == "purge"]
    assert purged == [committed, sent]
    assert main(["store", "check"]) == 0
    assert main(["store", "purge"]) == 0
    assert "nothing to purge" in capsys.readouterr().out


def test_reject_mode_answers_a700_when_full(home, cache, tmp_path):
    add_study(cache, tmp_path / "old")
    config = load_config(home)
    config.storage.max_size = "1 kB"
    config.storage.when_full = "reject"
    save_config(home, config)
    files = write_series(tmp_path / "new", 2, rows=32, cols=32)
    with running_server(home) as (scp, port, server_cache):  # the station's monitor gates it
        result = dcmtk("storescu", "-v", "-nh", "-aec", AET, "127.0.0.1", str(port),
                       *map(str, files))
        log = result.stdout + result.stderr
        assert log.count("Refused: OutOfResources") == 2, log  # 0xA700
        assert "Received Store Response (Success)" not in log
        assert echo(port).returncode == 0
        assert server_cache.counts()["instance"] == 3
        assert not list(server_cache.spool_dir.iterdir())


def test_recycle_mode_purges_a_sent_study_after_a_received_one(home, cache, tmp_path, capsys):
    old = add_study(cache, tmp_path / "old")
    size = cache.study_sizes()[old]
    with StoreSCP(tmp_path / "archive") as archive:
        config = load_config(home)
        config.nodes = [archive.node("ARCHIVE")]
        config.storage.keep_sent_days = 0
        config.storage.max_size = f"{size + size // 2} B"
        save_config(home, config)
        assert main(["send", "ARCHIVE", old]) == 0
    files = write_series(tmp_path / "new", 3, rows=32, cols=32)
    with running_server(home, nodes=config.nodes) as (scp, port, server_cache):
        result = dcmtk("storescu", "-nh", "-aec", AET, "127.0.0.1", str(port), *map(str, files))
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 20
        while server_cache.study(old) is not None:  # checked once the association closed
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert server_cache.counts()["instance"] == 3
        assert server_cache.size() <= size + size // 2
