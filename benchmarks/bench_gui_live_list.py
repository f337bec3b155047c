"""Benchmark: 500 CT instances sent with `storescu` until the GUI study list shows them all.

gearview: the real main window (offscreen) with its embedded server; the clock
runs from starting `storescu` until the live study list shows the study with
every instance (store + fsync + index + coalesced partial re-reads). Reference:
DCMTK `storescp` receiving the same files (time until `storescu` exits), same
run. Also reported: how many partial list re-reads the burst caused.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui_live_list.py \
        [--instances 500] [--size 512]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factory import write_series  # noqa: E402
from peers.tools import DCMTK_ENV, free_port, wait_for_port  # noqa: E402

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
TIMEOUT = 300.0


def storescu(port: int, aec: str, folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["storescu", "-aec", aec, "-aet", "BENCH", "+sd", "127.0.0.1", str(port), str(folder)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bench_storescp(folder: Path, work: Path) -> float:
    out = work / "storescp-out"
    out.mkdir()
    port = free_port()
    scp = subprocess.Popen(
        ["storescp", "-od", str(out), "+uf", str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        start = time.perf_counter()
        if storescu(port, "ANY-SCP", folder).wait(TIMEOUT) != 0:
            raise RuntimeError("storescu into storescp failed")
        return time.perf_counter() - start
    finally:
        scp.terminate()
        scp.wait(10)


def bench_headless(folder: Path, work: Path) -> float:
    """The same receive into gearview's server with no GUI attached (what the GUI costs)."""
    from gearview.config import load_config
    from gearview.home import Home
    from gearview.net.server import Server
    from gearview.store import Cache

    home = Home(work / "headless").ensure()
    config = load_config(home)
    config.server.port = free_port()
    cache = Cache(home, config)
    server = Server(home, config, cache)
    server.start()
    try:
        start = time.perf_counter()
        if storescu(config.server.port, config.server.ae_title, folder).wait(TIMEOUT) != 0:
            raise RuntimeError("storescu into the headless server failed")
        return time.perf_counter() - start
    finally:
        server.stop()
        cache.close()


def bench_gearview(folder: Path, work: Path, instances: int) -> tuple[float, float, int]:
    """(seconds until the list shows every instance, seconds until storescu exited, re-reads)."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from gearview.config import load_config
    from gearview.home import Home
    from gearview.net.server import Server
    from gearview.store import Cache
    from gearview.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    home = Home(work / "gvhome").ensure()
    config = load_config(home)
    config.server.port = free_port()
    cache = Cache(home, config)
    window = MainWindow(home, config, cache, Server(home, config, cache))
    window.show()
    window.start_server()

    def spin(until, limit: float = TIMEOUT) -> None:
        deadline = time.perf_counter() + limit
        loop = QEventLoop()
        while not until():
            if time.perf_counter() > deadline:
                raise TimeoutError("the study list did not catch up")
            QTimer.singleShot(5, loop.quit)
            loop.exec()

    try:
        spin(lambda: window.server.state.running and not window.study_list.loading, 30)
        model = window.study_list.model
        start = time.perf_counter()
        sender = storescu(config.server.port, config.server.ae_title, folder)
        sent: list[float] = []

        def done() -> bool:
            if not sent and sender.poll() is not None:
                sent.append(time.perf_counter() - start)
            record = model.record(0) if model.rowCount() == 1 else None
            return record is not None and record.number_of_study_related_instances == instances

        spin(done)
        shown = time.perf_counter() - start
        if sender.wait(TIMEOUT) != 0:
            raise RuntimeError("storescu into gearview failed")
        if not sent:
            sent.append(time.perf_counter() - start)
        return shown, sent[0], window.study_list.partial_loads
    finally:
        window.close()
        cache.close()
        app.processEvents()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    if not shutil.which("storescu") or not shutil.which("storescp"):
        print("DCMTK storescu/storescp not installed: run `make peers`", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="gv-bench-gui-") as tmp:
        work = Path(tmp)
        folder = work / "study"
        write_series(folder, args.instances, rows=args.size, cols=args.size)
        reference = bench_storescp(folder, work)
        headless = bench_headless(folder, work)
        shown, sent, reloads = bench_gearview(folder, work, args.instances)
    print(f"{args.instances} x {args.size}x{args.size} 16-bit CT, one association, TCP_NODELAY=1")
    print(f"{'measure':<50} {'gearview':>9} {'storescp':>9} {'ratio':>6}")
    rows = [
        ("headless server: storescu until exit (s)", headless),
        ("GUI running: storescu until exit (s)", sent),
        ("GUI running: storescu start -> list shows all (s)", shown),
    ]
    for label, value in rows:
        print(f"{label:<50} {value:>9.2f} {reference:>9.2f} {value / reference:>6.1f}")
    print(f"{'study-list re-reads for the burst':<50} {reloads:>9d} {'-':>9} {'-':>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
