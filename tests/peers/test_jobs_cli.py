"""`gearview jobs`: the JSON list after a send, a failed send and its retry, cancel, interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from factory import add_study

from gearview.cli import main
from gearview.config import load_config, save_config
from gearview.jobqueue import INTERRUPTED, JSON_KEYS, RUNNING, SEND, JobQueue
from gearview.net.tasks import send_params
from peers.storescp import StoreSCP
from peers.tools import free_port

pytestmark = pytest.mark.peers


def jobs_json(capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["jobs", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_jobs_json_after_a_send_then_failed_send_and_retry(home, cache, tmp_path, capsys):
    study = add_study(cache, tmp_path / "in", 3)
    port = free_port()
    config = load_config(home)
    with StoreSCP(tmp_path / "out", port=port) as scp:
        config.nodes = [scp.node("PACS")]
        save_config(home, config)
        assert main(["send", "PACS", study]) == 0
    (done,) = jobs_json(capsys)
    assert tuple(done) == JSON_KEYS
    assert done["kind"] == "send" and done["state"] == "done"
    assert (done["done"], done["total"], done["node"]) == (3, 3, "PACS")
    assert done["study_uids"] == [study] and "3 of 3 sent" in done["message"]

    # storescp is stopped now: the send fails as unreachable (exit 5) and stays retryable
    assert main(["send", "PACS", study]) == 5
    failed = next(j for j in jobs_json(capsys) if j["id"] != done["id"])
    assert failed["state"] == "failed" and failed["message"]
    capsys.readouterr()
    with StoreSCP(tmp_path / "out2", port=port) as scp:
        assert main(["jobs", "retry", failed["id"][:6]]) == 0
        assert "3 of 3 sent" in capsys.readouterr().out
        assert len(scp.received()) == 3
    states = {j["id"]: j["state"] for j in jobs_json(capsys)}
    assert states == {done["id"]: "done", failed["id"]: "done"}


def test_jobs_table_and_one_line_errors(home, capsys):
    queue = JobQueue(home, load_config(home))
    record = queue.submit(SEND, "Send", send_params("PACS", ["1.2.3"]))
    assert main(["jobs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["JOB", "KIND", "STATE", "DONE", "NODE", "MESSAGE"]
    assert out[1].split()[:3] == [record.id, "send", "queued"]
    for argv, fragment in ((["jobs", "retry", "nosuch"], "no job 'nosuch'"),
                           (["jobs", "cancel", "nosuch"], "no job 'nosuch'")):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("gearview: error:") and fragment in err
    assert main(["jobs", "cancel", record.id]) == 0
    assert f"job {record.id} cancelled" in capsys.readouterr().out
    assert main(["jobs", "cancel", record.id]) == 1
    assert "already cancelled" in capsys.readouterr().err


SLOW_SEND = """
import sys, time
from gearview.cli import main
import gearview.net.send as send
real = send._store
def slow(*args, **kwargs):
    time.sleep(0.2)
    return real(*args, **kwargs)
send._store = slow
sys.exit(main(["send", "PACS", sys.argv[1]]))
"""


def _wait_running(home, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [r for r in JobQueue(home, load_config(home)).jobs() if r.state == RUNNING
                   and r.done >= 2]
        if running:
            return running[0].id
        time.sleep(0.1)
    raise AssertionError("the send never started")


def test_killed_send_is_interrupted_then_retry_completes(home, cache, tmp_path, capsys):
    """SIGKILL of a `gearview send` process: the job shows interrupted, `jobs retry` finishes it."""
    study = add_study(cache, tmp_path / "in", 20)
    with StoreSCP(tmp_path / "out") as scp:
        config = load_config(home)
        config.nodes = [scp.node("PACS")]
        save_config(home, config)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.Popen([sys.executable, "-c", SLOW_SEND, study], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            job_id = _wait_running(home)
            # while it runs, another process sees it running (its lock is held)
            assert JobQueue(home, config).get(job_id).state == RUNNING
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
        (job,) = jobs_json(capsys)
        assert job["id"] == job_id and job["state"] == INTERRUPTED
        sent_before = len(scp.received())
        assert 2 <= sent_before < 20
        assert main(["jobs", "retry", job_id]) == 0
        assert "20 of 20 sent" in capsys.readouterr().out
        assert len(scp.received()) == 20
