"""Import from folders, DICOMDIRs, ISO images and zips — and survival of hostile media
(RELIABILITY items 33, 35-39)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from factory import make_ct, write_series
from peers.tools import require

from gearview.errors import Cancelled
from gearview.jobs import CancelToken
from gearview.media.dicomdir import DirNode, encode_dicomdir, new_record
from gearview.media.importer import (
    Reconcile,
    ReconcileRequest,
    import_path,
    import_preview,
    preview,
)
from gearview.media.sources import MediaError, open_source
from gearview.store import audit

OPENED: list[str] = []
_AUDIT = {"on": False}


def _audit(event: str, args: tuple) -> None:
    if _AUDIT["on"] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def audit_opens():
    """Record every path this process opens while the test body runs."""
    OPENED.clear()
    _AUDIT["on"] = True
    yield OPENED
    _AUDIT["on"] = False


def _outside_instance(tmp_path: Path) -> Path:
    """A valid DICOM file beside the medium: importing it would prove we read outside."""
    outside = tmp_path / "OUTSIDE"
    make_ct("1.2.3.4", "1.2.3.4.1", 1, sop_uid="1.2.3.4.1.99").save_as(
        outside, enforce_file_format=True
    )
    return outside


def _dicomdir_with(refs: list[list[str]]) -> bytes:
    """A DICOMDIR with one patient/study/series and one IMAGE record per File ID."""
    leaves = [
        DirNode(
            new_record(
                "IMAGE",
                InstanceNumber=i + 1,
                ReferencedFileID=ref,
                ReferencedSOPClassUIDInFile="1.2.840.10008.5.1.4.1.1.2",
                ReferencedSOPInstanceUIDInFile=f"1.2.3.{i}",
                ReferencedTransferSyntaxUIDInFile="1.2.840.10008.1.2.1",
            )
        )
        for i, ref in enumerate(refs)
    ]
    series = DirNode(
        new_record("SERIES", Modality="CT", SeriesInstanceUID="1.2.3", SeriesNumber=1), leaves
    )
    study = DirNode(
        new_record(
            "STUDY",
            StudyDate="20240101",
            StudyTime="1200",
            StudyID="1",
            StudyInstanceUID="1.2",
            StudyDescription="",
            AccessionNumber="",
        ),
        [series],
    )
    return encode_dicomdir(
        [DirNode(new_record("PATIENT", PatientID="X", PatientName="X"), [study])]
    )


def test_folder_import_counts_and_report(cache, tmp_path):
    src = tmp_path / "cd"
    write_series(src / "DICOM", 4)
    (src / "README.TXT").write_text("hello")
    (src / "empty.dcm").write_bytes(b"")
    report = import_path(src, cache)
    assert report.imported == 4
    reasons = dict(report.not_imported)
    assert "empty" in reasons["empty.dcm"]
    assert "not DICOM" in reasons["README.TXT"]
    assert report.path is not None and "empty.dcm" in report.path.read_text()
    assert cache.counts()["instance"] == 4


def test_pydicom_sample_folder_every_file_accounted(cache, tmp_path):
    src = tmp_path / "samples"
    src.mkdir()
    files = sorted((Path(pydicom.data.__file__).parent / "test_files").glob("*.dcm"))[:120]
    for i, path in enumerate(files):
        (src / f"F{i:04d}.dcm").write_bytes(path.read_bytes())
    with preview(src, cache) as found:
        report = import_preview(found, cache)
    assert report.imported > 40
    assert report.imported + len(report.not_imported) == len(files)
    assert all(reason for _, reason in report.not_imported)
    # pydicom's samples reuse SOP Instance UIDs for other images (1 vs 2 frames, 16 vs 32
    # bits, a lossy copy): the first one is kept, the others are refused, never overwritten
    reused = [n for n, reason in report.not_imported if "other pixel data" in reason]
    assert len(reused) >= 10


def test_zip_import_and_zip_slip(cache, tmp_path):
    paths = write_series(tmp_path / "s", 3)
    archive = tmp_path / "cd.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in paths:
            zf.write(p, f"DICOM/{p.name}")
        for evil in ("../gv_zipslip1", "/tmp/gv_zipslip2", "C:/gv_zipslip3", "..\\gv_zipslip4"):
            zf.writestr(evil, paths[0].read_bytes())
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("inner.zip", b"PK\x03\x04" + b"\0" * 100)
    report = import_path(archive, cache)
    assert report.imported == 3
    reasons = dict(report.not_imported)
    assert "zip slip" in reasons["../gv_zipslip1"]
    assert "absolute" in reasons["/tmp/gv_zipslip2"] and "absolute" in reasons["C:/gv_zipslip3"]
    assert "backslash" in reasons["..\\gv_zipslip4"]
    assert "symbolic link" in reasons["link"]
    assert "not expanded" in reasons["inner.zip"]
    assert not list(Path("/tmp").glob("gv_zipslip*"))
    assert not list((cache.spool_dir / "media-import").glob("*/*"))


def test_zip_bomb_encrypted_and_size_lie(cache, tmp_path):
    archive = tmp_path / "bomb.zip"
    good = write_series(tmp_path / "s", 1)[0]
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BOMB", b"\0" * (64 << 20))
        zf.write(good, "GOOD")
        zf.writestr("SECRET", b"x" * 10)
        zf.writestr("LIAR", good.read_bytes())
    data = bytearray(archive.read_bytes())
    # set the "encrypted" flag of SECRET in its central directory entry
    cd = data.rfind(b"PK\x01\x02", 0, data.rfind(b"SECRET"))
    data[cd + 8] |= 0x01
    # make LIAR's central directory declare a smaller size than its data
    cd_liar = data.rfind(b"PK\x01\x02")
    data[cd_liar + 24 : cd_liar + 28] = (100).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    report = import_path(archive, cache)
    reasons = dict(report.not_imported)
    assert report.imported == 1
    assert "zip bomb" in reasons["BOMB"]
    assert "password" in reasons["SECRET"]
    assert "LIAR" in reasons


def test_garbage_and_truncated_archives(cache, tmp_path):
    garbage = tmp_path / "g.zip"
    garbage.write_bytes(b"PK\x03\x04" + os.urandom(500))
    with pytest.raises(MediaError):
        import_path(garbage, cache)
    not_iso = tmp_path / "g.iso"
    not_iso.write_bytes(b"\0" * 0x8001 + b"CD001" + os.urandom(100))
    with pytest.raises(MediaError):
        import_path(not_iso, cache)
    assert cache.counts()["instance"] == 0


def test_truncated_iso_is_marked_partial(cache, tmp_path):
    write_series(tmp_path / "src" / "A", 6, rows=256, cols=256)
    iso = tmp_path / "t.iso"
    subprocess.run(
        [require("genisoimage"), "-quiet", "-J", "-r", "-o", str(iso), str(tmp_path / "src")],
        check=True,
    )
    data = iso.read_bytes()
    iso.write_bytes(data[: len(data) // 2])
    report = import_path(iso, cache)
    assert report.partial_medium
    assert 0 < report.imported < 6
    assert report.imported + len(report.not_imported) == 6


def test_malicious_dicomdir_and_symlinks(cache, tmp_path, audit_opens):
    outside = _outside_instance(tmp_path)
    medium = tmp_path / "cd"
    write_series(medium / "DICOM", 1)
    good = ["DICOM", "IM000001.dcm"]
    (medium / "DICOMDIR").write_bytes(
        _dicomdir_with(
            [
                good,
                ["..", "..", "etc", "passwd"],
                ["/etc/passwd"],
                ["..\\..\\tmp"],
                ["C:\\x"],
                ["DICOM", "..", "..", "OUTSIDE"],
                ["DICOM", "MISSING"],
            ]
        )
    )
    os.symlink("/etc/passwd", medium / "PASSWD")
    os.symlink("/", medium / "ROOT")
    os.symlink(outside, medium / "OUT")
    audit_opens.clear()
    report = import_path(medium, cache)
    assert report.imported == 1
    text = " ".join(f"{n} {r}" for n, r in report.not_imported)
    for fragment in ("'..\\\\..\\\\etc\\\\passwd'", "/etc/passwd", "C:", "MISSING", "OUTSIDE"):
        assert fragment in text, fragment
    reasons = dict(report.not_imported)
    assert (
        "outside" in reasons["PASSWD"]
        and "outside" in reasons["ROOT"]
        and "outside" in reasons["OUT"]
    )
    assert cache.instance("1.2.3.4.1.99") is None
    assert any(p.endswith("IM000001.dcm") for p in audit_opens)  # the hook does see our reads
    assert not [p for p in audit_opens if p in ("/etc/passwd", str(outside))]


def test_cyclic_dicomdir_is_detected_and_files_scanned(cache, tmp_path):
    medium = tmp_path / "cd"
    write_series(medium / "DICOM", 2)
    (medium / "DICOMDIR").write_bytes(
        _dicomdir_with([["DICOM", "IM000001.dcm"], ["DICOM", "IM000002.dcm"]])
    )
    ds = pydicom.dcmread(medium / "DICOMDIR")
    last = ds.DirectoryRecordSequence[-1]
    last.OffsetOfTheNextDirectoryRecord = ds.DirectoryRecordSequence[0].seq_item_tell
    ds.save_as(medium / "DICOMDIR")
    report = import_path(medium, cache)
    assert report.imported == 2
    assert any("cycle" in reason for _, reason in report.not_imported)


@pytest.mark.parametrize("damage", ["html", "offset_oob"])
def test_broken_dicomdir_falls_back_to_scanning(cache, tmp_path, damage):
    medium = tmp_path / "cd"
    write_series(medium / "dicom", 2)  # lowercase, non-conformant names
    if damage == "html":
        (medium / "DICOMDIR").write_text("<html><script>alert(1)</script></html>")
    else:
        data = bytearray(_dicomdir_with([["DICOM", "IM000001.DCM"]]))
        ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(bytes(data)), force=True)
        ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 10**8
        ds.save_as(medium / "DICOMDIR")
    report = import_path(medium, cache)
    assert report.imported == 2
    assert any("DICOMDIR" in name for name, _ in report.not_imported)


def test_missing_referenced_and_orphan_files(cache, tmp_path):
    medium = tmp_path / "cd"
    write_series(medium / "DICOM", 3)
    (medium / "DICOMDIR").write_bytes(
        _dicomdir_with([["dicom", "im000001.dcm"], ["DICOM", "GONE"]])
    )
    with preview(medium, cache) as found:
        orphans = [f.name for f in found.instances if not f.in_dicomdir]
        report = import_preview(found, cache)
    assert sorted(orphans) == ["DICOM/IM000002.dcm", "DICOM/IM000003.dcm"]
    assert report.imported == 3
    assert any("missing" in r for n, r in report.not_imported if n.endswith("GONE"))


def test_bad_files_reported(cache, tmp_path):
    medium = tmp_path / "cd"
    paths = write_series(medium, 3)
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) // 2])
    (medium / "IM000009").write_text("<html>not dicom</html>")
    (medium / "PREAMBLE").write_bytes(b"\0" * 128 + b"DICM")
    (medium / "RANDOM").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(300))
    report = import_path(medium, cache)
    reasons = dict(report.not_imported)
    assert report.imported == 2
    assert "truncated" in reasons["IM000001.dcm"]
    assert "web page" in reasons["IM000009"]
    assert set(reasons) >= {"PREAMBLE", "RANDOM"}


def test_polyglot_preamble_is_zeroed_in_cache(cache, tmp_path):
    path = write_series(tmp_path / "cd", 1)[0]
    data = bytearray(path.read_bytes())
    data[:4] = b"MZ\x90\x00"
    data[4:8] = b"\x7fELF"
    path.write_bytes(bytes(data))
    report = import_path(tmp_path / "cd", cache)
    assert report.imported == 1
    (instance,) = cache.instances()
    head = instance.path.read_bytes()[:132]
    assert head == b"\0" * 128 + b"DICM"
    assert not os.access(instance.path, os.X_OK)


def test_autorun_and_scripts_are_never_executed(cache, tmp_path):
    marker = Path("/tmp/gv_pwned_autorun")
    marker.unlink(missing_ok=True)
    medium = tmp_path / "cd"
    write_series(medium / "DICOM", 1)
    (medium / "autorun.inf").write_text("[autorun]\nopen=RUNME.BAT\n")
    (medium / "RUNME.BAT").write_text(f"echo > {marker}\n")
    script = medium / "runme.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    (medium / "IHE_PDI").mkdir()
    (medium / "IHE_PDI" / "INDEX.HTM").write_text(
        f"<html><script>fetch('http://127.0.0.1:9/')</script><img src=file://{marker}></html>"
    )
    report = import_path(medium, cache)
    assert report.imported == 1
    assert len(report.not_imported) == 4
    assert not marker.exists()


def test_many_files_deep_tree_and_cancel(cache, tmp_path):
    medium = tmp_path / "many"
    medium.mkdir()
    for i in range(20_000):
        (medium / f"F{i:05d}").touch()
    deep = medium
    for _ in range(300):
        deep = deep / "d"
    deep.mkdir(parents=True)
    with preview(medium, cache) as found:
        assert len(found.by_category("unreadable")) == 20_000
        assert any("deeper" in s.reason for s in found.by_category("refused"))
    token = CancelToken()
    seen = []

    def cancel_soon(progress):
        seen.append(progress)
        if progress.total and progress.done >= 1000:
            token.cancel()

    with pytest.raises(Cancelled):
        preview(medium, cache, cancel_soon, token)
    assert seen and not list((cache.spool_dir / "media-import").glob("*"))


def test_cancel_during_import_reports_the_rest(cache, tmp_path):
    write_series(tmp_path / "cd", 5)
    token = CancelToken()

    def cancel_after_two(progress):
        if progress.total == 5 and progress.done == 2:
            token.cancel()

    with preview(tmp_path / "cd", cache) as found:
        report = import_preview(found, cache, progress=cancel_after_two, token=token)
    assert report.cancelled
    assert report.imported == 2
    assert sum("cancelled" in r for _, r in report.not_imported) == 3


def test_selection_imports_only_ticked_series(cache, tmp_path):
    write_series(tmp_path / "cd" / "A", 2)
    write_series(tmp_path / "cd" / "B", 3)
    with preview(tmp_path / "cd", cache) as found:
        (patient,) = found.tree()
        assert sorted(s.instance_count for s in patient.studies.values()) == [2, 3]
        assert found.counts()["studies"] == 2
        series_b = next(
            f.info.series_instance_uid for f in found.instances if f.name.startswith("B/")
        )
        report = import_preview(found, cache, series_uids={series_b})
    assert report.imported == 3
    assert sum(r == "not selected" for _, r in report.not_imported) == 2


def test_reconcile_takes_the_cached_demographics_and_keeps_the_outside_ones(cache, tmp_path):
    local = write_series(
        tmp_path / "local", 1, patient_id="MRN42", patient_name="Local^Name", sex="F"
    )
    cache.add_file(local[0])
    write_series(tmp_path / "cd", 2, patient_id="OUT-7", patient_name="Outside^Name")
    report = import_path(tmp_path / "cd", cache, ReconcileRequest(patient=Reconcile("MRN42")))
    assert report.imported == 2
    assert any("'Outside^Name' -> 'Local^Name'" in w for w in report.warnings)
    study = next(s for s in cache.studies() if s.number_of_study_related_instances == 2)
    assert (study.patient_id, study.patient_name, study.patient_sex) == (
        "MRN42", "Local^Name", "F"
    )
    ds = pydicom.dcmread(cache.instances(study_uid=study.study_instance_uid)[0].path)
    assert (ds.PatientID, str(ds.PatientName), ds.PatientSex) == ("MRN42", "Local^Name", "F")
    assert ds.OtherPatientIDsSequence[0].PatientID == "OUT-7"
    (original,) = ds.OriginalAttributesSequence
    assert original.ReasonForTheAttributeModification == "COERCE"
    before = original.ModifiedAttributesSequence[0]
    assert (before.PatientID, str(before.PatientName), before.PatientSex) == (
        "OUT-7",
        "Outside^Name",
        "O",
    )
    (record,) = [r for r in audit.read(cache.home) if r["action"] == "media.import"]
    assert record["profile"] == "IRWF"
    (row,) = record["reconciled"]
    assert row["outside"]["patient_id"] == "OUT-7" and row["local"]["name"] == "Local^Name"
    assert row["source"] == "cache"


def test_reconcile_to_an_unknown_id_keeps_the_outside_demographics(cache, tmp_path):
    write_series(tmp_path / "cd", 1, patient_id="OUT-7", patient_name="Outside^Name")
    report = import_path(tmp_path / "cd", cache, ReconcileRequest(patient=Reconcile("MRN1")))
    assert any("no local record for patient ID 'MRN1'" in w for w in report.warnings)
    (study,) = cache.studies()
    assert (study.patient_id, study.patient_name) == ("MRN1", "Outside^Name")


def test_open_source_refuses_unknown_input(tmp_path):
    odd = tmp_path / "x.bin"
    odd.write_bytes(b"hello")
    with pytest.raises(MediaError):
        open_source(odd)
    with pytest.raises(MediaError):
        open_source(tmp_path / "nope")


def test_dicomdir_path_opens_its_folder(cache, tmp_path):
    write_series(tmp_path / "cd" / "DICOM", 2)
    (tmp_path / "cd" / "DICOMDIR").write_bytes(_dicomdir_with([["DICOM", "IM000001.dcm"]]))
    assert import_path(tmp_path / "cd" / "DICOMDIR", cache).imported == 2


def test_rock_ridge_symlinks_on_an_iso_are_refused(cache, tmp_path):
    src = tmp_path / "src"
    write_series(src / "DICOM", 1)
    os.symlink("/etc/passwd", src / "PASSWD")
    os.symlink("/", src / "ROOT")
    iso = tmp_path / "rr.iso"
    subprocess.run(
        [require("genisoimage"), "-quiet", "-J", "-r", "-o", str(iso), str(src)], check=True
    )
    report = import_path(iso, cache)
    reasons = dict(report.not_imported)
    assert report.imported == 1
    assert "symbolic link" in reasons["PASSWD"] and "symbolic link" in reasons["ROOT"]


def test_zip_with_many_members_shows_progress_and_cancels(cache, tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(20_000):
            zf.writestr(f"F{i:05d}", b"")
    with preview(archive, cache) as found:
        assert len(found.by_category("unreadable")) == 20_000
    token = CancelToken()

    def cancel_soon(progress):
        if progress.total and progress.done >= 500:
            token.cancel()

    with pytest.raises(Cancelled):
        preview(archive, cache, cancel_soon, token)


def test_extraction_leftovers_of_a_crash_are_swept(cache, tmp_path):
    work = cache.spool_dir / "media-import"
    stale = work / "import-crashed"
    stale.mkdir(parents=True)
    (stale / "member").write_bytes(b"x" * 100)
    old = 1_000_000_000
    os.utime(stale, (old, old))
    fresh = work / "import-running"
    fresh.mkdir()
    write_series(tmp_path / "cd", 1)
    with preview(tmp_path / "cd", cache):
        pass
    assert not stale.exists() and fresh.exists()


def test_many_members_just_under_the_ratio_are_a_bomb_together(cache, tmp_path, monkeypatch):
    from gearview.media import sources

    monkeypatch.setattr(sources, "ZIP_TOTAL_FLOOR", 8 << 20)
    archive = tmp_path / "spread.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(12):
            zf.writestr(f"Z{i:02d}", b"\0" * (1 << 20))
    with preview(archive, cache) as found:
        refused = [s for s in found.by_category("refused") if "zip bomb" in s.reason]
    assert len(refused) == 4  # 8 MiB pass (as non-DICOM), the rest is refused


def test_iso_with_overlapping_files_is_refused_past_a_limit(cache, tmp_path):
    import io

    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1)
    data = b"\0" * (1 << 20)
    iso.add_fp(io.BytesIO(data), len(data), "/BIG.;1")
    for i in range(100):
        iso.add_hard_link(iso_old_path="/BIG.;1", iso_new_path=f"/L{i:03d}.;1")
    iso.write(str(tmp_path / "bomb.iso"))
    iso.close()
    with preview(tmp_path / "bomb.iso", cache) as found:
        refused = [s for s in found.by_category("refused") if "ISO bomb" in s.reason]
        read = found.files_seen - len(found.by_category("refused"))
    assert refused and read < 70


def test_plain_iso9660_image_without_joliet_or_rock_ridge(cache, tmp_path):
    import pycdlib

    paths = write_series(tmp_path / "s", 2)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1)
    iso.add_directory("/DICOM")
    for i, path in enumerate(paths, 1):
        iso.add_file(str(path), f"/DICOM/IM{i:06d}.;1")
    iso.write(str(tmp_path / "plain.iso"))
    iso.close()
    with preview(tmp_path / "plain.iso", cache) as found:
        assert sorted(f.name for f in found.instances) == ["DICOM/IM000001", "DICOM/IM000002"]
        assert import_preview(found, cache).imported == 2


def test_fifo_and_looping_iso_never_hang(cache, tmp_path):
    medium = tmp_path / "cd"
    write_series(medium, 1)
    os.mkfifo(medium / "PIPE")  # opening it for reading would block forever
    report = import_path(medium, cache)
    assert report.imported == 1
    assert "not a regular file" in dict(report.not_imported)["PIPE"]

    import io
    import struct

    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1)
    iso.add_directory("/SUB")
    iso.add_fp(io.BytesIO(b"x" * 10), 10, "/SUB/F.;1")
    iso.write(str(tmp_path / "loop.iso"))
    iso.close()
    data = bytearray((tmp_path / "loop.iso").read_bytes())
    root_extent = struct.unpack_from("<I", data, 0x8000 + 156 + 2)[0]
    record = data.find(b"SUB", root_extent * 2048) - 33
    struct.pack_into("<I", data, record + 2, root_extent)  # SUB -> the root: a cycle
    struct.pack_into(">I", data, record + 6, root_extent)
    (tmp_path / "loop.iso").write_bytes(bytes(data))
    with pytest.raises(MediaError, match="loop"):
        import_path(tmp_path / "loop.iso", cache)


def test_oversized_dicomdir_is_not_parsed(cache, tmp_path, monkeypatch):
    from gearview.media import scan

    monkeypatch.setattr(scan, "MAX_DICOMDIR_SIZE", 100)
    write_series(tmp_path / "cd" / "DICOM", 1)
    (tmp_path / "cd" / "DICOMDIR").write_bytes(_dicomdir_with([["DICOM", "IM000001.dcm"]]))
    report = import_path(tmp_path / "cd", cache)
    assert report.imported == 1
    assert "too large" in dict(report.not_imported)["DICOMDIR"]


def test_reader_warnings_reach_the_report_naming_the_file(cache, tmp_path):
    """RELIABILITY 34: imported with warnings, shown to the user - never lost."""
    disc = tmp_path / "cd"
    disc.mkdir()
    odd = make_ct("1.2.3", "1.2.3.4", sop_uid="1.2.3.4.5.x")
    odd.SpecificCharacterSet = "ISO_IR 999"
    odd.save_as(disc / "IM_ODD", enforce_file_format=True)
    other_class = make_ct("1.2.3", "1.2.3.4")
    other_class.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    other_class.preamble = b"\x00" * 128
    other_class.save_as(disc / "IM_CLASS", enforce_file_format=False)
    write_series(disc / "fine", 1)
    report = import_path(disc, cache, report_dir=tmp_path / "reports")
    assert report.imported == 3, report.not_imported
    assert any(w.startswith("IM_ODD: ") and "non-conformant SOP Instance UID" in w
               for w in report.warnings)
    assert any(w.startswith("IM_ODD: ") and "ISO_IR 999" in w for w in report.warnings)
    assert "IM_CLASS: file meta SOP Class UID differs from the data set's" in report.warnings
    assert not any(w.startswith("fine") or "0001" in w.split(":")[0] for w in report.warnings)
    text = report.path.read_text()
    assert "Warnings:" in text and "IM_ODD" in text and "site-packages" not in text
