"""Benchmark: burn a 500-instance CT study to an ISO, and import that ISO.

Burn: gearview `export_iso` (DICOMDIR from the index, README/INDEX.HTM/JPEG
preview, pycdlib ISO 9660 + Joliet, fsynced) vs DCMTK `dcmmkdir` + `genisoimage
-J -r` + `sync` on the same files, same run. The reference needs conformant
file names, so its figure is shown with and without copying the files into a
staging tree first.
Import: gearview `import_path` of that ISO into a fresh home (validated,
fsynced, indexed) vs a plain extraction of its files with `xorriso -extract`.

    .venv/bin/python benchmarks/bench_media.py [--instances 500] [--size 512] [--repeat 3]
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

from gearview.home import Home  # noqa: E402
from gearview.media.export import BurnOptions, export_iso  # noqa: E402
from gearview.media.importer import import_path  # noqa: E402
from gearview.store import Cache  # noqa: E402

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    subprocess.run(cmd, check=True, cwd=cwd, env=DCMTK_ENV, capture_output=True)


def reference_burn(files: list[Path], work: Path, copy: bool) -> float:
    """dcmmkdir + genisoimage + sync; with `copy`, staging the files is timed too."""
    stage = work / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "DICOM").mkdir(parents=True)
    start = time.perf_counter()
    if not copy:
        for i, path in enumerate(files, 1):
            os.link(path, stage / "DICOM" / f"IM{i:06d}")
        start = time.perf_counter()
    else:
        for i, path in enumerate(files, 1):
            shutil.copyfile(path, stage / "DICOM" / f"IM{i:06d}")
    _run(["dcmmkdir", "+r", "DICOM"], cwd=stage)
    iso = work / "ref.iso"
    _run(["genisoimage", "-quiet", "-J", "-r", "-V", "GEARVIEW", "-o", str(iso), str(stage)])
    _run(["sync", str(iso)])
    elapsed = time.perf_counter() - start
    iso.unlink()
    return elapsed


def gearview_burn(cache: Cache, study_uid: str, target: Path) -> float:
    start = time.perf_counter()
    export_iso(cache, [study_uid], target, BurnOptions(medium="DVD"))
    return time.perf_counter() - start


def gearview_import(iso: Path, home: Path) -> tuple[float, int]:
    shutil.rmtree(home, ignore_errors=True)
    cache = Cache(Home(home))
    try:
        start = time.perf_counter()
        report = import_path(iso, cache)
        return time.perf_counter() - start, report.imported
    finally:
        cache.close()


def reference_import(iso: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    _run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(out)])
    _run(["sync"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--size", type=int, default=512, help="rows = columns")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for tool in ("dcmmkdir", "genisoimage", "xorriso"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    with tempfile.TemporaryDirectory(prefix="gv-bench-media-") as tmp:
        root = Path(tmp)
        sources = write_series(root / "src", args.instances, rows=args.size, cols=args.size)
        cache = Cache(Home(root / "home"))
        for path in sources:
            cache.add_file(path)
        (study,) = cache.studies()
        cached = [i.path for i in cache.instances(study_uid=study.study_instance_uid)]
        rows: dict[str, list[float]] = {
            k: [] for k in ("gv_burn", "ref_burn", "ref_burn_copy", "gv_import", "ref_import")
        }
        for _ in range(args.repeat):
            rows["gv_burn"].append(gearview_burn(cache, study.study_instance_uid, root / "gv.iso"))
            rows["ref_burn"].append(reference_burn(cached, root, copy=False))
            rows["ref_burn_copy"].append(reference_burn(cached, root, copy=True))
            took, imported = gearview_import(root / "gv.iso", root / "home2")
            assert imported == args.instances, imported
            rows["gv_import"].append(took)
            rows["ref_import"].append(reference_import(root / "gv.iso", root / "extract"))
        cache.close()
    best = {k: min(v) for k, v in rows.items()}
    mb = args.instances * args.size * args.size * 2 / 1e6
    print(f"{args.instances} x {args.size}x{args.size} CT ({mb:.0f} MB), best of {args.repeat}")
    print(f"{'operation':<48}{'gearview s':>12}{'reference s':>13}{'ratio':>8}")
    for label, ours, ref in (
        ("burn ISO (incl. PDI) vs dcmmkdir+genisoimage", "gv_burn", "ref_burn"),
        ("burn ISO vs copy+dcmmkdir+genisoimage", "gv_burn", "ref_burn_copy"),
        ("import ISO vs xorriso extract + sync", "gv_import", "ref_import"),
    ):
        print(f"{label:<48}{best[ours]:>12.2f}{best[ref]:>13.2f}{best[ours] / best[ref]:>8.2f}")


if __name__ == "__main__":
    main()
