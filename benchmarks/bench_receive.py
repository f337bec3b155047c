"""Receive speed: DCMTK storescu -> gearview serve vs DCMTK storescp vs Orthanc, same run.

500 synthetic CT instances, 512x512 16-bit (~256 MB), generated once into a
temp folder; sent with one association and with 4 in parallel. gearview
stores with fsync (spool, rename, index commit) before every acknowledgement;
storescp writes without fsync; Orthanc indexes into SQLite before answering.

It also measures, in the same run, what the fsyncs alone cost on this disk:
the same files written one by one by a bare loop (write, rename) with and
without the sync sequence a receiver that acknowledges only durable
instances needs (fsync, directory fsync). storescp plus that difference is
the best any such receiver can do here, since a C-STORE SCU waits for each
acknowledgement before it sends the next instance.

    .venv/bin/python benchmarks/bench_receive.py [--count N] [--runs R] [--io portable]

`--io portable` has `gearview serve` use the file I/O Windows and macOS get
(named spool files created per instance instead of unnamed ones opened ahead).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from factory import write_series  # noqa: E402

from gearview.platform import IO_CHOICES, IO_ENV, choose_file_io  # noqa: E402

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
ORTHANC = "/usr/sbin/Orthanc"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def send(files: list[Path], port: int, aet: str, parallel: int) -> float:
    """Wall time for storescu to deliver `files` over `parallel` associations."""
    groups = [files[i::parallel] for i in range(parallel)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["storescu", "-aec", aet, "127.0.0.1", str(port), *map(str, group)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for group in groups
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode(errors='replace')[-500:]}")
    return time.perf_counter() - start


class Gearview:
    name = "gearview serve (fsync)"
    aet = "GEARVIEW"

    def __init__(self, work: Path) -> None:
        self.home = work / "gearview-home"
        env = {**os.environ, "GEARVIEW_HOME": str(self.home)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gearview",
                "serve",
                "--port",
                "0",
                "--aet",
                self.aet,
                "--bind",
                "127.0.0.1",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on"):
            raise RuntimeError(f"gearview serve did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def reset(self) -> None:
        """Empty the cache between runs so every run stores new files."""
        self.stop()
        shutil.rmtree(self.home)
        self.__init__(self.home.parent)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


class Storescp:
    name = "DCMTK storescp"
    aet = "STORESCP"

    def __init__(self, work: Path) -> None:
        self.out = work / "storescp"
        self.out.mkdir(exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                "storescp",
                "--fork",
                "-aet",
                self.aet,
                "-pdu",
                "131072",
                "-od",
                str(self.out),
                str(self.port),
            ],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def reset(self) -> None:
        for path in self.out.iterdir():
            path.unlink()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Orthanc:
    name = "Orthanc (indexed)"
    aet = "ORTHANC"

    def __init__(self, work: Path) -> None:
        self.work = work / "orthanc"
        self.work.mkdir(exist_ok=True)
        self.port = free_port()
        self._start()

    def _start(self) -> None:
        storage = self.work / "storage"
        storage.mkdir(exist_ok=True)
        config = {
            "Name": "bench",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": self.aet,
            "DicomPort": self.port,
            "HttpPort": free_port(),
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "StorageCompression": False,
            "Plugins": [],
            "DicomServerEnabled": True,
            "ConcurrentJobs": 2,
        }
        path = self.work / "orthanc.json"
        path.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            [ORTHANC, str(path)],
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def reset(self) -> None:
        self.stop()
        shutil.rmtree(self.work / "storage")
        self._start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def write_floor(files: list[Path], folder: Path, sync: bool) -> float:
    """Seconds to write `files` one by one (durably with `sync`), with nothing else to do."""
    folder.mkdir()
    payloads = [p.read_bytes() for p in files]
    os.sync()
    start = time.perf_counter()
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        for i, payload in enumerate(payloads):
            spool, target = folder / f"{i}.part", folder / f"{i}.dcm"
            fd = os.open(spool, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, payload)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(spool, target)
            if sync:
                os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    elapsed = time.perf_counter() - start
    shutil.rmtree(folder)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2, help="runs per case; the best is reported")
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument("--io", choices=IO_CHOICES, default="auto",
                        help="gearview's file I/O (GEARVIEW_IO): this OS's own or the portable one")
    args = parser.parse_args()
    os.environ[IO_ENV] = args.io
    if not shutil.which("storescu") or not shutil.which("storescp"):
        print("DCMTK is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="gv-bench-") as tmp:
        work = Path(tmp)
        files = write_series(work / "src", args.count, rows=512, cols=512)
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        print(
            f"{len(files)} instances, {megabytes:.0f} MB, storescu with TCP_NODELAY=1, "
            f"best of {args.runs}, gearview file I/O: {choose_file_io().name}",
            flush=True,
        )
        targets = [Gearview(work), Storescp(work)]
        if not args.no_orthanc and os.path.exists(ORTHANC):
            targets.append(Orthanc(work))
        results: dict[tuple[str, int], float] = {}
        floors = {
            sync: min(write_floor(files, work / f"floor{i}", sync) for i in range(args.runs))
            for sync in (False, True)
        }
        try:
            for parallel in (1, 4):
                for target in targets:
                    best = float("inf")
                    for _ in range(args.runs):
                        target.reset()
                        best = min(best, send(files, target.port, target.aet, parallel))
                    results[(target.name, parallel)] = best
        finally:
            for target in targets:
                target.stop()
        print(
            f"{'receiver':<26}{'assocs':>7}{'seconds':>9}{'inst/s':>9}{'MB/s':>8}"
            f"{'vs storescp':>13}"
        )
        for parallel in (1, 4):
            reference = results[(Storescp.name, parallel)]
            for target in targets:
                seconds = results[(target.name, parallel)]
                print(
                    f"{target.name:<26}{parallel:>7}{seconds:>9.2f}{len(files) / seconds:>9.0f}"
                    f"{megabytes / seconds:>8.0f}{reference / seconds:>12.2f}x"
                )
        storescp = results[(Storescp.name, 1)]
        sync_cost = floors[True] - floors[False]
        print(
            f"bare write loop: {floors[False]:.2f} s, with fsync + directory fsync: "
            f"{floors[True]:.2f} s; the syncs cost {sync_cost:.2f} s, so a receiver with "
            f"fsync on can reach at best {storescp / (storescp + sync_cost):.2f}x storescp "
            f"(1 association) on this disk"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
