"""STUDY-level C-FIND over an Orthanc holding 1000 studies: gearview vs DCMTK findscu.

    .venv/bin/python benchmarks/bench_find.py [--studies 1000] [--repeat 5]

Both ask for every study with the same return keys (SPEC §2.5) in the same
run against the same Orthanc. Target (issue 4): gearview within 1.2x of
findscu's wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from factory import make_ct  # noqa: E402
from peers.orthanc import orthanc_with  # noqa: E402
from peers.tools import DCMTK_ENV  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from gearview.config import Config  # noqa: E402
from gearview.net.client import find_on_nodes  # noqa: E402
from gearview.net.query import RETURN_KEYS, StudyQuery  # noqa: E402


def write_studies(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        ds = make_ct(generate_uid(), generate_uid(), 1, rows=8, cols=8,
                     patient_name=f"Bench^Patient{i:04d}", patient_id=f"B{i:05d}",
                     accession=f"ACC{i:05d}", study_date=f"2024{1 + i % 12:02d}{1 + i % 28:02d}")
        path = folder / f"{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def run_findscu(port: int, aet: str) -> tuple[float, int]:
    keys = ["-k", "QueryRetrieveLevel=STUDY"]
    for keyword in RETURN_KEYS:
        keys += ["-k", f"{keyword}="]
    start = time.perf_counter()
    out = subprocess.run(["findscu", "-S", "-aet", "GEARVIEW", "-aec", aet, "-v", *keys,
                          "127.0.0.1", str(port)], env=DCMTK_ENV, check=True,
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    return elapsed, out.stdout.count("Find Response:") + out.stderr.count("Find Response:")


def run_gearview(node, config: Config) -> tuple[float, int]:
    start = time.perf_counter()
    result = find_on_nodes([node], config, StudyQuery())
    elapsed = time.perf_counter() - start
    assert not result.errors, result.errors
    return elapsed, len(result.studies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gv-bench-find-") as tmp:
        root = Path(tmp)
        files = write_studies(root / "studies", args.studies)
        peer = orthanc_with(root / "orthanc", [files])
        try:
            node, config = peer.node("BENCH", timeout=120), Config()
            run_gearview(node, config)  # warm-up: imports, Orthanc's caches
            run_findscu(peer.dicom_port, peer.aet)
            rows = []
            for _ in range(args.repeat):
                dcmtk, n_dcmtk = run_findscu(peer.dicom_port, peer.aet)
                ours, n_ours = run_gearview(node, config)
                rows.append((dcmtk, ours, n_dcmtk, n_ours))
        finally:
            peer.stop()
    print(f"C-FIND STUDY level, all studies, Orthanc with {args.studies} studies, "
          f"{args.repeat} runs")
    print(f"{'run':>3}  {'findscu s':>9}  {'gearview s':>10}  {'matches':>15}  {'ratio':>6}")
    for i, (dcmtk, ours, n_d, n_o) in enumerate(rows, 1):
        print(f"{i:>3}  {dcmtk:>9.3f}  {ours:>10.3f}  {f'{n_d}/{n_o}':>15}  {ours / dcmtk:>6.2f}")
    best_d = min(r[0] for r in rows)
    best_g = min(r[1] for r in rows)
    ratio = best_g / best_d
    print(f"best: findscu {best_d:.3f} s, gearview {best_g:.3f} s, gearview/findscu wall time = "
          f"{ratio:.2f} (target <= 1.20) {'PASS' if ratio <= 1.2 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
