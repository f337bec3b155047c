"""The GUI's embedded server through a modality's day: 300 single-instance associations,
then a 300-instance C-MOVE retrieve, with file descriptors and threads staying flat.

Before the fix every refresh of the study list (on a Qt pool thread) left an SQLite
connection open - about two descriptors per received image - until `select()` failed
past 1024 and the server stopped working while the status bar still said "listening".
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from factory import write_series
from peers.orthanc import orthanc_with
from peers.tools import DCMTK_ENV, require
from pydicom.uid import generate_uid

from gearview.jobqueue import FINISHED, RETRIEVE
from gearview.net.tasks import retrieve_params
from gearview.ui.main_window import MainWindow

pytestmark = pytest.mark.peers
ASSOCIATIONS = 300
MOVED = 300
PARALLEL = 4
#: What a few lazily started helpers (pool threads, their event descriptors) may add.
FD_SLACK = 12
THREAD_SLACK = 6


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _storescu_each(qtbot, window: MainWindow, files: list[Path]) -> None:
    """One storescu association per file, a few at a time, pumping the GUI meanwhile."""
    storescu = require("storescu")
    state = window.server.state
    pending = list(files)
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < PARALLEL:
            running.append(subprocess.Popen(
                [storescu, "-aec", state.ae_title, "127.0.0.1", str(state.port),
                 str(pending.pop())],
                env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        qtbot.wait(5)
        for proc in [p for p in running if p.poll() is not None]:
            assert proc.returncode == 0, "storescu failed"
            running.remove(proc)


def _settled(qtbot, window: MainWindow, instances: int) -> None:
    model = window.study_list.model

    def shown() -> int:
        return sum(model.record(row).number_of_study_related_instances
                   for row in range(model.rowCount()))

    qtbot.waitUntil(lambda: shown() == instances and window.server.state.associations == 0,
                    timeout=60_000)
    qtbot.wait(500)  # the last refresh's pool task ends


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_a_day_of_single_image_associations_and_a_retrieve(qtbot, window: MainWindow,
                                                            tmp_path: Path):
    files = write_series(tmp_path / "modality", ASSOCIATIONS + 20, rows=16, cols=16)
    _storescu_each(qtbot, window, files[:20])  # warm up: pools and caches start lazily
    _settled(qtbot, window, 20)
    fds, threads = _fds(), threading.active_count()

    _storescu_each(qtbot, window, files[20:])
    _settled(qtbot, window, ASSOCIATIONS + 20)
    assert _fds() <= fds + FD_SLACK, f"{_fds() - fds} descriptors more after the associations"
    assert threading.active_count() <= threads + THREAD_SLACK
    assert window.server.state.running

    study = generate_uid()
    moved = write_series(tmp_path / "pacs", MOVED, study_uid=study, rows=16, cols=16)
    state = window.server.state
    pacs = orthanc_with(tmp_path / "orthanc", [moved],
                        modalities={"GV": (state.ae_title, "127.0.0.1", state.port)})
    try:
        window.config.nodes = [pacs.node("PACS", roles=["query", "retrieve"])]
        queue = window.station.jobs
        job = queue.submit(RETRIEVE, "Retrieve", retrieve_params("PACS", study))
        qtbot.waitUntil(lambda: queue.get(job.id).state in FINISHED, timeout=120_000)
        record = queue.get(job.id)
        assert record.state == "done", record.error
        assert record.result["completed"] == MOVED
    finally:
        pacs.stop()
    _settled(qtbot, window, ASSOCIATIONS + 20 + MOVED)
    assert _fds() <= fds + FD_SLACK, f"{_fds() - fds} descriptors more after the retrieve"
    assert threading.active_count() <= threads + THREAD_SLACK
    assert window.cache.index.open_count() <= 2  # the GUI thread's, the job thread's
