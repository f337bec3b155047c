"""`gearview ls`, `node`, `store`: SPEC §3 shapes, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from factory import write_series

from gearview.cli import main
from gearview.home import Home
from gearview.store import Cache

STUDY_KEYS = {
    "study_uid",
    "patient_name",
    "patient_id",
    "issuer_of_patient_id",
    "birth_date",
    "sex",
    "study_date",
    "study_time",
    "accession",
    "study_id",
    "description",
    "referring_physician",
    "modalities",
    "series",
    "instances",
}


@pytest.fixture
def filled(cache: Cache, tmp_path: Path) -> Cache:
    for p in write_series(tmp_path / "a", 3, patient_name="Doe^Jane", patient_id="MRN1"):
        cache.add_file(p)
    for p in write_series(
        tmp_path / "b", 2, patient_name="Roe^Rick", patient_id="MRN2", modality="MR"
    ):
        cache.add_file(p)
    return cache


def test_ls_json_has_the_spec_shape(filled: Cache, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--json"]) == 0
    studies = json.loads(capsys.readouterr().out)
    assert len(studies) == 2
    assert all(set(s) == STUDY_KEYS | {"status", "sent", "findings"} for s in studies)
    assert {(s["status"], tuple(s["sent"]), tuple(s["findings"])) for s in studies} == {
        ("received", (), ())
    }
    by_id = {s["patient_id"]: s for s in studies}
    assert by_id["MRN1"]["patient_name"] == "Doe^Jane"
    assert by_id["MRN1"]["instances"] == 3 and by_id["MRN1"]["series"] == 1
    assert by_id["MRN2"]["modalities"] == ["MR"]


def test_ls_study_lists_series(filled: Cache, capsys: pytest.CaptureFixture[str]) -> None:
    uid = filled.studies("p.patient_id = ?", ["MRN1"])[0].study_instance_uid
    assert main(["ls", uid, "--json"]) == 0
    series = json.loads(capsys.readouterr().out)
    assert [set(s) for s in series] == [
        {"series_uid", "number", "modality", "description", "instances"}
    ]
    assert series[0]["instances"] == 3


def test_ls_table_and_unknown_study(filled: Cache, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert "Doe^Jane" in out and "Roe^Rick" in out
    assert main(["ls", "1.2.3.4"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no study 1.2.3.4" in err


def test_node_add_ls_rm(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "add", "PACS", "ORTHANC@127.0.0.1:4242", "--roles", "query,retrieve"]) == 0
    assert main(["node", "ls", "--json"]) == 0
    out = capsys.readouterr().out
    nodes = json.loads(out[out.index("[") :])
    assert nodes == [
        {
            "name": "PACS",
            "ae_title": "ORTHANC",
            "host": "127.0.0.1",
            "port": 4242,
            "roles": ["query", "retrieve"],
            "tls": False,
        }
    ]
    assert main(["node", "add", "PACS", "X@h:1"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["node", "rm", "PACS"]) == 0
    assert main(["node", "rm", "PACS"]) == 1
    assert "no node named" in capsys.readouterr().err


@pytest.mark.parametrize(
    "address", ["noport@host", "host:104", "WAY_TOO_LONG_AE_TITLE@h:104", "A@h:99999"]
)
def test_node_add_refuses_bad_addresses(
    home: Home, address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["node", "add", "X", address]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gearview: error:") and err.count("\n") == 1


def test_store_check_exit_code_and_rebuild(
    filled: Cache, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", "check"]) == 0
    assert "0 missing, 0 orphan, 0 unreadable" in capsys.readouterr().out
    victim = filled.instances()[0].path
    victim.unlink()
    assert main(["store", "check", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is False and len(report["missing"]) == 1
    assert main(["store", "rebuild"]) == 0
    assert main(["store", "check"]) == 0


def test_bad_config_is_one_line_not_a_traceback(home: Home) -> None:
    home.config_file.write_text("[server]\nport = 99999\n")
    result = subprocess.run(
        [sys.executable, "-m", "gearview", "ls"],
        capture_output=True,
        text=True,
        env={"GEARVIEW_HOME": str(home.root), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "gearview: error: server.port: a port is between 0 and 65535, got 99999"
    )
    assert "Traceback" not in result.stderr
