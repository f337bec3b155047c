"""`gearview import --order ACC --worklist NODE` against wlmscpfs; PACS demographics via Orthanc."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from factory import write_series

from gearview.cli import main
from gearview.config import load_config, save_config
from gearview.home import Home
from gearview.store import audit
from peers.orthanc import orthanc_with
from peers.tools import DCMTK_ENV, free_port, require
from peers.worklist import WorklistSCP, order

pytestmark = pytest.mark.peers

ORDER_NAME = "Müller^Jürgen"


@pytest.fixture(scope="module")
def ris(tmp_path_factory: pytest.TempPathFactory):
    scp = WorklistSCP(tmp_path_factory.mktemp("ris"))
    scp.add(
        order(
            "ACC-1",
            ORDER_NAME,
            "MRN-1",
            issuer="LOCALHOSP",
            birth_date="19800214",
            sex="M",
            description="CT abdomen",
        )
    )
    with scp:
        yield scp


def _configure(home: Home, *nodes) -> None:
    config = load_config(home)
    config.nodes = list(nodes)
    save_config(home, config)


def _outside_disc(folder: Path) -> list[Path]:
    return write_series(
        folder, 3, patient_id="EXT-1", patient_name="MULLER^J", issuer="OUTSIDE", accession="X9"
    )


def test_import_with_order_adopts_the_order(home, ris, tmp_path: Path, capsys):
    _configure(home, ris.node())
    _outside_disc(tmp_path / "cd")
    assert main(["import", str(tmp_path / "cd"), "--order", "ACC-1", "--worklist", "RIS"]) == 0
    assert "imported 3 instance(s)" in capsys.readouterr().out
    assert main(["ls", "--json"]) == 0
    (study,) = json.loads(capsys.readouterr().out)
    assert study["instances"] == 3 and study["accession"] == "ACC-1"
    from gearview.store import Cache

    cache = Cache(home)
    try:
        paths = [i.path for i in cache.instances(study_uid=study["study_uid"])]
    finally:
        cache.close()
    for path in paths:
        ds = pydicom.dcmread(path)
        assert (ds.PatientID, ds.IssuerOfPatientID, str(ds.PatientName)) == (
            "MRN-1",
            "LOCALHOSP",
            ORDER_NAME,
        )
        assert (ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber) == (
            "19800214",
            "M",
            "ACC-1",
        )
        request = ds.RequestAttributesSequence[0]
        assert (request.RequestedProcedureID, request.RequestedProcedureDescription) == (
            "RPACC-1",
            "CT abdomen",
        )
        other = ds.OtherPatientIDsSequence[0]
        assert (other.PatientID, other.IssuerOfPatientID) == ("EXT-1", "OUTSIDE")
        before = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence[0]
        assert (before.PatientID, str(before.PatientName), before.AccessionNumber) == (
            "EXT-1",
            "MULLER^J",
            "X9",
        )
    dump = subprocess.run(
        [require("dcmdump"), str(paths[0])], capture_output=True, env=DCMTK_ENV
    ).stdout.decode("latin-1")
    assert "OriginalAttributesSequence" in dump and "COERCE" in dump and "EXT-1" in dump
    (record,) = [r for r in audit.read(home) if r["action"] == "media.import"]
    assert record["profile"] == "IRWF"
    (row,) = record["reconciled"]
    assert row["accession"] == "ACC-1" and row["source"] == "worklist RIS"
    assert row["outside"]["patient_id"] == "EXT-1" and row["local"]["name"] == ORDER_NAME


def test_unknown_accession_exits_1_and_imports_nothing(home, ris, tmp_path: Path, capsys):
    _configure(home, ris.node())
    _outside_disc(tmp_path / "cd")
    assert main(["import", str(tmp_path / "cd"), "--order", "NOPE"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no order with accession 'NOPE' on RIS" in err
    assert main(["ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_worklist_down_exits_5_with_one_line(home, tmp_path: Path):
    _outside_disc(tmp_path / "cd")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gearview",
            "import",
            str(tmp_path / "cd"),
            "--order",
            "ACC-1",
            "--worklist",
            f"WLM@127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**DCMTK_ENV, "GEARVIEW_HOME": str(home.root)},
    )
    assert done.returncode == 5
    assert done.stderr.count("\n") == 1 and "refused the connection" in done.stderr


def test_patient_id_known_only_on_the_pacs_takes_its_demographics(home, tmp_path: Path, capsys):
    local = write_series(
        tmp_path / "pacs",
        1,
        patient_id="MRN-7",
        patient_name="Schmidt^Anna",
        birth_date="19511224",
        sex="F",
    )
    pacs = orthanc_with(tmp_path / "orthanc", [local], aet="PACS1")
    try:
        _configure(home, pacs.node("PACS1"))
        write_series(tmp_path / "cd", 2, patient_id="EXT-3", patient_name="SCHMIDT^A")
        assert main(["import", str(tmp_path / "cd"), "--patient-id", "MRN-7", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
    finally:
        pacs.stop()
    (row,) = out["reconciled"]
    assert row["source"] == "PACS1"
    assert (row["local"]["name"], row["local"]["birth_date"], row["local"]["sex"]) == (
        "Schmidt^Anna",
        "19511224",
        "F",
    )
    assert main(["ls", "--json"]) == 0
    (study,) = json.loads(capsys.readouterr().out)
    assert (study["patient_id"], study["patient_name"], study["sex"]) == (
        "MRN-7",
        "Schmidt^Anna",
        "F",
    )
