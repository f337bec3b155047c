"""Send a 500-instance synthetic CT study (512x512, 16-bit) to DCMTK storescp:
gearview's C-STORE SCU vs DCMTK storescu, in the same run, same files, same peer.

    .venv/bin/python benchmarks/bench_send.py [--instances 500] [--repeat 3]

Target (issue 4): gearview throughput >= 0.8x storescu.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from factory import write_series  # noqa: E402
from peers.storescp import StoreSCP  # noqa: E402
from peers.tools import DCMTK_ENV  # noqa: E402

from gearview.config import Config  # noqa: E402
from gearview.home import Home  # noqa: E402
from gearview.net.send import items_for, send_items  # noqa: E402
from gearview.store import Cache  # noqa: E402


def run_storescu(files: list[Path], port: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["storescu", "-aec", "STORESCP", "127.0.0.1", str(port), *map(str, files)],
        env=DCMTK_ENV,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def run_gearview(cache: Cache, study_uid: str, node, config: Config) -> float:
    """`gearview send NODE STUDY` as the app does it: instances from the index, files as stored."""
    start = time.perf_counter()
    items = items_for(cache, [study_uid])
    result = send_items(node, config, items)
    elapsed = time.perf_counter() - start
    assert result.ok and result.count("success") == len(items), "gearview send failed"
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gv-bench-send-") as tmp:
        root = Path(tmp)
        files = write_series(root / "study", args.instances, rows=512, cols=512)
        size = sum(f.stat().st_size for f in files)
        config = Config()
        cache = Cache(Home(root / "home"), config)
        for f in files:
            study_uid = cache.add_file(f).info.study_instance_uid
        files = [r.path for r in cache.instances(study_uid=study_uid)]
        rows = []
        for run in range(args.repeat + 1):
            out = root / f"out{run}"
            with StoreSCP(out) as scp:
                node = scp.node("BENCH", timeout=60)
                if run == 0:  # warm-up: imports, page cache
                    run_gearview(cache, study_uid, node, config)
                    run_storescu(files, scp.port)
                    continue
                dcmtk = run_storescu(files, scp.port)
                ours = run_gearview(cache, study_uid, node, config)
                rows.append((dcmtk, ours))
            shutil.rmtree(out)
        cache.close()
        print(
            f"send {args.instances} x 512x512 16-bit CT ({size / 1e6:.0f} MB) to storescp, "
            f"TCP_NODELAY=1, {args.repeat} runs"
        )
        print(
            f"{'run':>3}  {'storescu s':>10}  {'gearview s':>10}  {'storescu MB/s':>13}  "
            f"{'gearview MB/s':>13}  {'ratio':>6}"
        )
        for i, (dcmtk, ours) in enumerate(rows, 1):
            print(
                f"{i:>3}  {dcmtk:>10.2f}  {ours:>10.2f}  {size / 1e6 / dcmtk:>13.0f}  "
                f"{size / 1e6 / ours:>13.0f}  {dcmtk / ours:>6.2f}"
            )
        best_d = min(r[0] for r in rows)
        best_g = min(r[1] for r in rows)
        ratio = best_d / best_g
        print(
            f"best: storescu {best_d:.2f} s, gearview {best_g:.2f} s, "
            f"gearview throughput = {ratio:.2f}x storescu (target >= 0.80) "
            f"{'PASS' if ratio >= 0.8 else 'MISS'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
