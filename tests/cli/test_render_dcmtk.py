"""`gearview render` vs DCMTK dcmj2pnm (same window) on real files: mean |diff| ≤ 2 grey levels.

J2K: DCMTK 3.6.7 cannot decode it, so the reference is dcmj2pnm of an
uncompressed twin written by pydicom. JPEG-LS: DCMTK's JPEG-LS twin, dcml2pnm.
Known disagreement (not tested here): JPEG-lossy.dcm has an invalid SOS that
DCMTK's IJG decoder tolerates and libjpeg refuses; gearview says so.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from factory import make_ct
from peers.tools import DCMTK_ENV, require
from pydicom.data import get_testdata_file

from gearview.cli import main
from gearview.imaging import ImageSource
from gearview.imaging.luts import frame_params
from gearview.imaging.png import read_png

J2K = (pydicom.uid.JPEG2000, pydicom.uid.JPEG2000Lossless)
JLS = (pydicom.uid.JPEGLSLossless, pydicom.uid.JPEGLSNearLossless)

FILES = [
    ("CT_small.dcm", 1),  # CT, signed, no window → min-max
    ("MR_small.dcm", 1),  # MR with window
    ("MR_small_bigendian.dcm", 1),  # big endian
    ("MR-SIEMENS-DICOM-WithOverlays.dcm", 1),  # 60xx overlay
    ("examples_overlay.dcm", 1),
    ("RG3_J2KI.dcm", 1),  # MONOCHROME1 CR, lossy J2K
    ("693_J2KR.dcm", 1),  # J2K lossless
    ("US1_J2KR.dcm", 1),  # YBR_RCT J2K colour
    ("OT-PAL-8-face.dcm", 1),  # palette, no meta header
    ("examples_palette.dcm", 1),
    ("OBXXXX1A_rle_2frame.dcm", 2),  # palette US, RLE, multi-frame
    ("SC_rgb.dcm", 1),
    ("SC_rgb_16bit.dcm", 1),
    ("SC_rgb_rle_2frame.dcm", 2),
    ("SC_ybr_full_uncompressed.dcm", 1),
    ("SC_ybr_full_422_uncompressed.dcm", 1),
    ("SC_rgb_jpeg_dcmtk.dcm", 1),  # YBR_FULL JPEG baseline
    ("examples_ybr_color.dcm", 1),  # YBR_FULL_422 JPEG baseline
    ("JPGExtended.dcm", 1),  # 12-bit JPEG extended
    ("JPEG-LL.dcm", 1),  # JPEG lossless
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", 1),
    ("emri_small_jpeg_ls_lossless.dcm", 3),  # JPEG-LS multi-frame
    ("JPEGLSNearLossless_16.dcm", 1),
    ("emri_small_RLE.dcm", 5),
    ("vlut_04.dcm", 1),  # VOI LUT sequence
    ("mlut_18.dcm", 1),  # Modality LUT sequence
    ("eCT_Supplemental.dcm", 2),  # enhanced CT, per-frame window
    ("image_dfl.dcm", 1),  # deflated
    ("RG1_UNCI.dcm", 1),  # MONOCHROME1 CR, uncompressed
    ("US1_J2KI.dcm", 1),  # YBR_ICT
    ("OBXXXX1A.dcm", 1),  # palette US
    ("SC_rgb_jpeg_gdcm.dcm", 1),  # RGB JPEG lossless
    ("SC_rgb_dcmtk_+eb+cy+np.dcm", 1),  # YBR_FULL_422 JPEG, not subsampled in the stream
    ("SC_jpeg_no_color_transform.dcm", 1),  # RGB JPEG baseline without colour transform
    ("color3d_jpeg_baseline.dcm", 60),  # multi-frame YBR_FULL_422 JPEG
    ("rtdose.dcm", 7),  # multi-frame 32-bit dose grid
    ("explicit_VR-UN.dcm", 1),  # J2K with UN elements
]


def _reference_options(src: ImageSource, frame: int) -> list[str]:
    geo = src.geometry
    if geo.samples == 3 or geo.photometric == "PALETTE COLOR":
        return []
    params = frame_params(src.ds, frame - 1)
    if params.windows and "WindowCenter" not in src.ds:  # per-frame functional group window
        return ["--set-window", str(params.windows[0].center), str(params.windows[0].width)]
    if params.windows:
        return ["--use-window", "1"]
    if params.voi_luts:
        return ["--use-voi-lut", "1"]
    return ["--min-max-window"]


def _dcmtk_render(path: Path, src: ImageSource, frame: int, out: Path) -> np.ndarray:
    tool = "dcml2pnm" if src.transfer_syntax in JLS else "dcmj2pnm"
    require(tool)
    if src.transfer_syntax in J2K:
        twin = pydicom.dcmread(path)
        twin.decompress()
        path = out.with_suffix(".unc.dcm")
        twin.save_as(path)
    subprocess.run(
        [
            tool,
            "--write-png",
            "--frame",
            str(frame),
            *_reference_options(src, frame),
            str(path),
            str(out),
        ],
        env=DCMTK_ENV,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return read_png(out)


@pytest.mark.parametrize("name, frame", FILES)
def test_render_matches_dcmj2pnm(name, frame, tmp_path, home):
    path = Path(get_testdata_file(name, download=False))
    src = ImageSource(path)
    ref = _dcmtk_render(path, src, frame, tmp_path / "ref.png").astype(int)
    assert main(["render", str(path), "--frame", str(frame), "-o", str(tmp_path / "ours.png")]) == 0
    ours = read_png(tmp_path / "ours.png").astype(int)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).mean() <= 2.0


def test_render_with_explicit_window_matches(tmp_path, home):
    path = Path(get_testdata_file("CT_small.dcm", download=False))
    require("dcmj2pnm")
    subprocess.run(
        [
            "dcmj2pnm",
            "--write-png",
            "--set-window",
            "40",
            "400",
            str(path),
            str(tmp_path / "ref.png"),
        ],
        env=DCMTK_ENV,
        check=True,
        capture_output=True,
    )
    assert main(["render", str(path), "--window", "40,400", "-o", str(tmp_path / "ours.png")]) == 0
    diff = np.abs(read_png(tmp_path / "ours.png").astype(int) - read_png(tmp_path / "ref.png"))
    assert diff.mean() <= 2.0


@pytest.mark.parametrize("name", ["SC_rgb_32bit.dcm", "gdcm-US-ALOKA-16.dcm"])
def test_files_dcmtk_cannot_render_match_pydicom(name, tmp_path, home):
    """DCMTK 3.6.7 refuses 32-bit RGB and segmented palettes; check against pydicom's own LUTs."""
    path = Path(get_testdata_file(name, download=False))
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        expected = (pydicom.pixels.apply_color_lut(arr, ds) >> 8).astype(np.uint8)
    else:
        expected = (arr >> (ds.BitsStored - 8)).astype(np.uint8)
    assert main(["render", str(path), "-o", str(tmp_path / "ours.png")]) == 0
    assert np.array_equal(read_png(tmp_path / "ours.png"), expected)


@pytest.mark.parametrize(
    "photometric, shape", [("MONOCHROME2", "INVERSE"), ("MONOCHROME1", "IDENTITY")]
)
def test_presentation_lut_shape_matches_dcmj2pnm(photometric, shape, tmp_path, home):
    ds = make_ct("1.2.3", "1.2.3.4", 1, rows=32, cols=32)
    ds.PhotometricInterpretation = photometric
    ds.PresentationLUTShape = shape
    ds.save_as(tmp_path / "in.dcm", enforce_file_format=True)
    require("dcmj2pnm")
    subprocess.run(
        [
            "dcmj2pnm",
            "--write-png",
            "--use-window",
            "1",
            str(tmp_path / "in.dcm"),
            str(tmp_path / "ref.png"),
        ],
        env=DCMTK_ENV,
        check=True,
        capture_output=True,
    )
    assert main(["render", str(tmp_path / "in.dcm"), "-o", str(tmp_path / "ours.png")]) == 0
    diff = np.abs(read_png(tmp_path / "ours.png").astype(int) - read_png(tmp_path / "ref.png"))
    assert diff.mean() <= 2.0
