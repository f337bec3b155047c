"""De-identified copies checked by real peers: dicom3tools' dciodvfy finds no new error,
DCMTK storescp receives a `send --anonymize` that passes the marker scan, xorriso reads
a de-identified disc."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pydicom
import pytest
from deid_fixtures import (
    MARK,
    Planted,
    add_referencing_study,
    add_us_study,
    dicom_files,
    files_under,
    uids_in,
)
from edit_fixtures import add_mixed_study
from pydicom.uid import DeflatedExplicitVRLittleEndian

from gearview.cli import main
from gearview.config import load_config, save_config
from gearview.deid import DeidOptions
from gearview.media.export import BurnOptions, export_folder
from peers.storescp import StoreSCP
from peers.tools import require

pytestmark = pytest.mark.peers


def _errors(path: Path) -> set[str]:
    """dciodvfy's error lines for a file, values (quoted) left out."""
    done = subprocess.run(
        [require("dciodvfy"), "-new", str(path)], capture_output=True, text=True, check=False
    )
    lines = (done.stdout + done.stderr).splitlines()
    return {re.sub(r"\"[^\"]*\"|'[^']*'", "", line) for line in lines if line.startswith("Error")}


def _cache_hashes(cache) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files_under(cache.files_dir)
        if ".spool" not in p.parts
    }


def _original_uids(cache, study: str) -> set[str]:
    found: set[str] = set()
    for record in cache.instances(study_uid=study):
        found |= uids_in(pydicom.dcmread(record.path))
    return found - set(pydicom.uid.UID_dictionary)


def test_dciodvfy_reports_no_new_errors(cache, tmp_path):
    require("dciodvfy")
    studies = [
        add_referencing_study(cache, tmp_path / "ref"),
        add_mixed_study(cache, tmp_path / "mixed"),
    ]
    options = BurnOptions(deidentify=DeidOptions(allow_burned_in=True))
    export_folder(cache, studies, tmp_path / "out", options)
    originals = {
        str(r.sop_class_uid) + str(r.instance_number): r.path
        for s in studies
        for r in cache.instances(study_uid=s)
    }
    checked = 0
    for copy in dicom_files(tmp_path / "out"):
        ds = pydicom.dcmread(copy, stop_before_pixels=True)
        if ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
            continue  # dciodvfy cannot inflate: it fails on the original the same way
        source = originals[str(ds.SOPClassUID) + str(ds.get("InstanceNumber"))]
        new = _errors(copy) - _errors(source)
        assert not new, f"{ds.SOPClassUID.name}: {sorted(new)}"
        checked += 1
    assert checked == 15


def test_send_anonymize_to_storescp_passes_the_scan(home, cache, tmp_path, capsys):
    planted = Planted()
    study = add_referencing_study(cache, tmp_path / "src", planted)
    originals = _original_uids(cache, study)
    before = _cache_hashes(cache)
    with StoreSCP(tmp_path / "received") as scp:
        config = load_config(home)
        config.nodes = [scp.node("RESEARCH")]
        save_config(home, config)
        assert main(["send", "RESEARCH", study, "--anonymize"]) == 0
        assert "6 of 6 sent" in capsys.readouterr().out
        received = scp.received()
    files = files_under(tmp_path / "received")
    assert len(files) == len(received) == 6
    for path in files:
        data = path.read_bytes()
        assert MARK not in data and b"Marker" not in data, path.name
        assert not [uid for uid in originals if uid.encode() in data], path.name
        assert pydicom.dcmread(path).PatientIdentityRemoved == "YES"
    assert _cache_hashes(cache) == before
    assert not list(cache.spool_dir.glob("deid-send-*"))
    assert '"action": "deid.send"' in home.audit_log.read_text()


def test_send_anonymize_refuses_burned_in_before_queuing(home, cache, tmp_path, capsys):
    study = add_us_study(cache, tmp_path / "us")
    with StoreSCP(tmp_path / "received") as scp:
        config = load_config(home)
        config.nodes = [scp.node("RESEARCH")]
        save_config(home, config)
        assert main(["send", "RESEARCH", study, "--anonymize"]) == 4
        err = capsys.readouterr().err
        assert "refused: series 1 (US)" in err and "--allow-burned-in" in err
        assert not list((tmp_path / "received").iterdir())
        assert not list(home.jobs_dir.glob("*.json"))
        assert main(["anonymize", study, "--to", "RESEARCH", "--allow-burned-in"]) == 0
        (received,) = scp.received()
    (path,) = files_under(tmp_path / "received")
    copy = pydicom.dcmread(path)
    assert str(copy.SOPInstanceUID) == received and copy.PatientIdentityRemoved == "YES"
    assert "not de-identified" in " ".join(copy.DeidentificationMethod)


def test_burn_anonymize_iso_read_back_by_xorriso(cache, tmp_path):
    xorriso = require("xorriso")
    planted = Planted()
    study = add_referencing_study(cache, tmp_path / "src", planted)
    originals = _original_uids(cache, study)
    image = tmp_path / "anon.iso"
    assert main(["burn", study, "--iso", str(image), "--anonymize", "--retain-dates"]) == 0
    out = tmp_path / "x"
    subprocess.run(
        [xorriso, "-osirrox", "on", "-indev", str(image), "-extract", "/", str(out)],
        check=True,
        capture_output=True,
    )
    files = dicom_files(out)
    assert len(files) == 6
    for path in files_under(out):
        data = path.read_bytes()
        assert MARK not in data and b"Marker" not in data, path.name
        assert not [uid for uid in originals if uid.encode() in data], path.name
    codes = {
        tuple(i.CodeValue for i in pydicom.dcmread(p).DeidentificationMethodCodeSequence)
        for p in files
    }
    assert codes == {("113100", "113106")}
