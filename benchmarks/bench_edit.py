"""Benchmark: change Patient's Name and ID on a 500-instance study.

gearview (all-or-nothing, fsynced, indexed, Original Attributes recorded,
undo journal kept) vs DCMTK `dcmodify -nb` over copies of the same files
(one process, in place, no backup, no fsync), same run; plus `dcmodify -nb`
followed by `sync FILES`, which is what gearview guarantees (new files on disk
before success).

gearview does not parse pixel data: the header is spliced at the byte level
(gearview/edit/splice.py) and the rest of each file is copied kernel-side
(copy_file_range), on a small thread pool.

The same run also times a bare durable write of the same bytes (new files,
written and fsynced on 4 threads, nothing read, parsed or indexed): no
all-or-nothing editor can beat that on this disk.

    .venv/bin/python benchmarks/bench_edit.py [--instances 500] [--size 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factory import write_series  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def bench_gearview(home: Path, study_uid: str, round_: int) -> float:
    os.environ["GEARVIEW_HOME"] = str(home)
    from gearview.edit.study_edit import edit_study
    from gearview.home import Home
    from gearview.store import Cache

    cache = Cache(Home(home))
    try:
        start = time.perf_counter()
        result = edit_study(
            cache,
            study_uid,
            {"PatientName": f"Bench^Round{round_}", "PatientID": f"BENCH{round_}"},
            reason="benchmark",
        )
        elapsed = time.perf_counter() - start
        assert len(result.instances) == len(cache.instances(study_uid=study_uid))
        return elapsed
    finally:
        cache.close()


def bench_dcmodify(files: list[Path], round_: int, durable: bool = False) -> float:
    cmd = [
        "dcmodify",
        "-nb",
        "-m",
        f"PatientName=Bench^Round{round_}",
        "-m",
        f"PatientID=BENCH{round_}",
        *map(str, files),
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=DCMTK_ENV, capture_output=True)
    if durable:  # what gearview guarantees: the new files are on disk before success
        subprocess.run(["sync", *map(str, files)], check=True)
    return time.perf_counter() - start


def bench_durable_write(files: list[Path], folder: Path) -> float:
    """New copies of `files` written and fsynced on 4 threads, as an editor's floor."""
    payloads = [p.read_bytes() for p in files]
    folder.mkdir()

    def write(index: int) -> None:
        fd = os.open(folder / f"{index}.dcm", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, payloads[index])
            os.fsync(fd)
        finally:
            os.close(fd)

    os.sync()
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(len(payloads))))
    elapsed = time.perf_counter() - start
    shutil.rmtree(folder)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--size", type=int, default=512, help="rows = columns")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("dcmodify") is None:
        sys.exit("dcmodify (DCMTK) is not installed")
    with tempfile.TemporaryDirectory(prefix="gv-bench-edit-") as tmp:
        root = Path(tmp)
        study_uid = generate_uid()
        sources = write_series(
            root / "src", args.instances, study_uid=study_uid, rows=args.size, cols=args.size
        )
        copies = root / "dcmodify"
        shutil.copytree(root / "src", copies)
        home = root / "home"
        os.environ["GEARVIEW_HOME"] = str(home)
        from gearview.home import Home
        from gearview.store import Cache

        cache = Cache(Home(home))
        for path in sources:
            cache.add_file(path)
        cache.close()
        copy_files = sorted(copies.iterdir())
        megabytes = sum(p.stat().st_size for p in sources) / 1e6
        ours, theirs, synced, floor = [], [], [], []
        for round_ in range(args.repeat):
            floor.append(bench_durable_write(sources, root / f"floor{round_}"))
            theirs.append(bench_dcmodify(copy_files, round_))
            synced.append(bench_dcmodify(copy_files, round_ + 100, durable=True))
            ours.append(bench_gearview(home, study_uid, round_))
        best_ours, best_theirs, best_synced = min(ours), min(theirs), min(synced)
        print(
            f"edit PatientName+PatientID, {args.instances} instances "
            f"{args.size}x{args.size} 16-bit ({megabytes:.0f} MB), best of {args.repeat}"
        )
        print(f"{'tool':<44} {'seconds':>8} {'all runs':>24}")
        print(
            f"{'gearview edit (atomic, fsync, indexed, undo)':<44} {best_ours:>8.3f} "
            f"{' '.join(f'{t:.3f}' for t in ours):>24}"
        )
        print(
            f"{'dcmodify -nb (in place, one process)':<44} {best_theirs:>8.3f} "
            f"{' '.join(f'{t:.3f}' for t in theirs):>24}"
        )
        print(
            f"{'dcmodify -nb + sync FILES (durable)':<44} {best_synced:>8.3f} "
            f"{' '.join(f'{t:.3f}' for t in synced):>24}"
        )
        print(
            f"{'bare durable write (4 threads, floor)':<44} {min(floor):>8.3f} "
            f"{' '.join(f'{t:.3f}' for t in floor):>24}"
        )
        print(f"ratio gearview/dcmodify: {best_ours / best_theirs:.2f}")
        print(f"ratio bare durable write/dcmodify: {min(floor) / best_theirs:.2f}")
        print(f"ratio gearview/(dcmodify + sync): {best_ours / best_synced:.2f}")


if __name__ == "__main__":
    main()
