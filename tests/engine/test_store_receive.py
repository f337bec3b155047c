"""The receive fast path (header from memory, own file meta encoder) agrees with pydicom."""

from __future__ import annotations

import copy
import io
import random
import struct
import sys
import time
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from factory import make_ct
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from gearview.errors import InvalidDicomError
from gearview.platform import FileIO
from gearview.store import Cache
from gearview.store.cache import _pydicom_file_meta, build_file_meta, encode_file_meta
from gearview.store.header import info_from_buffer, read_instance_info
from gearview.store.records import InstanceInfo


def _split(raw: bytes) -> tuple[bytes, bytes]:
    meta_len = struct.unpack("<L", raw[140:144])[0]
    return raw[: 144 + meta_len], raw[144 + meta_len:]


def _encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _both(tmp_path: Path, raw: bytes) -> tuple[InstanceInfo | str, InstanceInfo | None]:
    """(read_instance_info's answer or "refused", info_from_buffer's answer) for one file."""
    path = tmp_path / "f.dcm"
    path.write_bytes(raw)
    try:
        slow: InstanceInfo | str = read_instance_info(path)
    except InvalidDicomError:
        slow = "refused"
    meta = pydicom.filereader.read_file_meta_info(path)
    fast = info_from_buffer(_split(raw)[1], str(meta.TransferSyntaxUID),
                            str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID))
    return slow, fast


@pytest.mark.parametrize("ae", ["", "A", "STORESCU"])
@pytest.mark.parametrize("sop_uid", ["1.2", "1.2.3", "1.2.840.10008.99.1234567"])
def test_file_meta_encoding_is_byte_identical_to_pydicom(ae: str, sop_uid: str) -> None:
    meta = build_file_meta(CTImageStorage, sop_uid, ExplicitVRLittleEndian, ae)
    expected = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(expected, copy.deepcopy(meta), enforce_standard=True)
    assert encode_file_meta(meta) == expected.getvalue()


def test_file_meta_with_other_elements_goes_through_pydicom() -> None:
    meta = build_file_meta(CTImageStorage, generate_uid(), ExplicitVRLittleEndian, "X")
    meta.PrivateInformationCreatorUID = "1.2.3"
    assert encode_file_meta(meta) == _pydicom_file_meta(copy.deepcopy(meta))
    minimal = FileMetaDataset()
    minimal.MediaStorageSOPClassUID = CTImageStorage
    minimal.MediaStorageSOPInstanceUID = "1.2.3"
    minimal.TransferSyntaxUID = ExplicitVRLittleEndian
    assert b"PYDICOM" in encode_file_meta(minimal)  # pydicom fills in what is missing


def _with_sequences(ts: str) -> Dataset:
    ds = make_ct(generate_uid(), generate_uid(), rows=8, cols=8, transfer_syntax=ts)
    item = Dataset()
    item.CodeValue = "1"
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3"
    item.ReferencedImageSequence = Sequence([inner])
    ds.ProcedureCodeSequence = Sequence([item, Dataset()])
    return ds


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("value", ["Doe^Jane", " Lead", "Trail ", "A\\B", "Zoë", "", "x=y^z"])
def test_fast_header_equals_pydicom_header(tmp_path: Path, ts: str, value: str) -> None:
    ds = _with_sequences(ts)
    ds.PatientName = value
    ds.StudyDescription = value
    ds.InstanceNumber = "7"
    slow, fast = _both(tmp_path, _encode(ds))
    assert isinstance(slow, InstanceInfo)
    assert fast is None or fast == slow
    if value.isascii() and "\\" not in value:
        assert fast == slow  # the common case really takes the fast path


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "SC_rgb_rle.dcm", "MR_small_implicit.dcm",
                                  "rtplan.dcm", "emri_small.dcm"])
def test_fast_header_equals_pydicom_on_real_files(tmp_path: Path, name: str) -> None:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not available offline")
    slow, fast = _both(tmp_path, Path(path).read_bytes())
    assert fast is None or fast == slow
    assert fast is not None or name == "SC_rgb_rle.dcm"


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_damaged_data_is_never_accepted_by_the_fast_path_alone(tmp_path: Path, ts: str) -> None:
    good = _encode(_with_sequences(ts))
    head, body = _split(good)
    rnd = random.Random(20261125)
    for _ in range(150):
        damaged = bytearray(body)
        if rnd.random() < 0.4:
            damaged = damaged[: rnd.randrange(len(damaged))]
        else:
            for _ in range(rnd.randint(1, 4)):
                damaged[rnd.randrange(min(len(damaged), 1500))] = rnd.randrange(256)
        slow, fast = _both(tmp_path, head + bytes(damaged))
        # pydicom's own warnings (an invalid UI value) are reported by the full read only
        assert fast is None or (
            isinstance(slow, InstanceInfo)
            and replace(fast, warnings=[]) == replace(slow, warnings=[])
            and set(fast.warnings) <= set(slow.warnings)
        )


