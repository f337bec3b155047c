"""Finding and running the real peers (DCMTK, Orthanc, dicom3tools, xorriso)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

#: Debian's DCMTK leaves Nagle on unless told: every instance would stall 40 ms.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def require(binary: str) -> str:
    """Path of a peer binary, or skip with the reason (CI installs them all)."""
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path is None:
        pytest.skip(f"{binary} is not installed (make test installs it as root)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def start_dcmtk(argv: list[str], log_path: Path, port: int) -> subprocess.Popen[bytes]:
    """Start a DCMTK server with TCP_NODELAY, its output appended to `log_path`, and wait
    until it listens on `port` (stopped again when it does not)."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(argv, env=DCMTK_ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=10)
    except TimeoutError:
        stop_process(process)
        raise
    return process


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate, and kill when it does not end within 5 s."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
