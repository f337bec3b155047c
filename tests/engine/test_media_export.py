"""Export / burn: PS3.10 File-sets with DICOMDIR, IHE PDI content, ISO images, capacity,
burner failures (RELIABILITY 33, 40)."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pycdlib
import pydicom
import pydicom.data
import pytest
from factory import write_series
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from gearview.errors import Cancelled, StorageFullError
from gearview.home import Home
from gearview.jobs import CancelToken
from gearview.media import export as export_mod
from gearview.media.burn import BurnBackend, XorrisoBackend, verify
from gearview.media.dicomdir import file_id_is_conformant
from gearview.media.export import BurnOptions, CapacityError, burn_disc, export_iso, plan
from gearview.media.fileset import MediaWriteError
from gearview.media.importer import import_path
from gearview.store import Cache, audit

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def _read(iso_path: Path, joliet: str) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    buf = io.BytesIO()
    iso.get_file_from_iso_fp(buf, joliet_path=joliet)
    iso.close()
    return buf.getvalue()


def _listing(iso_path: Path) -> list[str]:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    names = [
        f"{root.rstrip('/')}/{f}" for root, _d, files in iso.walk(joliet_path="/") for f in files
    ]
    iso.close()
    return sorted(names)


def _two_studies(cache: Cache, tmp_path: Path) -> list[str]:
    for name, n in (("A", 4), ("B", 3)):
        for path in write_series(tmp_path / name, n):
            cache.add_file(path)
    return [s.study_instance_uid for s in cache.studies()]


def test_iso_has_fileset_pdi_and_round_trips_into_a_fresh_home(cache, tmp_path):
    uids = _two_studies(cache, tmp_path)
    result = export_iso(cache, uids, tmp_path / "disc.iso")
    names = _listing(tmp_path / "disc.iso")
    assert {"/DICOMDIR", "/README.TXT", "/INDEX.HTM"} <= set(names)
    dicom = [n for n in names if n.startswith("/DICOM/")]
    assert len(dicom) == 7 == result.instances
    assert all(file_id_is_conformant(n.strip("/").split("/")) for n in dicom)
    assert any(n.startswith("/IHE_PDI/") and n.endswith(".JPG") for n in names)
    ds = pydicom.dcmread(io.BytesIO(_read(tmp_path / "disc.iso", "/DICOMDIR")))
    refs = [r.ReferencedFileID for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    assert len(refs) == 7
    fresh = Cache(Home(tmp_path / "fresh"))
    try:
        report = import_path(tmp_path / "disc.iso", fresh)
        assert report.imported == 7
        assert sorted((s.to_json() for s in fresh.studies()), key=str) == sorted(
            (s.to_json() for s in cache.studies()), key=str
        )
        assert sorted(i.sop_instance_uid for i in fresh.instances()) == sorted(
            i.sop_instance_uid for i in cache.instances()
        )
    finally:
        fresh.close()


def test_general_purpose_profile_decompresses_and_dvd_j2k_keeps(cache, tmp_path):
    originals = {}
    for name in (
        "SC_rgb_rle.dcm",
        "GDCMJ2K_TextGBR.dcm",
        "MR_small_bigendian.dcm",
        "SC_rgb_small_odd_big_endian.dcm",
        "rtdose_expb.dcm",
    ):
        cache.add_file(TEST_FILES / name)
        source = pydicom.dcmread(TEST_FILES / name)
        originals[source.SOPInstanceUID] = source.pixel_array  # every one is lossless
    uids = [s.study_instance_uid for s in cache.studies()]
    export_iso(cache, uids, tmp_path / "cd.iso")
    seen = set()
    for name in _listing(tmp_path / "cd.iso"):
        if name.startswith("/DICOM/"):
            ds = pydicom.dcmread(io.BytesIO(_read(tmp_path / "cd.iso", name)))
            assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
            assert np.array_equal(ds.pixel_array, originals[ds.SOPInstanceUID]), name
            seen.add(ds.SOPInstanceUID)
    assert seen == set(originals)
    export_iso(
        cache, uids, tmp_path / "dvd.iso", BurnOptions(medium="DVD", profile="STD-GEN-DVD-J2K")
    )
    syntaxes = {
        pydicom.dcmread(io.BytesIO(_read(tmp_path / "dvd.iso", n))).file_meta.TransferSyntaxUID
        for n in _listing(tmp_path / "dvd.iso")
        if n.startswith("/DICOM/")
    }
    assert JPEG2000Lossless in syntaxes and RLELossless not in syntaxes


def test_capacity_refusal_and_split(cache, tmp_path, monkeypatch):
    uids = _two_studies(cache, tmp_path)
    monkeypatch.setitem(export_mod.MEDIA_CAPACITY, "CD", export_mod.OVERHEAD_BYTES + 5 * 12000)
    with pytest.raises(CapacityError, match="needs about"):
        export_iso(cache, uids, tmp_path / "x.iso")
    assert not (tmp_path / "x.iso").exists()
    discs = plan(cache, uids, BurnOptions(split=True))
    assert len(discs) == 2
    result = export_iso(cache, uids, tmp_path / "x.iso", BurnOptions(split=True))
    assert [p.name for p in result.images] == ["x_1.iso", "x_2.iso"]
    for image in result.images:
        assert "/DICOMDIR" in _listing(image)
    assert sum(len(d.instances) for d in result.discs) == 7


def test_preamble_zeroed_on_burned_media(cache, tmp_path):
    path = write_series(tmp_path / "cd", 1)[0]
    data = bytearray(path.read_bytes())
    data[:4] = b"MZ\x90\x00"
    path.write_bytes(bytes(data))
    import_path(tmp_path / "cd", cache)
    export_iso(cache, [s.study_instance_uid for s in cache.studies()], tmp_path / "out.iso")
    (name,) = [n for n in _listing(tmp_path / "out.iso") if n.startswith("/DICOM/")]
    assert _read(tmp_path / "out.iso", name)[:132] == b"\0" * 128 + b"DICM"


def test_html_index_escapes_dicom_values_and_empty_study_id(cache, tmp_path):
    for ds_path in write_series(tmp_path / "s", 1, patient_name="<script>alert(1)</script>^X"):
        ds = pydicom.dcmread(ds_path)
        ds.StudyID = ""
        ds.save_as(ds_path)
        cache.add_file(ds_path)
    export_iso(cache, [s.study_instance_uid for s in cache.studies()], tmp_path / "o.iso")
    page = _read(tmp_path / "o.iso", "/INDEX.HTM").decode()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_html_index_shows_names_and_dates_as_the_study_list_does(cache, tmp_path):
    for ds_path in write_series(tmp_path / "s", 1, patient_name="JONES^MARY"):
        ds = pydicom.dcmread(ds_path)
        ds.PatientBirthDate, ds.StudyDate = "19800101", "20240302"
        ds.save_as(ds_path)
        cache.add_file(ds_path)
    export_iso(cache, [s.study_instance_uid for s in cache.studies()], tmp_path / "o.iso")
    page = _read(tmp_path / "o.iso", "/INDEX.HTM").decode()
    assert "JONES, MARY" in page and "1980-01-01" in page and "2024-03-02" in page
    assert "19800101" not in page and "JONES^MARY" not in page


def test_portable_viewer_folder_is_copied(cache, tmp_path):
    uids = _two_studies(cache, tmp_path)
    viewer = tmp_path / "viewer"
    (viewer / "lib" / "plugins").mkdir(parents=True)
    (viewer / "Start Viewer.exe").write_bytes(b"MZ fake")
    (viewer / "lib" / "plugins" / "a.long.name.dll").write_bytes(b"x")
    export_iso(cache, uids, tmp_path / "v.iso", BurnOptions(viewer_dir=viewer))
    names = _listing(tmp_path / "v.iso")
    assert "/VIEWER/Start Viewer.exe" in names and "/VIEWER/lib/plugins/a.long.name.dll" in names
    assert b"VIEWER" in _read(tmp_path / "v.iso", "/README.TXT")


def test_cancel_while_writing_leaves_no_image(cache, tmp_path):
    uids = _two_studies(cache, tmp_path)
    token = CancelToken()

    def cancel_on_write(progress):
        if "ISO" in progress.message:
            token.cancel()

    with pytest.raises(Cancelled):
        export_iso(cache, uids, tmp_path / "c.iso", progress=cancel_on_write, token=token)
    assert list(tmp_path.glob("*.iso*")) == [] and list(tmp_path.glob(".c.iso*")) == []
    assert not list(cache.spool_dir.glob("export-*"))


def test_export_to_a_full_tmpfs_fails_cleanly(cache, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mnt)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("mounting a 5 MiB tmpfs is not permitted here (needs root)")
    try:
        for path in write_series(tmp_path / "big", 40, rows=256, cols=256):
            cache.add_file(path)
        before = sorted((i.sop_instance_uid, i.path.stat().st_size) for i in cache.instances())
        with pytest.raises(StorageFullError):
            export_iso(cache, [s.study_instance_uid for s in cache.studies()], mnt / "full.iso")
        assert list(mnt.iterdir()) == []
        after = sorted((i.sop_instance_uid, i.path.stat().st_size) for i in cache.instances())
        assert after == before
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


class _KilledBurner(BurnBackend):
    """A burner process that dies by SIGKILL mid-write (like a pulled USB drive)."""

    name = "killed"

    def available(self) -> bool:
        return True

    def command(self, image: Path, device: str) -> list[str]:
        return ["sh", "-c", f"head -c 4096 '{image}' > '{device}'; kill -9 $$"]


def test_burner_killed_mid_write_is_a_failed_burn(cache, tmp_path):
    uids = _two_studies(cache, tmp_path)
    before = sorted((i.sop_instance_uid, i.path.stat().st_size) for i in cache.instances())
    with pytest.raises(MediaWriteError, match="failed"):
        burn_disc(cache, uids, str(tmp_path / "drive.img"), backend=_KilledBurner())
    assert not [r for r in audit.read(cache.home) if r["action"] == "media.burn"]
    assert not list(cache.spool_dir.glob("burn-*"))
    assert sorted((i.sop_instance_uid, i.path.stat().st_size) for i in cache.instances()) == before


def test_verified_burn_is_audited(cache, tmp_path):
    uids = _two_studies(cache, tmp_path)
    result, verified = burn_disc(
        cache, uids, f"stdio:{tmp_path / 'drive.img'}", backend=_CopyBurner()
    )
    assert verified.ok and result.instances == 7
    (record,) = [r for r in audit.read(cache.home) if r["action"] == "media.burn"]
    assert record["instances"] == 7 and sorted(record["studies"]) == sorted(uids)


class _CopyBurner(BurnBackend):
    """An emulated drive written with `cp` (the xorriso backend is tested with the peers)."""

    name = "copy"

    def available(self) -> bool:
        return True

    def command(self, image: Path, device: str) -> list[str]:
        return ["cp", str(image), device.removeprefix("stdio:")]


def test_verify_detects_a_corrupted_disc(cache, tmp_path):
    uids = _two_studies(cache, tmp_path)
    (image,) = export_iso(cache, uids, tmp_path / "d.iso").images
    copy = tmp_path / "copy.iso"
    data = bytearray(image.read_bytes())
    data[-40000] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert verify(image, str(image)).ok
    result = verify(image, str(copy))
    assert not result.ok and result.mismatched


def test_xorriso_command_is_an_argument_list():
    cmd = XorrisoBackend().command(Path("/x/a b.iso"), "stdio:/tmp/o; rm -rf /")
    assert cmd[0] == "xorriso" and "dev=stdio:/tmp/o; rm -rf /" in cmd


def test_iso9660_names_are_level_1_with_separator(cache, tmp_path):
    uids = _two_studies(cache, tmp_path)
    export_iso(cache, uids, tmp_path / "l1.iso")
    iso = pycdlib.PyCdlib()
    iso.open(str(tmp_path / "l1.iso"))
    names = [f for _root, _dirs, files in iso.walk(iso_path="/") for f in files]
    iso.close()
    assert "DICOMDIR.;1" in names and "README.TXT;1" in names
    assert all(re.fullmatch(r"[A-Z0-9_]{1,8}\.[A-Z0-9_]{0,3};1", n) for n in names), names


class _TinyDisc(_CopyBurner):
    """A drive whose disc has only 100 KB free."""

    def media_space(self, device: str) -> int | None:
        return 100_000


def test_disc_too_small_is_refused_before_burning(cache, tmp_path):
    uids = _two_studies(cache, tmp_path)
    drive = tmp_path / "drive.img"
    with pytest.raises(MediaWriteError, match="MB free"):
        burn_disc(cache, uids, f"stdio:{drive}", backend=_TinyDisc())
    assert not drive.exists()
