"""The Activity panel: an automatic retry after a network error, and a job killed elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

from factory import write_series
from peers.storescp import StoreSCP

from gearview.jobqueue import DONE, INTERRUPTED, QUEUED, RUNNING, SEND, JobQueue
from gearview.net.tasks import send_params


def test_send_to_a_down_node_shows_its_automatic_retry(window, qtbot, tmp_path):
    for path in write_series(tmp_path / "src", 2):
        window.cache.add_file(path)
    study = window.cache.studies()[0].study_instance_uid
    scp = StoreSCP(tmp_path / "out")
    window.config.nodes = [scp.node("PACS")]
    window.config.client.send_retries = 2
    window.config.client.send_retry_delay = 1.0
    panel = window.activity_panel
    job_id = window.station.jobs.submit(SEND, "Send to PACS", send_params("PACS", [study])).id

    def waiting() -> bool:
        record = panel._records.get(job_id)
        return record is not None and record.state == QUEUED and record.auto_retries == 1

    qtbot.waitUntil(waiting, timeout=20_000)
    row = panel._rows[job_id]
    assert "automatic retry 1 of 2 at" in panel.table.item(row, 3).text()
    with scp:
        qtbot.waitUntil(lambda: panel.job_state(job_id) == DONE, timeout=20_000)
        assert len(scp.received()) == 2


def test_job_killed_in_another_process_shows_interrupted_and_can_be_retried(
    window, qtbot, home
):
    """A `gearview send` that died leaves its job `running` on disk with nobody holding it."""
    other = JobQueue(home, window.config)
    record = other.submit(SEND, "Send from the CLI", send_params("PACS", ["1.2.3"]))
    path = Path(home.jobs_dir) / f"{record.id}.json"
    data = json.loads(path.read_text())
    data["state"] = RUNNING
    path.write_text(json.dumps(data))
    panel = window.activity_panel
    qtbot.waitUntil(lambda: record.id in panel._records
                    and panel.job_state(record.id) == INTERRUPTED, timeout=10_000)
    panel.table.selectRow(panel._rows[record.id])
    assert panel.retry_button.isEnabled() and panel.cancel_button.isEnabled()
