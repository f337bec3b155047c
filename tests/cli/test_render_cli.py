"""`gearview render` by SOP UID from the cache, and its error messages."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from factory import write_series
from pydicom.data import get_testdata_file

from gearview.cli import main
from gearview.imaging.png import read_png


def test_render_by_sop_uid_from_cache(cache, tmp_path):
    paths = write_series(tmp_path / "in", 2)
    stored = cache.add_file(paths[1], "TEST")
    out = tmp_path / "out.png"
    assert main(["render", stored.info.sop_instance_uid, "--window", "40,400", "-o", str(out)]) == 0
    img = read_png(out)
    assert img.shape == (64, 64) and img.dtype == np.uint8 and img.std() > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["render", "1.2.3.999", "-o", "x.png"], "neither a file nor an instance"),
        (["render", "{ct}", "--window", "40", "-o", "x.png"], "is not C,W"),
        (["render", "{ct}", "--window", "40,0", "-o", "x.png"], "width must be positive"),
        (["render", "{ct}", "--frame", "2", "-o", "x.png"], "out of range (1..1)"),
        (["render", "{sr}", "-o", "x.png"], "no pixel data"),
    ],
)
def test_render_errors_are_one_line(args, message, home, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = {
        "{ct}": get_testdata_file("CT_small.dcm", download=False),
        "{sr}": get_testdata_file("test-SR.dcm", download=False),
    }
    assert main([files.get(a, a) for a in args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_render_corrupt_frame_names_it(home, tmp_path, capsys):
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm", download=False))
    frames = [
        f[0] for f in pydicom.encaps.generate_fragmented_frames(ds.PixelData, number_of_frames=2)
    ]
    ds.PixelData = pydicom.encaps.encapsulate([frames[0], b"\x01\0\0\0" + b"\0" * 60])
    ds.save_as(tmp_path / "c.dcm")
    assert (
        main(["render", str(tmp_path / "c.dcm"), "--frame", "2", "-o", str(tmp_path / "o.png")])
        == 1
    )
    assert "frame 2" in capsys.readouterr().err
    assert (
        main(["render", str(tmp_path / "c.dcm"), "--frame", "1", "-o", str(tmp_path / "o.png")])
        == 0
    )


def test_undecodable_file_is_one_line_without_traceback(home, tmp_path, capsys):
    path = get_testdata_file("JPEG-lossy.dcm", download=False)  # invalid SOS (dcmj2pnm tolerates)
    assert main(["render", path, "-o", str(tmp_path / "o.png")]) == 1
    err = capsys.readouterr().err
    assert "frame 1: cannot decode JPEG Extended" in err and "Traceback" not in err
