"""Storage faults under the SCP: SIGKILL mid-transfer, disk full (RELIABILITY.md 22, 24, 25)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from factory import write_series

from gearview.config import load_config, save_config
from gearview.store import Cache
from gearview.store.check import check_store, rebuild_index
from peers.scp import AET, dcmtk, echo, running_server
from peers.tools import DCMTK_ENV, require

pytestmark = pytest.mark.peers
ACKED = re.compile(r"Received Store Response \(Success\)")
SENDING = re.compile(r"Sending file: (\S+)")


def _serve(home_root: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "GEARVIEW_HOME": str(home_root)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gearview",
            "serve",
            "--port",
            "0",
            "--aet",
            AET,
            "--bind",
            "127.0.0.1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith(f"listening on {AET}@127.0.0.1:"), line
    return proc, int(line.rsplit(":", 1)[1])


def test_sigkill_mid_transfer_loses_no_acknowledged_instance(home, tmp_path):
    files = write_series(tmp_path / "src", 200, rows=128, cols=128)
    proc, port = _serve(home.root)
    acked: list[str] = []
    try:
        sender = subprocess.Popen(
            [require("storescu"), "-v", "-aec", AET, "127.0.0.1", str(port), *map(str, files)],
            env=DCMTK_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        current = None
        for line in sender.stdout:
            if match := SENDING.search(line):
                current = match.group(1)
            elif ACKED.search(line) and current:
                acked.append(current)
                if len(acked) == 60:
                    proc.send_signal(signal.SIGKILL)
        sender.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert 60 <= len(acked) < 200, "the kill must land in the middle of the run"

    # restart: spool leftovers of the crash are cleared at server start
    proc, port = _serve(home.root)
    try:
        assert echo(port).returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0

    config = load_config(home)
    files_dir = config.storage_dir(home)
    report = check_store(home, files_dir)
    if not report.clean:
        rebuild_index(home, files_dir)
        report = check_store(home, files_dir)
    assert report.clean, report
    assert report.spool_leftovers == 0
    cache = Cache(home, config)
    try:
        for path in acked:
            uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
            record = cache.instance(uid)
            assert record is not None, f"acknowledged {Path(path).name} is missing"
            assert pydicom.dcmread(record.path).PixelData == pydicom.dcmread(path).PixelData
    finally:
        cache.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs as the storage folder (needs root; skipped otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_answers_a700_and_keeps_running(home, tmp_path, small_disk):
    config = load_config(home)
    config.storage.folder = str(small_disk / "files")
    save_config(home, config)
    files = write_series(tmp_path / "src", 8, rows=512, cols=512)  # 8 x 512 KiB into 2 MiB
    with running_server(home) as (scp, port, cache):
        result = dcmtk(
            "storescu", "-v", "-nh", "-aec", AET, "127.0.0.1", str(port), *map(str, files)
        )
        log = result.stdout + result.stderr
        stored = log.count("Received Store Response (Success)")
        assert 0 < stored < len(files)
        assert "Refused: OutOfResources" in log  # 0xA700
        assert "storage full" in scp.state.last_error.lower() or "no space" in scp.state.last_error
        assert echo(port).returncode == 0
        assert cache.counts()["instance"] == stored
        assert not list(cache.spool_dir.iterdir())
        for record in cache.instances():
            pydicom.dcmread(record.path)
        time.sleep(0.1)
    report = check_store(home, Path(config.storage.folder))
    assert report.clean, report
