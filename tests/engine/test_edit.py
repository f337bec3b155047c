"""Study-wide demographics edit: every instance or none, old values kept, undo, audit."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pydicom
import pytest
from edit_fixtures import (
    add_charset_file,
    add_mixed_study,
    dcmdump,
    run_killed_at_rename,
    snapshot,
    without,
)
from factory import write_series
from peers.tools import require
from pydicom.uid import generate_uid

from gearview import events as ev
from gearview.cli import main as cli_main
from gearview.edit.rewrite import read_header
from gearview.edit.study_edit import edit_study
from gearview.edit.undo import undo_last
from gearview.errors import InvalidValueError, NotFoundError, StoreError
from gearview.store import Cache, audit
from gearview.store.header import read_instance_info

NEW = {
    "PatientName": "Corrected^Name",
    "PatientID": "MRN-42",
    "AccessionNumber": "A2024",
    "PatientBirthDate": "19811231",
    "PatientSex": "F",
}
CHANGED_TAGS = {"(0010,0010)", "(0010,0020)", "(0008,0050)", "(0010,0030)", "(0010,0040)"}


def _tail(path: Path) -> bytes:
    header = read_header(path)
    with open(path, "rb") as fh:
        fh.seek(header.tail_offset)
        return fh.read()


def test_mixed_study_edit_changes_every_file_and_nothing_else(
    cache: Cache, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    require("dcmdump")
    study = add_mixed_study(cache, tmp_path / "src")
    before = {
        i.sop_instance_uid: (i.path, dcmdump(i.path), _tail(i.path), i.transfer_syntax_uid)
        for i in cache.instances(study_uid=study)
    }
    pixels_deflated = {
        uid: pydicom.dcmread(p).PixelData
        for uid, (p, _, _, ts) in before.items()
        if ts.endswith(".99")
    }
    seen = []
    ev.bus.bind(ev.CACHE_CHANGED, seen.append)
    try:
        result = edit_study(cache, study, NEW, reason="wrong patient")
    finally:
        ev.bus.unbind(ev.CACHE_CHANGED, seen.append)
    assert len(result.instances) == len(before) == 10
    assert result.undo_id and seen[-1].changes.undo_id == result.undo_id
    for inst in cache.instances(study_uid=study):
        old_path, old_dump, old_tail, ts = before[inst.sop_instance_uid]
        assert inst.path == old_path
        new_dump = dcmdump(inst.path)
        assert without(new_dump, CHANGED_TAGS) == without(old_dump, CHANGED_TAGS), ts
        ds = pydicom.dcmread(inst.path)
        assert str(ds.PatientName) == "Corrected^Name" and ds.PatientID == "MRN-42"
        assert ds.AccessionNumber == "A2024" and ds.PatientBirthDate == "19811231"
        item = ds.OriginalAttributesSequence[-1]
        assert item.ModifyingSystem.startswith("gearview")
        assert item.ReasonForTheAttributeModification == "CORRECT"
        assert len(item.AttributeModificationDateTime) >= 14
        old = pydicom.dcmread(os.fspath(result_path(cache, result.undo_id, inst.sop_instance_uid)))
        modified = item.ModifiedAttributesSequence[0]
        assert str(modified.PatientName) == str(old.get("PatientName", ""))
        assert modified.PatientID == old.get("PatientID", "")
        if ts.endswith(".99"):
            assert ds.PixelData == pixels_deflated[inst.sop_instance_uid]
        else:
            assert _tail(inst.path) == old_tail, ts
        read_instance_info(inst.path)  # still passes the cache's own validation
    record = cache.study(study)
    assert (record.patient_name, record.patient_id, record.accession_number) == (
        "Corrected^Name",
        "MRN-42",
        "A2024",
    )
    assert not record.mismatch
    assert cli_main(["ls", "--json"]) == 0
    assert '"patient_id": "MRN-42"' in capsys.readouterr().out


def result_path(cache: Cache, undo_id: str, sop_uid: str) -> Path:
    """The journal's copy of an instance's pre-edit file."""
    import json

    folder = cache.home.root / "undo" / undo_id
    entries = json.loads((folder / "manifest.json").read_text())["entries"]
    number = next(n for n, e in enumerate(entries) if e["sop_uid"] == sop_uid)
    return folder / "old" / f"{number}.dcm"


def test_group_lengths_are_kept_and_recomputed(cache: Cache, tmp_path: Path) -> None:
    """A file with group lengths keeps them, with the values DCMTK computes for the new content."""
    import subprocess

    dcmconv = require("dcmconv")
    plain = write_series(tmp_path / "plain", 1)[0]
    with_lengths = tmp_path / "gl.dcm"
    subprocess.run([dcmconv, "+g", str(plain), str(with_lengths)], check=True)
    stored = cache.add_file(with_lengths)
    edit_study(
        cache, stored.info.study_instance_uid, {"PatientName": "A much longer name^Than before"}
    )
    ours = dcmdump(stored.path)
    recomputed = tmp_path / "dcmtk.dcm"
    subprocess.run([dcmconv, "+g", str(stored.path), str(recomputed)], check=True)
    lengths = [line for line in ours if line[:1] == "(" and line[5:11] == ",0000)"]
    theirs = [line for line in dcmdump(recomputed) if line[:1] == "(" and line[5:11] == ",0000)"]
    assert any(line.startswith("(0010,0000)") for line in lengths)
    # DCMTK re-encodes our new sequence with delimiters, so group 0400 is checked by offsets
    assert [x for x in lengths if not x.startswith("(0400")] == [
        x for x in theirs if not x.startswith("(0400")
    ]
    raw = pydicom.dcmread(stored.path)
    start = raw.get_item(0x04000000).value_tell + 4
    end = raw.get_item(0x7FE00000).value_tell - 8
    assert raw[0x04000000].value == end - start
    ignore = {"(0010,0010)", "(0010,0000)", "(0400,0000)"}
    assert without(ours, ignore) == without(dcmdump(with_lengths), ignore)


def test_german_latin1_stays_latin1_when_it_can(cache: Cache, tmp_path: Path) -> None:
    study = add_charset_file(cache, tmp_path, "chrGerm.dcm")
    edit_study(cache, study, {"PatientName": "Müller^Jürgen"})
    path = cache.instances(study_uid=study)[0].path
    ds = pydicom.dcmread(path)
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    assert str(ds.PatientName) == "Müller^Jürgen"
    assert b"M\xfcller^J\xfcrgen" in path.read_bytes()
    assert (
        str(ds.OriginalAttributesSequence[0].ModifiedAttributesSequence[0].PatientName)
        == "Äneas^Rüdiger"
    )


def test_name_the_old_charset_cannot_hold_switches_to_utf8(cache: Cache, tmp_path: Path) -> None:
    study = add_charset_file(cache, tmp_path, "chrH31.dcm")
    path = cache.instances(study_uid=study)[0].path
    original = pydicom.dcmread(path)
    original.decode()
    edit_study(
        cache, study, {"PatientName": "Müller^Jürgen=山田^太郎", "StudyDescription": "Kontrolle Ω"}
    )
    ds = pydicom.dcmread(path)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Müller^Jürgen=山田^太郎"
    assert ds.StudyDescription == "Kontrolle Ω"
    assert "Müller^Jürgen=山田^太郎".encode() in path.read_bytes()
    old = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence[0]
    assert str(old.PatientName) == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    for elem in original:  # every other text value reads the same under the new charset
        if elem.keyword not in (
            "PatientName",
            "StudyDescription",
            "SpecificCharacterSet",
            "PixelData",
        ) and elem.VR in ("PN", "LO", "SH", "ST", "LT", "UT"):
            assert str(ds[elem.tag].value) == str(elem.value), elem.keyword
    assert cache.study(study).patient_name == "Müller^Jürgen=山田^太郎"


def test_japanese_name_in_iso2022_keeps_the_charset(cache: Cache, tmp_path: Path) -> None:
    study = add_charset_file(cache, tmp_path, "chrH31.dcm")
    edit_study(cache, study, {"PatientName": "Suzuki^Hanako=鈴木^花子"})
    ds = pydicom.dcmread(cache.instances(study_uid=study)[0].path)
    assert list(ds.SpecificCharacterSet) == ["", "ISO 2022 IR 87"]
    assert str(ds.PatientName) == "Suzuki^Hanako=鈴木^花子"


def test_utf8_file_stays_utf8(cache: Cache, tmp_path: Path) -> None:
    study = add_charset_file(cache, tmp_path, "chrX1.dcm")
    edit_study(cache, study, {"PatientName": "Wang^Xiao=王^小"})
    ds = pydicom.dcmread(cache.instances(study_uid=study)[0].path)
    assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "Wang^Xiao=王^小"


def test_invalid_value_changes_nothing(cache: Cache, tmp_path: Path) -> None:
    study = add_mixed_study(cache, tmp_path / "src", ct_slices=1)
    before = snapshot(cache)
    with pytest.raises(InvalidValueError, match="PatientBirthDate"):
        edit_study(cache, study, {"PatientName": "Ok^Name", "PatientBirthDate": "19990231"})
    assert snapshot(cache) == before
    with pytest.raises(NotFoundError):
        edit_study(cache, "1.2.3.4", {"PatientName": "X"})


def _spool_empty(cache: Cache) -> bool:
    return not any(cache.spool_dir.iterdir())


def test_unreadable_file_mid_study_changes_nothing(cache: Cache, tmp_path: Path) -> None:
    study = add_mixed_study(cache, tmp_path / "src")
    victim = cache.instances(study_uid=study)[4].path
    victim.write_bytes(b"\x00" * 128 + b"DICM" + b"garbage" * 10)
    before = snapshot(cache)
    with pytest.raises(Exception) as info:
        edit_study(cache, study, NEW)
    assert "instance" in str(info.value)
    assert snapshot(cache) == before
    assert _spool_empty(cache)
    assert not audit.read(cache.home)


def test_cancel_at_half_changes_nothing(cache: Cache, tmp_path: Path) -> None:
    from gearview.errors import Cancelled
    from gearview.jobs import CancelToken

    study = add_mixed_study(cache, tmp_path / "src", ct_slices=13)
    before = snapshot(cache)
    token = CancelToken()
    seen = []

    def progress(p) -> None:
        seen.append(p.done)
        if p.total and p.done >= p.total // 2:
            token.cancel()

    with pytest.raises(Cancelled):
        edit_study(cache, study, NEW, progress=progress, token=token)
    assert snapshot(cache) == before
    assert _spool_empty(cache)
    assert not (cache.home.root / "undo").exists() or not any((cache.home.root / "undo").iterdir())


def test_failure_during_the_swap_rolls_back(
    cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename failing after others succeeded (e.g. EIO) puts every old file back."""
    import gearview.store.batch as batch

    study = add_mixed_study(cache, tmp_path / "src")
    before = snapshot(cache)
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 4:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(batch.os, "replace", failing_replace)
    with pytest.raises(StoreError):
        edit_study(cache, study, NEW)
    monkeypatch.setattr(batch.os, "replace", real_replace)
    assert len(calls) >= 4
    assert snapshot(cache) == before
    assert _spool_empty(cache)


