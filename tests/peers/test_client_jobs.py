"""The persistent job queue: a send survives an app restart and resumes; cancel; retry."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from factory import make_ct
from pydicom.uid import generate_uid

from gearview import events as ev
from gearview.config import load_config
from gearview.jobqueue import (
    CANCELLED,
    DONE,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    SEND,
    JobContext,
    JobQueue,
)
from gearview.jobs import CancelToken
from gearview.net.tasks import CommitmentUnanswered, SendFailed, open_queue, send_params
from peers.storescp import StoreSCP

pytestmark = pytest.mark.peers


def cached_study(cache, folder: Path, n: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    for i in range(n):
        path = folder / f"{i}.dcm"
        make_ct(study, series, i + 1, rows=128, cols=128).save_as(path, enforce_file_format=True)
        cache.add_file(path)
    return study


def test_interrupted_send_resumes_after_restart(home, cache, tmp_path):
    study = cached_study(cache, tmp_path / "in", 40)
    with StoreSCP(tmp_path / "out") as scp:
        config = load_config(home)
        config.nodes = [scp.node("STRICT")]
        queue = open_queue(home, config, cache)
        job = queue.submit(SEND, "send", send_params("STRICT", [study]))
        real_runner = queue.runners[SEND]

        def quit_app_after_ten(ctx: JobContext) -> None:
            """The real send; the app quits (queue stops) once 10 instances went out."""

            def progress(p) -> None:
                ctx.progress(p)
                if p.done >= 10:
                    queue.request_stop()

            real_runner(JobContext(ctx.record, progress, ctx.token, ctx.save))

        queue.runners[SEND] = quit_app_after_ten
        queue.start()
        deadline = time.monotonic() + 30
        while queue.get(job.id).state != QUEUED or queue.get(job.id).attempts == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        queue.stop()
        on_disk = json.loads((Path(home.jobs_dir) / f"{job.id}.json").read_text())
        assert on_disk["state"] == QUEUED and 10 <= len(on_disk["completed_uids"]) < 40
        first = set(on_disk["completed_uids"])

        restarted = open_queue(home, config, cache)
        record = restarted.get(job.id)
        assert record.state == QUEUED
        finished = threading.Event()

        def done(event: ev.Event) -> None:
            if event.job.id == job.id:
                finished.set()

        ev.bus.bind(ev.JOB_FINISHED, done)
        try:
            restarted.start()
            assert finished.wait(30)
        finally:
            ev.bus.unbind(ev.JOB_FINISHED, done)
            restarted.stop()
        record = restarted.get(job.id)
        assert record.state == DONE, record.error
        assert len(record.completed_uids) == 40 and first <= set(record.completed_uids)
        assert all(count == 1 for count in scp.received().values())
        assert len(scp.received()) == 40


def test_crash_while_running_is_shown_interrupted(home, tmp_path):
    """A job file left 'running' by a crash (nobody holds its lock) is shown as interrupted."""
    config = load_config(home)
    queue = JobQueue(home, config)
    record = queue.submit(SEND, "send", send_params("X", ["1.2.3"]))
    path = Path(home.jobs_dir) / f"{record.id}.json"
    data = json.loads(path.read_text())
    data["state"] = RUNNING
    path.write_text(json.dumps(data))
    (Path(home.jobs_dir) / "garbage.json").write_text("{not json")
    reopened = JobQueue(home, config)
    assert reopened.get(record.id).state == INTERRUPTED
    assert json.loads(path.read_text())["state"] == INTERRUPTED
    assert [j.id for j in reopened.jobs()] == [record.id]
    assert reopened.retry(record.id).state == QUEUED


def test_cancel_running_send_then_retry(home, cache, tmp_path):
    study = cached_study(cache, tmp_path / "in", 20)
    with StoreSCP(tmp_path / "out") as scp:
        config = load_config(home)
        config.nodes = [scp.node("STRICT")]
        queue = open_queue(home, config, cache)
        job = queue.submit(SEND, "send", send_params("STRICT", [study]))
        token = CancelToken()

        def cancel_at_five(progress) -> None:
            if progress.done >= 5:
                token.cancel()

        record = queue.run(job.id, cancel_at_five, token)
        assert record.state == CANCELLED and 5 <= len(record.completed_uids) < 20
        queue.retry(job.id)
        record = queue.run(job.id)
        assert record.state == DONE and len(record.completed_uids) == 20
        assert len(scp.received()) == 20 and all(c == 1 for c in scp.received().values())


def test_cancel_queued_job_and_remove(home):
    queue = JobQueue(home, load_config(home))
    record = queue.submit(SEND, "send", send_params("X", ["1.2.3"]))
    queue.cancel(record.id)
    assert queue.get(record.id).state == CANCELLED
    queue.remove(record.id)
    assert queue.jobs() == []
    assert not (Path(home.jobs_dir) / f"{record.id}.json").exists()


def _send_to_a_down_peer(home, cache, tmp_path, retries: int, delay: float):
    """A 3-instance study, a PACS node whose storescp is not started yet, and a queue."""
    study = cached_study(cache, tmp_path / "in", 3)
    scp = StoreSCP(tmp_path / "out")
    config = load_config(home)
    config.client.send_retries = retries
    config.client.send_retry_delay = delay
    config.nodes = [scp.node("PACS")]
    return study, scp, open_queue(home, config, cache)


def test_send_failed_on_network_error_is_retried_automatically(home, cache, tmp_path):
    """The queue's worker retries a send to a peer that is down, with a growing delay."""
    study, scp, queue = _send_to_a_down_peer(home, cache, tmp_path, retries=2, delay=0.5)
    seen: list[str] = []

    def progress(event: ev.Event) -> None:
        if event.job.state == QUEUED and "automatic retry" in event.job.message:
            seen.append(event.job.message)

    ev.bus.bind(ev.JOB_FINISHED, progress)
    try:
        job = queue.submit(SEND, "send", send_params("PACS", [study]))
        queue.start()
        deadline = time.monotonic() + 30
        while len(seen) < 2:  # both automatic retries failed too: the peer is still down
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "automatic retry 1 of 2" in seen[0] and "automatic retry 2 of 2" in seen[1]
        assert "refused the connection" in seen[0]
        with scp:
            queue.retry(job.id)  # a user's retry starts the count again
            while queue.get(job.id).state != DONE:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert len(scp.received()) == 3
    finally:
        ev.bus.unbind(ev.JOB_FINISHED, progress)
        queue.stop()


