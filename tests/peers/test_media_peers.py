"""Discs checked by real tools: xorriso reads our ISO back, dicom3tools validates the
DICOMDIR, DCMTK dumps every file; media made by DCMTK dcmmkdir + genisoimage import."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pydicom
import pydicom.data
from factory import write_series

from gearview.cli import main
from gearview.media.importer import import_path
from gearview.store import Cache
from peers.tools import DCMTK_ENV, require

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def _fill(cache: Cache, tmp_path: Path) -> list[str]:
    for name, n in (("A", 5), ("B", 3)):
        for path in write_series(tmp_path / name, n):
            cache.add_file(path)
    for name in ("SC_rgb_rle.dcm", "reportsi.dcm", "waveform_ecg.dcm"):
        cache.add_file(TEST_FILES / name)  # image, SR document and waveform leaf records
    return [s.study_instance_uid for s in cache.studies()]


def _extract(image: Path, out: Path) -> None:
    xorriso = require("xorriso")
    subprocess.run(
        [xorriso, "-osirrox", "on", "-indev", str(image), "-extract", "/", str(out)],
        check=True,
        capture_output=True,
    )


def _check_disc(root: Path, cache: Cache, uids: list[str]) -> None:
    dciodvfy, dcdirdmp, dcmdump = require("dciodvfy"), require("dcdirdmp"), require("dcmdump")
    checked = subprocess.run([dciodvfy, "DICOMDIR"], cwd=root, capture_output=True, text=True)
    assert not re.search(r"^Error", checked.stdout + checked.stderr, re.M), checked.stderr
    listing = subprocess.run(
        [dcdirdmp, "DICOMDIR"], cwd=root, capture_output=True, text=True, check=True
    )
    text = listing.stdout + listing.stderr  # dcdirdmp writes its dump to stderr
    refs = re.findall(r"-> (\S+)", text)
    expected = sum(len(cache.instances(study_uid=u)) for u in uids)
    assert len(refs) == expected
    for ref in refs:
        path = root / ref.replace("\\", "/")
        dumped = subprocess.run([dcmdump, str(path)], env=DCMTK_ENV, capture_output=True, text=True)
        assert dumped.returncode == 0 and "SOPInstanceUID" in dumped.stdout, ref
    assert text.count("\tSTUDY ") == len(uids)
    for record in pydicom.dcmread(root / "DICOMDIR").DirectoryRecordSequence:
        if "ReferencedFileID" in record:
            ds = pydicom.dcmread(root.joinpath(*record.ReferencedFileID), stop_before_pixels=True)
            assert ds.SOPInstanceUID == record.ReferencedSOPInstanceUIDInFile
            assert ds.file_meta.TransferSyntaxUID == record.ReferencedTransferSyntaxUIDInFile


def test_burn_iso_validated_by_dicom3tools_and_dcmtk(cache, tmp_path, capsys):
    uids = _fill(cache, tmp_path)
    assert main(["burn", *uids, "--iso", str(tmp_path / "disc.iso")]) == 0
    _extract(tmp_path / "disc.iso", tmp_path / "x")
    _check_disc(tmp_path / "x", cache, uids)
    assert (tmp_path / "x" / "README.TXT").exists() and (tmp_path / "x" / "INDEX.HTM").exists()


def test_burn_to_emulated_drive_with_xorriso_and_verify(cache, tmp_path, capsys):
    require("xorriso")
    uids = _fill(cache, tmp_path)
    drive = tmp_path / "drive.img"
    assert main(["burn", *uids, "--device", f"stdio:{drive}"]) == 0
    out = capsys.readouterr().out
    assert "verified: all" in out
    _extract(drive, tmp_path / "x")
    _check_disc(tmp_path / "x", cache, uids)


def test_burn_to_unwritable_drive_fails(cache, tmp_path, capsys):
    require("xorriso")
    uids = _fill(cache, tmp_path)
    assert main(["burn", *uids, "--device", "stdio:/proc/gv_no_such_dir/drive.img"]) == 1
    assert "failed" in capsys.readouterr().err


def test_import_dcmtk_dcmmkdir_genisoimage_media(cache, tmp_path):
    dcmmkdir, genisoimage = require("dcmmkdir"), require("genisoimage")
    medium = tmp_path / "medium"
    (medium / "DICOM").mkdir(parents=True)
    for i, path in enumerate(write_series(tmp_path / "s", 6), 1):
        path.rename(medium / "DICOM" / f"IM{i:06d}")
    subprocess.run(
        [dcmmkdir, "+r", "DICOM"], cwd=medium, env=DCMTK_ENV, check=True, capture_output=True
    )
    assert (medium / "DICOMDIR").exists()
    iso = tmp_path / "dcmtk.iso"
    subprocess.run([genisoimage, "-quiet", "-J", "-r", "-o", str(iso), str(medium)], check=True)
    report = import_path(iso, cache)
    assert report.imported == 6
    assert report.not_imported == []
    assert cache.counts()["instance"] == 6


def test_dicomdir_with_non_ascii_names_passes_dciodvfy(cache, tmp_path):
    for path in write_series(tmp_path / "s", 2):
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = "Ωμέγα^Søren"
        ds.StudyID = ""
        ds.save_as(path)
        cache.add_file(path)
    uids = [s.study_instance_uid for s in cache.studies()]
    assert main(["burn", *uids, "--iso", str(tmp_path / "utf8.iso")]) == 0
    _extract(tmp_path / "utf8.iso", tmp_path / "x")
    _check_disc(tmp_path / "x", cache, uids)
    ds = pydicom.dcmread(tmp_path / "x" / "DICOMDIR")
    assert str(ds.DirectoryRecordSequence[0].PatientName) == "Ωμέγα^Søren"


def test_xorriso_reports_the_space_of_an_emulated_drive(tmp_path):
    require("xorriso")
    from gearview.media.burn import XorrisoBackend

    space = XorrisoBackend().media_space(f"stdio:{tmp_path / 'drive.img'}")
    assert space is not None and space > 1 << 20
    assert XorrisoBackend().media_space(f"stdio:{tmp_path / 'no' / 'dir' / 'x.img'}") is None