def test_read_only_series_folder_changes_nothing(cache: Cache, tmp_path: Path) -> None:
    """A series folder mounted read-only (a real EROFS): nothing in the cache changes."""
    import subprocess

    study = add_mixed_study(cache, tmp_path / "src")
    folder = cache.instances(study_uid=study)[-1].path.parent
    if subprocess.run(
        ["mount", "--bind", str(folder), str(folder)], capture_output=True
    ).returncode:
        pytest.skip("bind mounts need root (CI runs as root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        before = snapshot(cache)
        with pytest.raises(StoreError):
            edit_study(cache, study, NEW)
        assert snapshot(cache) == before
        assert _spool_empty(cache)
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _mount_small(kind: str, mount: Path, image: Path) -> None:
    """A 6 MiB tmpfs, or a 6 MiB ext4 image (the storage file system most users have)."""
    import subprocess

    mount.mkdir()
    if kind == "tmpfs":
        command = ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)]
    else:
        with open(image, "wb") as fh:
            fh.truncate(8 << 20)
        if subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True).returncode:
            pytest.skip("mkfs.ext4 is not available")
        command = ["mount", "-o", "loop", str(image), str(mount)]
    if subprocess.run(command, capture_output=True).returncode:
        pytest.skip(f"mounting a {kind} needs root and loop devices (CI runs as root)")