def test_failed_send_is_retried_once_the_peer_is_back(home, cache, tmp_path):
    study, scp, queue = _send_to_a_down_peer(home, cache, tmp_path, retries=3, delay=1.0)
    try:
        job = queue.submit(SEND, "send", send_params("PACS", [study]))
        queue.start()
        deadline = time.monotonic() + 30
        while queue.get(job.id).auto_retries == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with scp:
            while queue.get(job.id).state != DONE:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert len(scp.received()) == 3
        assert queue.get(job.id).auto_retries == 0
    finally:
        queue.stop()


@pytest.mark.parametrize("error", [
    SendFailed("1 of 2 instances were refused by PACS"),
    CommitmentUnanswered("2 instances sent, but PACS did not report storage commitment"),
])
def test_send_the_peer_answered_is_not_retried(home, error):
    """Only network errors are retried: refused instances or a commitment never reported
    need a person (the same send would get the same answer)."""
    config = load_config(home)
    config.client.send_retry_delay = 0.1
    queue = JobQueue(home, config)

    def refused(ctx: JobContext) -> None:
        raise error

    queue.runners[SEND] = refused
    job = queue.submit(SEND, "send", send_params("PACS", ["1.2.3"]))
    try:
        queue.start()
        deadline = time.monotonic() + 30
        while not queue.get(job.id).finished:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        record = queue.get(job.id)
        assert (record.state, record.exit_code, record.auto_retries) == ("failed", 6, 0)
    finally:
        queue.stop()
