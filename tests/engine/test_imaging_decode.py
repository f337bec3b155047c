"""Decoding, failure modes (RELIABILITY 30), frame cache, end-to-end render of synthetic data."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from factory import make_ct
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.uid import MPEG2MPML, ExplicitVRLittleEndian, RLELossless

from gearview.imaging import (
    CannotDisplayError,
    DecodeError,
    FrameCache,
    ImageSource,
    RenderOptions,
    Window,
    render_frame,
)
from gearview.imaging.png import read_png, write_png


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _ct(tmp_path: Path, name: str = "ct.dcm", **kw) -> Dataset:
    ds = make_ct("1.2.3", "1.2.3.4", 1, rows=4, cols=4, **kw)
    return ds


def test_signed_monochrome1_rescaled_end_to_end(tmp_path):
    ds = _ct(tmp_path)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelRepresentation = 1
    ds.BitsStored = 12
    ds.RescaleSlope = 2
    ds.RescaleIntercept = 10
    ds.WindowCenter = 10
    ds.WindowWidth = 101
    stored = np.array([[0x0FFF, 0x0800, 0x07FF, 0]] * 4, dtype=np.uint16)  # -1, -2048, 2047, 0
    ds.PixelData = stored.tobytes()
    src = ImageSource(_save(ds, tmp_path / "m1.dcm"))
    out = render_frame(src).pixels
    # modality: 8, -4086, 4104, 10; window c=10 w=101 → u = (x-9.5)/100 + .5; MONOCHROME1 → 1-u
    assert out[0].tolist() == [131, 255, 0, 126]  # 8 → 1-.485 → 131; 10 → 1-.505 → 126


def test_user_window_and_invert(tmp_path):
    ds = _ct(tmp_path)
    ds.PixelData = np.array([[1024, 1064, 2048, 0]] * 4, dtype=np.uint16).tobytes()
    src = ImageSource(_save(ds, tmp_path / "ct.dcm"))
    plain = render_frame(src, options=RenderOptions(window=Window(40, 80))).pixels[0].tolist()
    assert plain == [0, 129, 255, 0]  # HU 0 → (0-39.5)/79+.5 = 0; HU 40 → .5063 → 129
    inverted = render_frame(src, options=RenderOptions(window=Window(40, 80), invert=True)).pixels[
        0
    ]
    assert inverted.tolist() == [255, 125, 0, 255]  # 1-.5063 → 125.9


def test_absurd_size_cannot_display_without_allocating(tmp_path):
    ds = _ct(tmp_path)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 100000
    ds.PixelData = b"\0" * 64
    path = _save(ds, tmp_path / "huge.dcm")
    tracemalloc.start()
    src = ImageSource(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert not src.displayable and "cannot display" in src.problem
    assert peak < 50 << 20
    with pytest.raises(CannotDisplayError):
        render_frame(src)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"Rows": 0}, "Rows=0"),
        ({"PixelData": b"\0" * 10}, "Pixel Data has 10 bytes"),
        ({"BitsAllocated": 12}, "Bits Allocated 12"),
    ],
)
def test_bad_headers_say_why(tmp_path, change, reason):
    ds = _ct(tmp_path)
    for key, value in change.items():
        setattr(ds, key, value)
    src = ImageSource(_save(ds, tmp_path / "bad.dcm"))
    assert reason in src.problem


def test_short_multiframe_frame_is_refused_but_first_frames_decode(tmp_path):
    ds = _ct(tmp_path)
    ds.NumberOfFrames = 3
    ds.PixelData = np.arange(16 * 2, dtype=np.uint16).tobytes()  # only two frames present
    src = ImageSource(_save(ds, tmp_path / "short.dcm"))
    assert src.decode(1)[0, 0] == 16
    with pytest.raises(DecodeError, match="frame 3"):
        src.decode(2)


def test_video_says_play_externally(tmp_path):
    ds = _ct(tmp_path)
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds["PixelData"].VR = "OB"
    ds.PixelData = pydicom.encaps.encapsulate([b"\0\0\1\xb3" + b"\0" * 60])
    src = ImageSource(_save(ds, tmp_path / "video.dcm"))
    assert src.problem == "video: play externally"


def test_non_image_has_no_pixels():
    src = ImageSource(Path(get_testdata_file("test-SR.dcm", download=False)))
    assert not src.displayable and "no pixel data" in src.problem


def test_corrupt_compressed_frame_names_frame(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm", download=False))
    frames = list(pydicom.encaps.generate_fragmented_frames(ds.PixelData, number_of_frames=2))
    good = frames[0][0]
    ds.PixelData = pydicom.encaps.encapsulate([good, b"\x01\0\0\0" + b"\0" * 60 + b"garbage"])
    src = ImageSource(_save(ds, tmp_path / "corrupt.dcm"))
    assert render_frame(src, 0).pixels.shape == (100, 100, 3)
    with pytest.raises(DecodeError, match=r"frame 2: cannot decode RLE Lossless"):
        render_frame(src, 1)


def test_missing_plugin_is_named(tmp_path):
    path = Path(get_testdata_file("MR_small_RLE.dcm", download=False))
    src = ImageSource(path)
    assert src.transfer_syntax == RLELossless

    decoder = get_decoder(RLELossless)
    plugins = {"pydicom": ("pydicom.pixels.decoders.rle", "_decode_frame"),
               "pylibjpeg": ("pydicom.pixels.decoders.pylibjpeg", "_decode_frame")}
    for label in plugins:  # as if no RLE decoder were installed
        decoder.remove_plugin(label)
    try:
        with pytest.raises(DecodeError) as info:
            src.decode(0)
    finally:
        for label, path in plugins.items():
            decoder.add_plugin(label, path)
    assert decoder.is_available
    assert "no decoder for RLE Lossless" in info.value.message
    assert info.value.hint == "install pylibjpeg-rle"


def test_overlay_plane_burned_in_white(tmp_path):
    ds = _ct(tmp_path)
    ds.PixelData = np.zeros((4, 4), dtype=np.uint16).tobytes()
    ds.WindowCenter, ds.WindowWidth = 40000, 10
    ds.add_new(0x60000010, "US", 2)  # overlay rows
    ds.add_new(0x60000011, "US", 2)  # overlay columns
    ds.add_new(0x60000050, "SS", [2, 3])  # origin (1-based row, col)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60003000, "OW", pydicom.pixels.pack_bits(np.array([1, 0, 0, 1], dtype=np.uint8)))
    src = ImageSource(_save(ds, tmp_path / "ovl.dcm"))
    out = render_frame(src).pixels
    assert np.argwhere(out == 255).tolist() == [[1, 2], [2, 3]]
    assert not render_frame(src, options=RenderOptions(overlays=False)).pixels.any()


def test_frame_cache_is_bounded_in_bytes_and_lru():
    cache = FrameCache(max_bytes=3000)
    arrays = [np.zeros(1000, dtype=np.uint8) for _ in range(4)]
    for i, arr in enumerate(arrays[:3]):
        cache.put(i, arr)
    assert cache.get(0) is arrays[0]  # 0 becomes most recent
    cache.put(3, arrays[3])
    assert 1 not in cache and 0 in cache and 3 in cache
    assert cache.bytes == 3000
    cache.put("big", np.zeros(5000, dtype=np.uint8))
    assert "big" not in cache and cache.bytes == 3000
    assert cache.discard(lambda key: key in (0, 2)) == 2
    assert cache.bytes == 1000 and 3 in cache


def test_png_round_trip(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)
    write_png(tmp_path / "g.png", grey)
    write_png(tmp_path / "c.png", rgb)
    assert (read_png(tmp_path / "g.png") == grey).all()
    assert (read_png(tmp_path / "c.png") == rgb).all()


def test_explicit_syntax_default_when_meta_has_none():
    src = ImageSource(Path(get_testdata_file("OT-PAL-8-face.dcm", download=False)))
    assert src.transfer_syntax.is_little_endian and src.transfer_syntax != ExplicitVRLittleEndian
    assert render_frame(src).pixels.shape == (480, 640, 3)


def test_fragment_claiming_2gib_is_refused_without_allocating(tmp_path):
    ds = _ct(tmp_path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    ds["PixelData"].VR = "OB"
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f" + b"\0" * 100])
    path = _save(ds, tmp_path / "frag.dcm")
    raw = path.read_bytes()
    item = raw.index(b"\xfe\xff\x00\xe0", raw.index(b"\xfe\xff\x00\xe0") + 8)  # after the BOT
    path.write_bytes(raw[: item + 4] + (0x7FFFFFF0).to_bytes(4, "little") + raw[item + 8 :])
    tracemalloc.start()
    src = ImageSource(path)
    with pytest.raises(CannotDisplayError):
        render_frame(src)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "claims 2147483632 bytes" in src.problem
    assert peak < 50 << 20


def test_deflate_bomb_is_refused_before_inflating(tmp_path):
    ds = _ct(tmp_path)
    ds.Rows = ds.Columns = 8192
    ds.PixelData = bytes(8192 * 8192 * 2)  # 128 MiB of zeros deflates to ~130 KiB
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    path = _save(ds, tmp_path / "bomb.dcm")
    assert path.stat().st_size < 1 << 20
    del ds
    src = ImageSource(path)
    tracemalloc.start()
    with pytest.raises(DecodeError, match="deflate bomb"):
        src.decode(0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100 << 20  # bounded by the inflate cap, not the 128 MiB body