@pytest.mark.parametrize("kind", ["tmpfs", "ext4"])
def test_disk_full_changes_nothing(home, tmp_path: Path, kind: str) -> None:
    """The storage folder on a small file system that holds the study but not a second copy."""
    import subprocess

    from gearview.config import load_config

    mount = tmp_path / "small"
    _mount_small(kind, mount, tmp_path / "small.img")
    try:
        config = load_config(home)
        config.storage.folder = str(mount / "files")
        cache = Cache(home, config)
        try:
            study = generate_uid()
            for path in write_series(tmp_path / "src", 7, study_uid=study, rows=512, cols=512):
                cache.add_file(path)
            before = snapshot(cache)
            with pytest.raises(StoreError) as info:
                edit_study(cache, study, NEW)
            assert "space" in str(info.value)
            assert snapshot(cache) == before
            assert _spool_empty(cache)
        finally:
            cache.close()
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_write_back_error_at_the_batch_sync_changes_nothing(
    cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New files are made durable together before the swap; an error there (EIO) loses nothing."""
    import errno

    from gearview.platform import FileIO
    from gearview.store import spool_copy

    class FailingSync(type(cache.io)):
        can_sync_filesystem = True

        def sync_filesystem(self, folder: Path) -> None:
            raise OSError(errno.EIO, "Input/output error")

    study = add_mixed_study(cache, tmp_path / "src")
    before = snapshot(cache)
    assert isinstance(cache.io, FileIO)
    monkeypatch.setattr(cache, "io", FailingSync())
    monkeypatch.setattr(spool_copy, "SYNCFS_MIN_FILES", 1)
    with pytest.raises(StoreError, match="Input/output error"):
        edit_study(cache, study, NEW)
    assert snapshot(cache) == before
    assert _spool_empty(cache)
    assert not audit.read(cache.home)


def test_sigkill_mid_swap_is_rolled_back_on_next_open(cache: Cache, tmp_path: Path) -> None:
    """A process killed between renames: the next Cache restores every old file and row."""
    study = add_mixed_study(cache, tmp_path / "src")
    before = snapshot(cache)
    run_killed_at_rename(
        cache,
        5,
        "from gearview.edit.study_edit import edit_study",
        f"edit_study(Cache(Home.default()), {study!r}, {NEW!r})",
    )
    assert snapshot(cache) != before  # half-swapped files on disk
    cache.close()
    reopened = Cache(cache.home)
    try:
        reopened.clear_spool()
        assert snapshot(reopened) == before
        assert not any((reopened.home.root / "undo").iterdir())
        assert _spool_empty(reopened), "spool files of the killed edit were left behind"
    finally:
        reopened.close()


def test_undo_restores_byte_identical_files(cache: Cache, tmp_path: Path) -> None:
    study = add_mixed_study(cache, tmp_path / "src")
    before = snapshot(cache)
    edit_study(cache, study, NEW, reason="typo")
    edit_study(cache, study, {"StudyDescription": "second edit"})
    undo_last(cache, study)
    assert cache.study(study).patient_id == "MRN-42"
    undo_last(cache, study)
    assert snapshot(cache) == before
    with pytest.raises(NotFoundError):
        undo_last(cache, study)
    actions = [r["action"] for r in audit.read(cache.home)]
    assert actions == ["edit", "edit", "undo", "undo"]


def test_only_the_newest_undo_journals_are_kept(
    cache: Cache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gearview.store.batch as batch

    monkeypatch.setattr(batch, "KEEP_JOURNALS", 2)
    study = generate_uid()
    for path in write_series(tmp_path / "src", 3, study_uid=study, rows=8, cols=8):
        cache.add_file(path)
    undo_ids = [
        edit_study(cache, study, {"PatientID": f"ID{n}"}).undo_id for n in range(4)
    ]
    assert sorted(j.undo_id for j in batch.journals(cache)) == sorted(undo_ids[-2:])
    undo_last(cache, study)
    assert cache.study(study).patient_id == "ID2"


def test_undo_refused_when_the_study_changed_since(cache: Cache, tmp_path: Path) -> None:
    study = generate_uid()
    paths = write_series(tmp_path / "src", 2, study_uid=study)
    for path in paths:
        cache.add_file(path)
    edit_study(cache, study, {"PatientID": "NEW"})
    victim = cache.instances(study_uid=study)[0].path
    ds = pydicom.dcmread(victim)
    ds.PixelData = bytes(len(ds.PixelData))  # another image under this name
    ds.save_as(victim)
    before = snapshot(cache)
    with pytest.raises(StoreError, match="changed after this edit"):
        undo_last(cache, study)
    assert snapshot(cache) == before


def test_undo_after_the_modality_resent_the_study_restores_the_originals(
    cache: Cache, tmp_path: Path
) -> None:
    study = generate_uid()
    paths = write_series(tmp_path / "src", 2, study_uid=study, patient_id="OLD")
    for path in paths:
        cache.add_file(path)
    edit_study(cache, study, {"PatientID": "NEW"})
    cache.add_file(paths[0])  # the modality resends: the correction is re-applied
    undo_last(cache, study)
    ids = {pydicom.dcmread(r.path).PatientID for r in cache.instances(study_uid=study)}
    assert ids == {"OLD"}


def test_audit_log_is_owner_only_and_records_old_and_new(cache: Cache, tmp_path: Path) -> None:
    study = generate_uid()
    for path in write_series(tmp_path / "src", 2, study_uid=study, patient_id="OLD"):
        cache.add_file(path)
    result = edit_study(cache, study, {"PatientID": "NEW"}, reason="merged MRN")
    mode = stat.S_IMODE(cache.home.audit_log.stat().st_mode)
    assert mode == 0o600
    (record,) = audit.read(cache.home)
    assert record["action"] == "edit" and record["study_uid"] == study
    assert record["old"] == {"PatientID": ["OLD"]} and record["new"] == {"PatientID": "NEW"}
    assert record["reason"] == "merged MRN" and record["undo_id"] == result.undo_id
    assert record["instances"] == 2 and record["user"]


def test_mismatch_flag_cleared_by_an_edit(cache: Cache, tmp_path: Path) -> None:
    study = generate_uid()
    series = generate_uid()
    write_series(tmp_path / "a", 2, study_uid=study, series_uid=series, patient_name="Doe^Jon")
    for path in (tmp_path / "a").iterdir():
        cache.add_file(path)
    for path in write_series(tmp_path / "b", 1, study_uid=study, patient_name="Doe^John"):
        cache.add_file(path)
    assert cache.study(study).mismatch
    result = edit_study(cache, study, {"PatientName": "Doe^John"})
    assert len(result.instances) == 2  # the instance that already agreed is left alone
    assert not cache.study(study).mismatch


def test_edit_with_nothing_to_change_writes_nothing(cache: Cache, tmp_path: Path) -> None:
    study = generate_uid()
    for path in write_series(tmp_path / "src", 2, study_uid=study, patient_id="SAME"):
        cache.add_file(path)
    before = snapshot(cache)
    result = edit_study(cache, study, {"PatientID": "SAME"})
    assert result.undo_id is None and not result.instances
    assert snapshot(cache) == before


def test_instance_arriving_during_the_edit_is_included(cache: Cache, tmp_path: Path) -> None:
    """A modality still sending: the edit is redone so it reaches the late instance too."""
    study = generate_uid()
    series = generate_uid()
    paths = write_series(tmp_path / "src", 4, study_uid=study, series_uid=series, patient_id="OLD")
    for path in paths[:3]:
        cache.add_file(path)
    arrived = []

    def progress(p) -> None:
        if p.total and p.done == p.total and not arrived:
            arrived.append(cache.add_file(paths[3]))

    result = edit_study(cache, study, {"PatientID": "NEW"}, progress=progress)
    assert arrived and len(result.instances) == 4
    ids = {pydicom.dcmread(r.path).PatientID for r in cache.instances(study_uid=study)}
    assert ids == {"NEW"} and not cache.study(study).mismatch


def test_batch_refused_when_study_grew(cache: Cache, tmp_path: Path) -> None:
    from gearview.edit.apply import rewrite_instances
    from gearview.store.batch import StudyChangedError

    study = generate_uid()
    paths = write_series(tmp_path / "src", 3, study_uid=study)
    for path in paths[:2]:
        cache.add_file(path)
    records = cache.instances(study_uid=study)
    cache.add_file(paths[2])
    before = snapshot(cache)
    with pytest.raises(StudyChangedError):
        rewrite_instances(
            cache,
            records,
            lambda ds: {ds["PatientID"].tag: ("LO", "X")},
            kind="edit",
            description="t",
            complete_studies={study},
        )
    assert snapshot(cache) == before and _spool_empty(cache)


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "emri_small_RLE.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
    ],
)
def test_fast_splice_equals_full_rewrite(tmp_path: Path, name: str) -> None:
    """The byte-level splice writes exactly what the pydicom rewrite writes (dcmdump of both)."""
    from pydicom.data import get_testdata_file

    from gearview.edit.apply import apply_assignments
    from gearview.edit.rewrite import write_rewritten
    from gearview.edit.splice import SPLIT_READ, splice_header, split_file
    from gearview.edit.study_edit import assignments_for
    from gearview.edit.values import validate_all

    require("dcmdump")
    source = Path(get_testdata_file(name, download=False))
    assignments = assignments_for(
        validate_all({"PatientName": "Fast^Path", "PatientID": "F1", "OtherPatientIDs": "A\\B"})
    )
    header = read_header(source)
    apply_assignments(header.ds, assignments, "CORRECT", "20240102030405.000000+0000")
    full = tmp_path / "full.dcm"
    with open(full, "wb") as fh:
        write_rewritten(header, fh)
    with open(source, "rb") as src:
        parts = split_file(src.read(SPLIT_READ), source.stat().st_size)
        spliced, _ = splice_header(
            parts.header,
            parts.implicit,
            parts.little,
            assignments,
            "CORRECT",
            "20240102030405.000000+0000",
        )
        src.seek(parts.tail_offset)
        tail = src.read()
    fast = tmp_path / "fast.dcm"
    fast.write_bytes(b"\x00" * 128 + parts.meta[128:] + spliced + tail)
    assert dcmdump(fast) == dcmdump(full)


def test_second_edit_appends_a_second_original_attributes_item(
    cache: Cache, tmp_path: Path
) -> None:
    study = generate_uid()
    for path in write_series(tmp_path / "src", 2, study_uid=study, patient_id="FIRST"):
        cache.add_file(path)
    edit_study(cache, study, {"PatientID": "SECOND"})
    edit_study(cache, study, {"PatientID": "THIRD"})
    for record in cache.instances(study_uid=study):
        items = pydicom.dcmread(record.path).OriginalAttributesSequence
        assert [i.ModifiedAttributesSequence[0].PatientID for i in items] == ["FIRST", "SECOND"]
        read_instance_info(record.path)
    assert [r["old"] for r in audit.read(cache.home)] == [
        {"PatientID": ["FIRST"]},
        {"PatientID": ["SECOND"]},
    ]
