"""Benchmark: the study viewer, offscreen, against DCMTK's dcmj2pnm on the same files.

1. open study → first image painted, 500-instance 512×512 CT series (target ≤ 300 ms);
2. scrolling rate through it, each frame decoded, rendered to a QImage and painted
   (closed loop: the next slice is asked for once the previous one is on screen;
   target ≥ 60 frames/s uncompressed), also for JPEG 2000 lossless and JPEG-LS
   lossless copies, beside dcmj2pnm's / dcml2pnm's per-frame time on the same pixels
   (one multi-frame file, `--all-frames`, raw PNM output, so process start-up is
   amortised; DCMTK 3.6.7 cannot decode J2K, so its column uses the uncompressed twin);
3. peak RSS while scrolling 2000 instances with the default 1 GiB frame cache
   (must stay under the cache limit + 300 MB).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_viewer.py \
        [--instances 500] [--compressed 100] [--memory-instances 2000] [--cache-mb 1024]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from factory import make_ct  # noqa: E402
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, generate_uid  # noqa: E402

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def phantom(index: int, size: int) -> np.ndarray:
    """A CT-like slice (body, bone ring, lungs, noise) so compression ratios are realistic."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    img = np.zeros((size, size), dtype=np.float64)  # air = 0 (HU -1024)
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 < 1
    img[body] = 1064
    img[((x / 0.8) ** 2 + (y / 0.6) ** 2 < 1) & ~((x / 0.75) ** 2 + (y / 0.55) ** 2 < 1)] = 2000
    for cx in (-0.35, 0.35):
        img[((x - cx) / 0.25) ** 2 + (y / (0.35 + 0.001 * (index % 50))) ** 2 < 1] = 200
    img += rng.normal(0, 8, img.shape) * body
    return np.clip(img, 0, 4095).astype(np.uint16)


