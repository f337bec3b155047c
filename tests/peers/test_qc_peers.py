"""The QC promise against real peers: a correction survives a modality re-sending the study
(storescu into `gearview serve`), nothing with findings reaches storescp, a burned disc of a
corrected study holds no byte of the wrong name."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from factory import make_ct, write_series
from pydicom.uid import generate_uid

from gearview.cli import main
from gearview.config import load_config
from gearview.edit.corrections import open_cache
from gearview.home import Home
from gearview.store import audit
from peers.scp import AET, dcmtk
from peers.storescp import StoreSCP
from peers.tools import require

pytestmark = pytest.mark.peers
WRONG = {"name": "Wrongman^Walter", "id": "WRONG-17"}


def _serve(home: Home) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gearview", "serve", "--port", "0", "--aet", AET,
         "--bind", "127.0.0.1"],
        env={**os.environ, "GEARVIEW_HOME": str(home.root)},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith(f"listening on {AET}@127.0.0.1:"), line
    return proc, int(line.rsplit(":", 1)[1])


def _storescu(port: int, *paths: Path) -> subprocess.CompletedProcess[str]:
    return dcmtk("storescu", "-aec", AET, "127.0.0.1", str(port), *map(str, paths))


def _cached(home: Home, study: str) -> list[pydicom.Dataset]:
    cache = open_cache(home, load_config(home))
    try:
        return [pydicom.dcmread(r.path) for r in cache.instances(study_uid=study)]
    finally:
        cache.close()


def _ls(capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    assert main(["ls", "--json"]) == 0
    return {s["study_uid"]: s for s in json.loads(capsys.readouterr().out)}


def test_a_correction_survives_the_modality_resending(home: Home, tmp_path, capsys) -> None:
    require("storescu")
    study = generate_uid()
    originals = write_series(tmp_path / "modality", 4, study_uid=study,
                             patient_name=WRONG["name"], patient_id=WRONG["id"])
    proc, port = _serve(home)
    try:
        assert _storescu(port, *originals).returncode == 0
        assert main(["edit", study, "--set", "PatientName=Right^Rita", "--set",
                     "PatientID=RIGHT-1"]) == 0
        capsys.readouterr()
        resent = _storescu(port, *originals)  # the modality sends the study again
        assert resent.returncode == 0
        late = make_ct(study, pydicom.dcmread(originals[0]).SeriesInstanceUID, 5,
                       patient_name=WRONG["name"], patient_id=WRONG["id"])
        late.save_as(tmp_path / "late.dcm", enforce_file_format=True)
        assert _storescu(port, tmp_path / "late.dcm").returncode == 0
        instances = _cached(home, study)
        assert len(instances) == 5
        assert {(str(d.PatientName), d.PatientID) for d in instances} == {("Right^Rita",
                                                                           "RIGHT-1")}
        kept = instances[0].OriginalAttributesSequence[-1].ModifiedAttributesSequence[0]
        assert (str(kept.PatientName), kept.PatientID) == (WRONG["name"], WRONG["id"])

        assert main(["import", str(tmp_path / "modality")]) == 0  # the same folder again
        capsys.readouterr()
        assert {d.PatientID for d in _cached(home, study)} == {"RIGHT-1"}
        standing = _ls(capsys)[study]
        assert standing["status"] == "edited" and standing["findings"] == []
        assert standing["patient_id"] == "RIGHT-1" and standing["instances"] == 5

        assert main(["edit", study, "--undo"]) == 0
        capsys.readouterr()
        assert _storescu(port, *originals).returncode == 0
        assert {d.PatientID for d in _cached(home, study)} >= {WRONG["id"]}
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    actions = [r["action"] for r in audit.read(home)]
    assert actions.count("correction re-applied") >= 4 + 1 + 4
    received = [r for r in audit.read(home) if r["action"] == "receive"]
    assert received and received[1]["calling_ae"] == "STORESCU"
    assert received[1]["studies"] == {study: 4} and received[1]["corrected"] == 4


def _mixed(home: Home, tmp_path: Path) -> str:
    study, series = generate_uid(), generate_uid()
    cache = open_cache(home, load_config(home))
    try:
        for number, pid in enumerate(("PID-A", "PID-A", "PID-B"), 1):
            path = tmp_path / f"{number}.dcm"
            make_ct(study, series, number, patient_id=pid).save_as(path, enforce_file_format=True)
            cache.add_file(path)
    finally:
        cache.close()
    return study


def test_a_mixed_patient_study_is_not_sent_unless_overridden(home, tmp_path, capsys) -> None:
    study = _mixed(home, tmp_path)
    assert main(["check", study]) == 4
    out = capsys.readouterr().out
    assert "mixed-patient" in out and "'PID-A' (2 instances)" in out and "'PID-B'" in out
    assert main(["check", study, "--json"]) == 4
    codes = {f["code"] for f in json.loads(capsys.readouterr().out)}
    assert codes == {"mixed-patient", "foreign-instance"}
    with StoreSCP(tmp_path / "received") as scp:
        node = f"{scp.aet}@127.0.0.1:{scp.port}"
        assert main(["send", node, study]) == 4
        err = capsys.readouterr().err
        assert "send refused" in err and "mixed-patient" in err and "--force" in err
        assert list(scp.out.iterdir()) == []
        assert main(["send", node, study, "--force"]) == 1  # an override needs a reason
        assert "--reason" in capsys.readouterr().err and list(scp.out.iterdir()) == []
        assert main(["send", node, study, "--force", "--reason", "PID fixed at PACS"]) == 0
        capsys.readouterr()
        assert len(list(scp.out.iterdir())) == 3
    (override,) = [r for r in audit.read(home) if r["action"] == "override"]
    assert override["reason"] == "PID fixed at PACS" and override["operation"] == "send"
    sends = [r for r in audit.read(home) if r["action"] == "send"]
    assert sends[-1]["sent"] == 3 and sends[-1]["override_reason"] == "PID fixed at PACS"
    standing = _ls(capsys)[study]
    assert standing["status"] == "sent"
    assert [(s["node"], s["instances"]) for s in standing["sent"]] == [(scp.aet, 3)]


def test_two_studies_sharing_a_series_uid_are_both_complete(home, tmp_path, capsys) -> None:
    series = generate_uid()
    first, second = generate_uid(), generate_uid()
    write_series(tmp_path / "a", 2, study_uid=first, series_uid=series)
    write_series(tmp_path / "b", 3, study_uid=second, series_uid=series, patient_id="P2")
    assert main(["import", str(tmp_path)]) == 0
    capsys.readouterr()
    before = _ls(capsys)
    assert {uid: (s["series"], s["instances"]) for uid, s in before.items()} == {
        first: (1, 2), second: (1, 3)}
    assert before[first]["findings"] == ["series-in-several-studies"]
    assert main(["store", "rebuild"]) == 0
    capsys.readouterr()
    after = _ls(capsys)
    assert {u: (s["series"], s["instances"], s["findings"]) for u, s in after.items()} == {
        u: (s["series"], s["instances"], s["findings"]) for u, s in before.items()}


def test_an_import_never_overwrites_another_patients_instance(home, tmp_path, capsys) -> None:
    sop = generate_uid()
    local = tmp_path / "local"
    local.mkdir()
    make_ct(generate_uid(), generate_uid(), sop_uid=sop, patient_id="LOCAL-1").save_as(
        local / "a.dcm", enforce_file_format=True)
    assert main(["import", str(local)]) == 0
    cache = open_cache(home, load_config(home))
    cached = cache.instance(sop).path
    cache.close()
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    disc = tmp_path / "disc"
    disc.mkdir()
    make_ct(generate_uid(), generate_uid(), sop_uid=sop, patient_id="OUTSIDE-9").save_as(
        disc / "IM000001", enforce_file_format=True)
    capsys.readouterr()
    assert main(["import", str(disc), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["imported"] == 0
    assert "cached under another patient 'LOCAL-1'" in report["not_imported"][0]["reason"]
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest


def test_a_corrected_study_burned_carries_no_byte_of_the_wrong_name(home, tmp_path, capsys):
    xorriso = require("xorriso")
    study = generate_uid()
    write_series(tmp_path / "src", 3, study_uid=study, patient_name=WRONG["name"],
                 patient_id=WRONG["id"])
    assert main(["import", str(tmp_path / "src")]) == 0
    assert main(["edit", study, "--set", "PatientName=Right^Rita", "--set",
                 "PatientID=RIGHT-1"]) == 0
    assert main(["edit", study, "--set", "StudyDescription=Head CT"]) == 0
    assert main(["burn", study, "--iso", str(tmp_path / "disc.iso"), "--no-viewer"]) == 0
    out = tmp_path / "extracted"
    subprocess.run([xorriso, "-osirrox", "on", "-indev", str(tmp_path / "disc.iso"),
                    "-extract", "/", str(out)], check=True, capture_output=True)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "DICOMDIR" for p in files)
    for path in files:
        data = path.read_bytes()
        for wrong in (b"Wrongman", WRONG["id"].encode()):
            assert wrong not in data, f"{path.relative_to(out)} holds {wrong!r}"
    images = [pydicom.dcmread(p) for p in files if p.parent.name.startswith("SE")]
    assert len(images) == 3 and all(str(d.PatientName) == "Right^Rita" for d in images)
    assert all(d.StudyDescription == "Head CT" for d in images)
    # the description's previous value is no identity: that item stays on the disc
    for image in images:
        (item,) = image.OriginalAttributesSequence
        assert item.ModifiedAttributesSequence[0].StudyDescription == "Synthetic CT"
