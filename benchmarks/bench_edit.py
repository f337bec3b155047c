"""Benchmark: change Patient's Name and ID on a 500-instance study.

gearview (all-or-nothing, fsynced, indexed, Original Attributes recorded,
undo journal kept) vs DCMTK `dcmodify -nb` over copies of the same files
(one process, in place, no backup, no fsync), same run; plus `dcmodify -nb`
followed by `sync FILES`, which is what gearview guarantees (new files on disk
before success).

gearview does not parse pixel data: the header is spliced at the byte level
(gearview/edit/splice.py) and the rest of each file is written with O_DIRECT
(gearview/platform/direct.py) on a small thread pool; one syncfs makes the
batch durable before it is swapped in. `--io portable` measures the file I/O
Windows and macOS get instead (buffered copies, an fsync per file).

Every tool starts alike: nothing left to write back, and its input files all
in the page cache ("warm", a study that just arrived) or none of them ("cold",
a study received yesterday; needs root). On ext4 without a journal, creating
files shortly (up to 5 minutes) after many were deleted nearby is slow, which
only gearview pays (dcmodify rewrites in place): this run deletes nothing
until it ends, but a run started right after another one measures it.

The same run also times a plain durable write of the same bytes (new files
written through the page cache and fsynced, on 4 threads, nothing read,
parsed or indexed): the naive way to write a study's worth of new files.

    .venv/bin/python benchmarks/bench_edit.py [--instances 500] [--size 512] [--repeat 3]
                                              [--io auto|portable|linux]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factory import write_series  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from gearview.platform import IO_CHOICES, IO_ENV  # noqa: E402

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
SETTLE = 1.0
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


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
    """New copies of `files` written through the page cache and fsynced, on 4 threads.

    The copies are left until the end of the run: on ext4 without a journal,
    files deleted in the last minutes make every later file creation scan past
    their inodes, which would slow whichever tool runs next.
    """
    payloads = [p.read_bytes() for p in files]
    folder.mkdir()

    def write(index: int) -> None:
        fd = os.open(folder / f"{index}.dcm", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, payloads[index])
            os.fsync(fd)
        finally:
            os.close(fd)

    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(len(payloads))))
    return time.perf_counter() - start


def settle(inputs: list[Path], warm: bool) -> None:
    """Start every tool alike: nothing left to write back, and its input files all in
    the page cache (warm: a study that just arrived) or none of them (cold: one
    received yesterday; needs root to drop the page cache)."""
    os.sync()
    if warm:
        for path in inputs:
            path.read_bytes()
    else:
        DROP_CACHES.write_text("1")
    time.sleep(SETTLE)


def can_drop_caches() -> bool:
    return os.access(DROP_CACHES, os.W_OK)


def run_round(
    warm: bool, round_: int, root: Path, sources: list[Path], copies: list[Path],
    ours_files: list[Path], home: Path, study_uid: str,
) -> tuple[float, float, float, float]:
    """(gearview, dcmodify, dcmodify + sync, plain durable write) seconds."""
    settle(sources, warm)
    plain = bench_durable_write(sources, root / f"plain-{warm}-{round_}")
    settle(copies, warm)
    theirs = bench_dcmodify(copies, round_)
    settle(copies, warm)
    synced = bench_dcmodify(copies, round_ + 100, durable=True)
    settle(ours_files, warm)
    ours = bench_gearview(home, study_uid, round_)
    return ours, theirs, synced, plain


def report(label: str, runs: list[tuple[float, float, float, float]]) -> None:
    names = (
        "gearview edit (atomic, fsync, indexed, undo)",
        "dcmodify -nb (in place, one process)",
        "dcmodify -nb + sync FILES (durable)",
        "plain durable write (buffered, fsync, 4 threads)",
    )
    columns = list(zip(*runs, strict=True))
    best = [min(column) for column in columns]
    print(f"-- {label}")
    print(f"{'tool':<50} {'best s':>7}  all runs")
    for name, value, column in zip(names, best, columns, strict=True):
        print(f"{name:<50} {value:>7.3f}  {' '.join(f'{t:.3f}' for t in column)}")
    print(f"ratio gearview/dcmodify: {best[0] / best[1]:.2f}  "
          f"(median of runs {statistics.median(columns[0]) / statistics.median(columns[1]):.2f})")
    print(f"ratio gearview/(dcmodify + sync): {best[0] / best[2]:.2f}")
    print(f"ratio plain durable write/dcmodify: {best[3] / best[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--size", type=int, default=512, help="rows = columns")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", choices=("warm", "cold", "both"), default="both",
                        help="input files in the page cache or not (cold needs root)")
    parser.add_argument("--io", choices=IO_CHOICES, default="auto",
                        help="gearview's file I/O (GEARVIEW_IO): this OS's own or the portable one")
    args = parser.parse_args()
    os.environ[IO_ENV] = args.io
    if shutil.which("dcmodify") is None:
        sys.exit("dcmodify (DCMTK) is not installed")
    modes = [m for m in ("warm", "cold") if args.cache in (m, "both")]
    if "cold" in modes and not can_drop_caches():
        print("cold runs skipped: dropping the page cache needs root")
        modes.remove("cold")
    with tempfile.TemporaryDirectory(prefix="gv-bench-edit-") as tmp:
        root = Path(tmp)
        study_uid = generate_uid()
        sources = write_series(
            root / "src", args.instances, study_uid=study_uid, rows=args.size, cols=args.size
        )
        shutil.copytree(root / "src", root / "dcmodify")
        home = root / "home"
        os.environ["GEARVIEW_HOME"] = str(home)
        from gearview.home import Home
        from gearview.store import Cache

        cache = Cache(Home(home))
        for path in sources:
            cache.add_file(path)
        ours_files = [record.path for record in cache.instances(study_uid=study_uid)]
        cache.close()
        copies = sorted((root / "dcmodify").iterdir())
        megabytes = sum(p.stat().st_size for p in sources) / 1e6
        print(
            f"edit PatientName+PatientID, {args.instances} instances "
            f"{args.size}x{args.size} 16-bit ({megabytes:.0f} MB), {args.repeat} runs each, "
            f"gearview file I/O: {cache.io.name}"
        )
        for mode in modes:
            runs = [
                run_round(mode == "warm", round_ + 10 * len(mode), root, sources, copies,
                          ours_files, home, study_uid)
                for round_ in range(args.repeat)
            ]
            report(f"{mode}: input files {'in' if mode == 'warm' else 'not in'} the page cache",
                   runs)


if __name__ == "__main__":
    main()