def write_series(folder: Path, n: int, size: int, study_uid: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    paths = []
    for i in range(1, n + 1):
        ds = make_ct(study_uid, series_uid, i, rows=size, cols=size)
        ds.PixelData = phantom(i, size).tobytes()
        path = folder / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def compress_copy(paths: list[Path], folder: Path, syntax: pydicom.uid.UID) -> list[Path]:
    """J2K with pydicom's openjpeg encoder; JPEG-LS with DCMTK's dcmcjpls."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    study_uid, series_uid = generate_uid(), generate_uid()
    for path in paths:
        target = folder / path.name
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if syntax == JPEG2000Lossless:
            ds.compress(syntax)
            ds.save_as(target, enforce_file_format=True)
        else:
            tmp = folder / (path.name + ".unc")
            ds.save_as(tmp, enforce_file_format=True)
            subprocess.run(
                ["dcmcjpls", "--encode-lossless", str(tmp), str(target)], env=DCMTK_ENV, check=True
            )
            tmp.unlink()
        out.append(target)
    return out


def multiframe(paths: list[Path], target: Path) -> Path:
    """All slices as one multi-frame file (for DCMTK's --all-frames timing)."""
    first = pydicom.dcmread(paths[0])
    frames = [pydicom.dcmread(p).pixel_array for p in paths]
    first.NumberOfFrames = len(frames)
    first.PixelData = np.stack(frames).tobytes()
    first.save_as(target, enforce_file_format=True)
    return target


def dcmtk_per_frame(tool: str, path: Path, frames: int, out_dir: Path) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run(
        [tool, "--all-frames", "--use-window", "1", str(path), str(out_dir / "f")],
        env=DCMTK_ENV,
        check=True,
        capture_output=True,
    )
    return (time.perf_counter() - start) / frames


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children_rss_mb() -> float:
    """RSS of the decoder worker processes (not part of this process's figure)."""
    total = 0.0
    for child in multiprocessing.active_children():
        try:
            with open(f"/proc/{child.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


class Bench:
    def __init__(self, home: Path, cache_bytes: int) -> None:
        from PySide6.QtWidgets import QApplication

        os.environ["GEARVIEW_HOME"] = str(home)
        from gearview.config import load_config
        from gearview.home import Home
        from gearview.store import Cache

        self.app = QApplication.instance() or QApplication([])
        self.home = Home(home).ensure()
        self.config = load_config(self.home)
        self.config.viewer.frame_cache_bytes = cache_bytes
        self.cache = Cache(self.home, self.config)
        from gearview.imaging.isolate import IsolatedDecoder

        # as in the main window: decoder processes shared by viewers, started with the first
        self.isolated = IsolatedDecoder(workers=2)
        self.isolated.start()

    def add(self, paths: list[Path]) -> None:
        for path in paths:
            self.cache.add_file(path, "BENCH")

    def wait(self, predicate, timeout: float = 120.0) -> None:
        deadline = time.perf_counter() + timeout
        while not predicate():
            self.app.processEvents()
            if time.perf_counter() > deadline:
                raise TimeoutError("viewer did not deliver in time")
            time.sleep(0.0002)

    def open(self, study_uid: str):
        from gearview.ui.viewer import ViewerWindow

        start = time.perf_counter()
        viewer = ViewerWindow(self.cache, study_uid, self.config, isolated=self.isolated)
        viewer.resize(1000, 800)
        viewer.show()
        view = viewer.viewports[0].view
        self.wait(lambda: view.image_paints > 0)
        return viewer, time.perf_counter() - start

    def scroll(self, viewer, memory: bool = False) -> tuple[float, int, float]:
        """Walk every slice from the first; returns (frames/s, frames, peak RSS MB)."""
        vp = viewer.viewports[0]
        view = vp.view
        vp.show_position(0)
        self.wait(
            lambda: (
                vp.position == 0 and vp.last is not None and vp.last.record is vp.series.slice(0)[0]
            )
        )
        peak = rss_mb()
        start = time.perf_counter()
        for pos in range(1, vp.count):
            record = vp.series.slice(pos)[0]
            vp.show_position(pos)
            self.wait(lambda r=record: vp.last.record is r)
            view.repaint()
            if memory and pos % 50 == 0:
                peak = max(peak, rss_mb())
        elapsed = time.perf_counter() - start
        return (vp.count - 1) / elapsed, vp.count - 1, max(peak, rss_mb())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument(
        "--compressed", type=int, default=100, help="instances in the J2K / JPEG-LS series"
    )
    parser.add_argument("--memory-instances", type=int, default=2000)
    parser.add_argument("--cache-mb", type=int, default=1024)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gv-bench-viewer-") as tmp_name:
        tmp = Path(tmp_name)
        bench = Bench(tmp / "home", args.cache_mb << 20)
        rows = []

        # memory first, while the process holds nothing else
        if args.memory_instances:
            study_m = generate_uid()
            bench.add(write_series(tmp / "mem", args.memory_instances, args.size, study_m))
            baseline = rss_mb()
            viewer, _ = bench.open(study_m)
            fps_m, frames_m, peak = bench.scroll(viewer, memory=True)
            # ru_maxrss is monotone: read now, it is this phase's true peak (between samples too)
            peak = max(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            cache_mb = viewer.frames.bytes / 2**20
            viewer.shutdown()
            after = rss_mb()
            children = children_rss_mb()
            limit = args.cache_mb + 300
            rows.append(
                (
                    f"peak RSS scrolling {frames_m + 1} instances",
                    f"{peak:.0f} MB",
                    f"limit {limit} MB (cache {args.cache_mb} MiB + 300); before open "
                    f"{baseline:.0f} MB; frame cache held {cache_mb:.0f} MiB; {fps_m:.0f} f/s; "
                    f"after closing the viewer {after:.0f} MB; 2 decoder processes "
                    f"{children:.0f} MB more",
                )
            )

        study = generate_uid()
        paths = write_series(tmp / "ct", args.instances, args.size, study)
        bench.add(paths)
        opens = []
        for _ in range(3):
            viewer, first = bench.open(study)
            opens.append(first)
            viewer.shutdown()
        viewer, _ = bench.open(study)
        fps, frames, _ = bench.scroll(viewer)
        viewer.shutdown()
        rows.append(
            (
                f"open study ({args.instances} inst.) → first image painted",
                f"{opens[0] * 1000:.0f} ms",
                f"target ≤ 300 ms; reopened: {', '.join(f'{t * 1000:.0f}' for t in opens[1:])} ms",
            )
        )
        unc_mf = multiframe(paths[: args.compressed], tmp / "unc_mf.dcm")
        dcmj = dcmtk_per_frame("dcmj2pnm", unc_mf, args.compressed, tmp / "pnm_unc")
        rows.append(
            (
                f"scroll uncompressed ({frames} frames)",
                f"{fps:.0f} frames/s",
                f"{1000 / fps:.1f} ms/frame; dcmj2pnm {dcmj * 1000:.1f} ms/frame",
            )
        )

        for name, syntax, tool in (
            ("JPEG 2000 lossless", JPEG2000Lossless, "dcmj2pnm"),
            ("JPEG-LS lossless", JPEGLSLossless, "dcml2pnm"),
        ):
            comp = compress_copy(paths[: args.compressed], tmp / name.replace(" ", "_"), syntax)
            bench.add(comp)
            uid = pydicom.dcmread(comp[0], stop_before_pixels=True).StudyInstanceUID
            viewer, first_c = bench.open(uid)
            fps_c, frames_c, _ = bench.scroll(viewer)
            viewer.shutdown()
            if syntax == JPEG2000Lossless:
                ref = f"dcmj2pnm n/a for J2K (uncompressed twin {dcmj * 1000:.1f} ms/frame)"
            else:
                comp_mf = tmp / "jls_mf.dcm"
                subprocess.run(
                    ["dcmcjpls", "--encode-lossless", str(unc_mf), str(comp_mf)],
                    env=DCMTK_ENV,
                    check=True,
                )
                ref_t = dcmtk_per_frame(tool, comp_mf, args.compressed, tmp / "pnm_jls")
                ref = f"{tool} {ref_t * 1000:.1f} ms/frame"
            rows.append(
                (
                    f"scroll {name} ({frames_c} frames)",
                    f"{fps_c:.0f} frames/s",
                    f"{1000 / fps_c:.1f} ms/frame; {ref}; first image {first_c * 1000:.0f} ms",
                )
            )

        bench.cache.close()
        bench.isolated.close()

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'gearview':>14}  reference / note")
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>14}  {note}")
    print(
        f"(ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, "
        f"{os.cpu_count()} CPUs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