def test_truncated_pixel_data_defers_to_pydicom(tmp_path: Path) -> None:
    head, body = _split(_encode(make_ct(generate_uid(), generate_uid(), rows=16, cols=16)))
    # shorten Pixel Data and its declared length together: consistent but too short
    short = body[:-2]
    short = short[:-512 + 2 - 4] + struct.pack("<L", 510) + short[-510:]
    assert info_from_buffer(short, ExplicitVRLittleEndian, CTImageStorage, "1.2") is None
    assert _both(tmp_path, head + short)[0] == "refused"


def test_deflated_and_deep_data_defer_to_pydicom() -> None:
    ds = make_ct(generate_uid(), generate_uid(), rows=8, cols=8)
    assert info_from_buffer(_split(_encode(ds))[1], DeflatedExplicitVRLittleEndian,
                            CTImageStorage, "1.2") is None
    deep = b"".join(struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
                    + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) for _ in range(40))
    body = _split(_encode(ds))[1] + deep
    assert info_from_buffer(body, ExplicitVRLittleEndian, CTImageStorage, "1.2") is None


def test_received_truncated_data_is_refused_and_nothing_is_stored(cache: Cache) -> None:
    ds = make_ct(generate_uid(), generate_uid())
    body = _split(_encode(ds))[1]
    meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, "CT1")
    with pytest.raises(InvalidDicomError, match="truncated"):
        cache.add_received(meta, body[: len(body) // 2], source_ae="CT1")
    assert cache.counts()["instance"] == 0
    assert not list(cache.spool_dir.iterdir())
    assert not [p for p in cache.files_dir.rglob("*") if p.is_file()]


def test_received_check_refusal_stores_nothing(cache: Cache) -> None:
    ds = make_ct(generate_uid(), generate_uid())
    meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, "CT1")
    seen: list[InstanceInfo] = []

    def refuse(info: InstanceInfo) -> None:
        seen.append(info)
        raise InvalidDicomError("no")

    with pytest.raises(InvalidDicomError):
        cache.add_received(meta, _split(_encode(ds))[1], check=refuse)
    assert seen[0].sop_instance_uid == ds.SOPInstanceUID
    assert cache.counts()["instance"] == 0
    assert not list(cache.spool_dir.iterdir())


def test_received_file_is_byte_identical_to_a_pydicom_written_one(cache: Cache) -> None:
    ds = make_ct(generate_uid(), generate_uid())
    body = _split(_encode(ds))[1]
    meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, "CT1")
    stored = cache.add_received(meta, body, source_ae="CT1")
    expected = io.BytesIO()
    expected.write(b"\x00" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(expected, copy.deepcopy(meta), enforce_standard=True)
    assert stored.path.read_bytes() == expected.getvalue() + body
    assert stored.info == read_instance_info(stored.path)


def _wait_for_reserve(cache: Cache) -> None:
    for _ in range(500):
        if cache._reserve is not None and cache._reserve._ready.full():
            return
        time.sleep(0.01)
    raise AssertionError("the spool reserve was never filled")


def _refuse(info: InstanceInfo) -> None:
    raise InvalidDicomError("no")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_TMPFILE is Linux file I/O")
def test_reserved_unnamed_spool_files_are_used_and_leave_nothing(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gearview.platform.linux import LinuxIO

    monkeypatch.setattr(cache, "io", LinuxIO())
    if not cache.reserve_spool_files():
        pytest.skip("no O_TMPFILE on this filesystem")
    try:
        _wait_for_reserve(cache)
        taken: list[int | None] = []
        take = cache._reserve.take
        cache._reserve.take = lambda: taken.append(take()) or taken[-1]
        ds = make_ct(generate_uid(), generate_uid())
        body = _split(_encode(ds))[1]
        meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, "CT1")
        stored = cache.add_received(meta, body, source_ae="CT1")
        assert taken and taken[0] is not None  # written into a reserved file
        assert stored.path.read_bytes().endswith(body)
        assert stored.info == read_instance_info(stored.path)
        with pytest.raises(InvalidDicomError, match="truncated"):
            cache.add_received(meta, body[:1000])  # the pydicom path, reading the unnamed file
        with pytest.raises(InvalidDicomError):
            cache.add_received(meta, body, check=_refuse)  # refused after it was written
        assert len(taken) == 3 and None not in taken
        assert cache.counts()["instance"] == 1
        assert not list(cache.spool_dir.iterdir())
        assert [p for p in cache.files_dir.rglob("*") if p.is_file()] == [stored.path]
    finally:
        cache.release_spool_files()
    assert cache._reserve is None
    assert not list(cache.spool_dir.iterdir())


def test_portable_file_io_receives_into_named_spool_files(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without unnamed files (Windows, macOS) nothing is reserved and a refused instance leaves
    no spool file either."""
    monkeypatch.setattr(cache, "io", FileIO())
    assert not cache.reserve_spool_files()
    ds = make_ct(generate_uid(), generate_uid())
    body = _split(_encode(ds))[1]
    meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, "CT1")
    with pytest.raises(InvalidDicomError, match="truncated"):
        cache.add_received(meta, body[:1000])
    with pytest.raises(InvalidDicomError):
        cache.add_received(meta, body, check=_refuse)
    assert not list(cache.spool_dir.iterdir())
    stored = cache.add_received(meta, body, source_ae="CT1")
    assert stored.path.read_bytes().endswith(body)
    assert cache.counts()["instance"] == 1
    assert not list(cache.spool_dir.iterdir())
