"""The local cache: atomic writes, hashed paths, replace-by-UID, bad files refused."""

from __future__ import annotations

import io
import sqlite3
import struct
import zlib
from pathlib import Path

import pydicom
import pytest
from factory import make_ct, write_series
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from gearview import events as ev
from gearview.errors import IndexCorruptError, InvalidDicomError, StoreError
from gearview.home import Home
from gearview.store import Cache, index
from gearview.store.check import check_store


def _dataset_bytes(ds: pydicom.Dataset) -> bytes:
    """The encoded data set without preamble and file meta, as a peer sends it."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    meta_len = struct.unpack("<L", raw[140:144])[0]
    return raw[144 + meta_len :]


def _no_spool_leftovers(cache: Cache) -> bool:
    return not list(cache.spool_dir.iterdir())


def test_added_file_is_indexed_under_a_hashed_path(cache: Cache, tmp_path: Path) -> None:
    paths = write_series(tmp_path / "src", 3, patient_name="Doe^Jane", patient_id="MRN123")
    for path in paths:
        cache.add_file(path, source_ae="MODALITY")
    studies = cache.studies()
    assert [
        (
            s.patient_name,
            s.patient_id,
            s.number_of_study_related_series,
            s.number_of_study_related_instances,
            s.modalities_in_study,
        )
        for s in studies
    ] == [("Doe^Jane", "MRN123", 1, 3, ["CT"])]
    for inst in cache.instances(study_uid=studies[0].study_instance_uid):
        rel = inst.path.relative_to(cache.files_dir).as_posix()
        assert "Doe" not in rel and "MRN123" not in rel
        assert inst.sop_instance_uid not in rel and inst.study_instance_uid not in rel
        assert inst.source_ae == "MODALITY"
        assert inst.path.read_bytes()[:132] == b"\x00" * 128 + b"DICM"
    assert _no_spool_leftovers(cache)


def test_received_bytes_are_stored_exactly_as_sent(cache: Cache) -> None:
    ds = make_ct(generate_uid(), generate_uid())
    payload = _dataset_bytes(ds)
    from gearview.store.cache import build_file_meta

    meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID, "CT1")
    stored = cache.add_received(meta, payload, source_ae="CT1")
    assert stored.path.read_bytes().endswith(payload)
    back = pydicom.dcmread(stored.path)
    assert back.file_meta.SourceApplicationEntityTitle == "CT1"
    assert back.PatientName == ds.PatientName


def test_same_sop_instance_replaces_file_and_keeps_one_row(cache: Cache) -> None:
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    from gearview.store.cache import build_file_meta

    first = make_ct(study, series, sop_uid=sop, patient_name="First^Name")
    second = make_ct(study, series, sop_uid=sop, patient_name="Second^Name")
    meta = build_file_meta(first.SOPClassUID, sop, first.file_meta.TransferSyntaxUID)
    cache.add_received(meta, _dataset_bytes(first))
    result = cache.add_received(meta, _dataset_bytes(second))
    assert result.replaced
    assert cache.counts()["instance"] == 1
    assert cache.study(study).patient_name == "Second^Name"


def test_same_sop_in_another_study_is_kept_aside_not_stored(cache: Cache) -> None:
    """The cached study keeps its instance; the arrival is acknowledged and kept, not lost."""
    sop = generate_uid()
    from gearview.store.cache import build_file_meta

    a = make_ct(generate_uid(), generate_uid(), sop_uid=sop)
    b = make_ct(generate_uid(), generate_uid(), sop_uid=sop)
    meta = build_file_meta(a.SOPClassUID, sop, a.file_meta.TransferSyntaxUID)
    old = cache.add_received(meta, _dataset_bytes(a)).path
    before = old.read_bytes()
    second = cache.add_received(meta, _dataset_bytes(b), "MODALITY")
    assert not second.stored and second.conflict.kind == "other-study"
    assert old.read_bytes() == before
    assert [s.study_instance_uid for s in cache.studies()] == [a.StudyInstanceUID]
    kept = cache.files_dir / second.conflict.kept
    assert pydicom.dcmread(kept).StudyInstanceUID == b.StudyInstanceUID
    assert cache.ledger.conflicts([b.StudyInstanceUID])[b.StudyInstanceUID][0].source == "MODALITY"
    assert check_store(cache.home, cache.files_dir).clean  # kept aside is not part of the cache


def test_same_sop_moved_to_another_study_on_request_leaves_no_old_file(
    cache: Cache, tmp_path: Path
) -> None:
    sop = generate_uid()
    a = make_ct(generate_uid(), generate_uid(), sop_uid=sop)
    b = make_ct(generate_uid(), generate_uid(), sop_uid=sop)
    for name, ds in (("a.dcm", a), ("b.dcm", b)):
        ds.save_as(tmp_path / name, enforce_file_format=True)
    old = cache.add_file(tmp_path / "a.dcm").path
    refused = cache.add_file(tmp_path / "b.dcm")
    assert not refused.stored and not refused.conflict.kept and old.exists()
    new = cache.add_file(tmp_path / "b.dcm", replace=True).path
    assert not old.exists() and new.exists()
    assert [s.study_instance_uid for s in cache.studies()] == [b.StudyInstanceUID]
    assert cache.counts() == {"patient": 1, "study": 1, "series": 1, "instance": 1}


def test_events_follow_the_commit(cache: Cache, tmp_path: Path) -> None:
    seen: list[ev.Event] = []

    def on_change(event: ev.Event) -> None:
        seen.append(event)
        # the row must already be visible when listeners hear about it
        assert cache.study(next(iter(event.changes.studies))) is not None

    ev.bus.bind(ev.CACHE_CHANGED, on_change)
    try:
        cache.add_file(write_series(tmp_path, 1)[0])
    finally:
        ev.bus.unbind(ev.CACHE_CHANGED, on_change)
    assert len(seen) == 1
    assert seen[0].changes.studies_added and seen[0].changes.instances_added


def _craft(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _deep_sequence_file(depth: int) -> bytes:
    ds = make_ct(generate_uid(), generate_uid())
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    head = b""
    tail = b""
    for _ in range(depth):
        head += struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
        head += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        tail = (
            struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0) + tail
        )
    raw = buf.getvalue()
    return raw + head + tail


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "preamble_only",
        "html",
        "garbage_after_dicm",
        "truncated_half",
        "truncated_in_meta",
        "deep_nesting",
        "huge_declared_length",
        "no_uids",
    ],
)
def test_bad_files_are_refused_and_nothing_is_stored(
    cache: Cache, tmp_path: Path, kind: str
) -> None:
    good = write_series(tmp_path / "good", 1)[0].read_bytes()
    data = {
        "empty": b"",
        "preamble_only": b"\x00" * 128 + b"DICM",
        "html": b"<html><body>IM000001</body></html>",
        "garbage_after_dicm": b"\x00" * 128 + b"DICM" + bytes(range(256)) * 8,
        "truncated_half": good[: len(good) // 2],
        "truncated_in_meta": good[:180],
        "deep_nesting": _deep_sequence_file(3000),
        "huge_declared_length": good
        + struct.pack("<HH2sHL", 0x7FE1, 0x0010, b"UT", 0, 0xFFFFFFF0)
        + b"x" * 16,
        "no_uids": b"\x00" * 128 + b"DICM" + good[132:][:400],
    }[kind]
    path = _craft(tmp_path, "IM000001", data)
    with pytest.raises(InvalidDicomError) as info:
        cache.add_file(path)
    assert info.value.message
    assert cache.counts()["instance"] == 0
    assert _no_spool_leftovers(cache)


def test_deflate_bomb_is_refused(cache: Cache, tmp_path: Path) -> None:
    ds = make_ct(
        generate_uid(),
        generate_uid(),
        rows=16,
        cols=16,
        transfer_syntax=DeflatedExplicitVRLittleEndian,
    )
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    meta_len = struct.unpack("<L", raw[140:144])[0]
    head = raw[: 144 + meta_len]
    # a body that inflates to 256 MiB of zeros after a valid small data set
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = comp.compress(zlib.decompress(raw[144 + meta_len :], -zlib.MAX_WBITS))
    zeros = b"\x00" * (1 << 20)
    for _ in range(256):
        body += comp.compress(zeros)
    body += comp.flush()
    path = _craft(tmp_path, "bomb.dcm", head + body)
    with pytest.raises(InvalidDicomError, match="too large"):
        cache.add_file(path)
    assert cache.counts()["instance"] == 0


def test_deflated_file_within_limits_is_accepted(cache: Cache, tmp_path: Path) -> None:
    ds = make_ct(generate_uid(), generate_uid(), transfer_syntax=DeflatedExplicitVRLittleEndian)
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, enforce_file_format=True)
    cache.add_file(path)
    assert cache.counts()["instance"] == 1


def test_remove_study_deletes_rows_and_files(cache: Cache, tmp_path: Path) -> None:
    paths = write_series(tmp_path, 2)
    stored = [cache.add_file(p).path for p in paths]
    study_uid = cache.studies()[0].study_instance_uid
    changes = cache.remove_studies([study_uid])
    assert changes.studies_removed == {study_uid}
    assert cache.counts() == {"patient": 0, "study": 0, "series": 0, "instance": 0}
    assert not any(p.exists() for p in stored)


def test_mismatched_patient_attributes_flag_the_study(cache: Cache, tmp_path: Path) -> None:
    study, series = generate_uid(), generate_uid()
    for i, name in enumerate(["Doe^John", "Doe^Jon"], 1):
        ds = make_ct(study, series, i, patient_name=name)
        path = tmp_path / f"{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        cache.add_file(path)
    assert cache.study(study).mismatch


def test_locked_index_fails_cleanly_without_orphans(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "BUSY_TIMEOUT_MS", 200)
    cache = Cache(home)
    try:
        blocker = sqlite3.connect(home.index_file, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreError):
                cache.add_file(write_series(tmp_path, 1)[0])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert not any(cache.files_dir.rglob("*.dcm")), "a file was left without an index row"
        assert _no_spool_leftovers(cache)
        cache.add_file(write_series(tmp_path / "again", 1)[0])
        assert cache.counts()["instance"] == 1
    finally:
        cache.close()


def test_corrupt_index_is_reported_not_deleted(home: Home, tmp_path: Path) -> None:
    cache = Cache(home)
    cache.add_file(write_series(tmp_path, 1)[0])
    cache.close()
    for suffix in ("-wal", "-shm"):
        Path(str(home.index_file) + suffix).unlink(missing_ok=True)
    home.index_file.write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexCorruptError) as info:
        Cache(home)
    assert "rebuild" in info.value.hint
    assert len(list((home.root / "files").rglob("*.dcm"))) == 1
