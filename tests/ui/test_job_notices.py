"""The Activity dock (newest job on top, Cancel without a selection) and the notices a finished
or failed queue job raises (status bar; Retry and Show)."""

from __future__ import annotations

from gearview.errors import Cancelled, NetworkError
from gearview.jobqueue import CANCELLED, DONE, RUNNING
from gearview.jobs import Progress


def _runner(window, kind: str, fn) -> None:
    window.station.jobs.runners[kind] = fn


def test_newest_job_on_top_and_room_for_recent_jobs(window, qtbot):
    queue, panel = window.station.jobs, window.activity_panel
    ids = [queue.submit("parked", f"Job {n}", {}).id for n in range(3)]  # no runner: stay queued
    qtbot.waitUntil(lambda: all(i in panel._records for i in ids), timeout=5_000)
    assert [panel.table.item(r, 0).text() for r in range(3)] == ["Job 2", "Job 1", "Job 0"]
    assert [panel._rows[i] for i in ids] == [2, 1, 0]
    rows_shown = panel.sizeHint().height() // panel.table.verticalHeader().defaultSectionSize()
    assert rows_shown >= 5


def test_cancel_without_selecting_stops_the_running_job(window, qtbot):
    def wait_for_cancel(ctx) -> None:
        ctx.progress(Progress(0, 10, "waiting for the PACS"))
        while not ctx.token.wait(0.05):
            pass
        raise Cancelled("cancelled")

    _runner(window, "slow", wait_for_cancel)
    panel = window.activity_panel
    job_id = window.station.jobs.submit("slow", "Retrieve everything", {}).id
    qtbot.waitUntil(lambda: panel._records.get(job_id) is not None
                    and panel.job_state(job_id) == RUNNING, timeout=10_000)
    panel.table.clearSelection()
    assert panel.selected_job_id() is None
    assert panel.cancel_button.isEnabled()
    assert "Retrieve everything" in panel.cancel_button.toolTip()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: panel.job_state(job_id) == CANCELLED, timeout=10_000)
    assert not panel.cancel_button.isEnabled()
    assert not window.notifier.notice.isVisible()  # the user cancelled it: no notice


def test_failed_job_notice_offers_retry_and_show(window, qtbot):
    attempts: list[int] = []

    def flaky(ctx) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise NetworkError("PACS refused the association")
        ctx.record.message = "3 instances sent"

    _runner(window, "flaky", flaky)
    notice = window.notifier.notice
    job_id = window.station.jobs.submit("flaky", "Send to PACS", {}).id
    qtbot.waitUntil(notice.isVisible, timeout=10_000)
    assert notice.job_id == job_id
    assert "Send to PACS failed: PACS refused the association" in notice.text.toolTip()
    assert notice.retry_button.isVisible() and notice.show_button.isVisible()

    window.activity_dock.hide()
    window.activity_panel.table.clearSelection()
    notice.show_button.click()
    assert window.activity_dock.isVisible()
    assert window.activity_panel.selected_job_id() == job_id

    notice.retry_button.click()
    qtbot.waitUntil(lambda: window.activity_panel.job_state(job_id) == DONE, timeout=10_000)
    assert len(attempts) == 2
    qtbot.waitUntil(lambda: notice.isVisible() and not notice.retry_button.isVisible(),
                    timeout=5_000)
    assert notice.text.toolTip() == "Send to PACS: 3 instances sent"
