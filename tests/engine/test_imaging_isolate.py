"""Compressed frames decoded in worker processes: same pixels, crashes and memory hogs contained."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from gearview.imaging import DecodeError, ImageError, ImageSource, isolate


def crash(path: str, index: int) -> np.ndarray:
    """Stands in for a C decoder that segfaults (runs in the worker process)."""
    os._exit(11)


def hog(path: str, index: int) -> np.ndarray:
    """Stands in for a decoder asked to allocate gigabytes by a crafted header."""
    return np.ones(1 << 30, dtype=np.uint8)


@pytest.fixture
def decoder():
    dec = isolate.IsolatedDecoder(workers=1, memory_limit=256 << 20)
    yield dec
    dec.close()


def test_isolated_decode_matches_in_process(decoder):
    path = Path(get_testdata_file("MR_small_jp2klossless.dcm", download=False))
    assert np.array_equal(decoder.decode(path, 0), ImageSource(path).decode(0))


def test_decoder_errors_come_back_as_decode_errors(decoder, tmp_path):
    bad = tmp_path / "not.dcm"
    bad.write_bytes(b"\0" * 10)
    with pytest.raises(ImageError, match="no pixel data"):
        decoder.decode(bad, 0)


def test_crash_is_contained_and_pool_restarts(decoder, monkeypatch):
    path = Path(get_testdata_file("MR_small_jp2klossless.dcm", download=False))
    monkeypatch.setattr(isolate, "_decode", crash)
    with pytest.raises(DecodeError, match="frame 1: the decoder crashed"):
        decoder.decode(path, 0)
    monkeypatch.undo()
    assert decoder.decode(path, 0).shape == (64, 64)


def test_memory_hog_is_refused(decoder, monkeypatch):
    path = Path(get_testdata_file("MR_small_jp2klossless.dcm", download=False))
    monkeypatch.setattr(isolate, "_decode", hog)
    with pytest.raises(DecodeError, match="more memory than allowed"):
        decoder.decode(path, 0)
