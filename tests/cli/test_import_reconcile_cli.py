"""`gearview import` reconcile options: --map, refusals naming patients, conflicts, --replace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factory import write_series
from pydicom.uid import generate_uid

from gearview.cli import main


def _error_line(err: str) -> str:
    """The one error line (progress lines of the preview may come before it, never after)."""
    lines = err.strip().splitlines()
    assert sum(line.startswith("gearview: error: ") for line in lines) == 1
    assert lines[-1].startswith("gearview: error: ") and "Traceback" not in err
    return lines[-1]


def _two_patients(folder: Path) -> None:
    write_series(folder / "A", 2, patient_id="EXT-1", patient_name="Outside^Anna")
    write_series(folder / "B", 1, patient_id="EXT-2", patient_name="Outside^Bert")


def test_patient_id_on_two_patients_is_refused_in_one_line(home, tmp_path: Path, capsys):
    _two_patients(tmp_path / "cd")
    assert main(["import", str(tmp_path / "cd"), "--patient-id", "MRN-1"]) == 1
    err = _error_line(capsys.readouterr().err)
    assert "'EXT-1'" in err and "'EXT-2'" in err and "--map" in err
    assert main(["ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_map_per_patient_json(home, tmp_path: Path, capsys):
    _two_patients(tmp_path / "cd")
    argv = ["import", str(tmp_path / "cd"), "--map", "EXT-1=MRN-1@LOCAL", "--map", "EXT-2=MRN-2"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["imported"] == 3 and out["conflicts"] == []
    assert sorted(
        (r["outside"]["patient_id"], r["local"]["patient_id"]) for r in out["reconciled"]
    ) == [
        ("EXT-1", "MRN-1"),
        ("EXT-2", "MRN-2"),
    ]
    assert main(["ls", "--json"]) == 0
    studies = json.loads(capsys.readouterr().out)
    assert sorted(
        (s["patient_id"], s["issuer_of_patient_id"], s["instances"]) for s in studies
    ) == [
        ("MRN-1", "LOCAL", 2),
        ("MRN-2", "", 1),
    ]


def test_conflict_reported_then_replaced_with_replace(home, tmp_path: Path, capsys):
    sop = generate_uid()
    write_series(tmp_path / "first", 1, patient_id="MRN-1", sop_uid=sop)
    assert main(["import", str(tmp_path / "first")]) == 0
    write_series(tmp_path / "cd", 1, patient_id="OTHER", sop_uid=sop)
    capsys.readouterr()
    assert main(["import", str(tmp_path / "cd"), "--json"]) == 0
    (conflict,) = json.loads(capsys.readouterr().out)["conflicts"]
    assert (conflict["sop_uid"], conflict["cached_patient_id"]) == (sop, "MRN-1")
    assert main(["import", str(tmp_path / "cd")]) == 0
    captured = capsys.readouterr()
    assert "1 not replaced" in captured.out and "--replace" in captured.err
    assert main(["import", str(tmp_path / "cd"), "--replace"]) == 0
    assert "1 cached instance(s) of another study replaced" in capsys.readouterr().out
    assert main(["ls", "--json"]) == 0
    assert [s["patient_id"] for s in json.loads(capsys.readouterr().out)] == ["OTHER"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--map", "EXT-1"], "not a mapping"),
        (["--map", "EXT-9=MRN-1"], "no outside patient 'EXT-9'"),
        (["--map", "EXT-1=A", "--map", "EXT-1=B"], "mapped twice"),
        (["--patient-id", "MRN-1", "--map", "EXT-1=MRN-1"], "cannot be combined"),
        (["--worklist", "RIS"], "--worklist needs --order"),
        (["--order", "ACC-1"], "no node has the worklist role"),
    ],
)
def test_reconcile_usage_errors_are_one_line(home, tmp_path: Path, capsys, extra, message):
    _two_patients(tmp_path / "cd")
    assert main(["import", str(tmp_path / "cd"), *extra]) == 1
    assert message in _error_line(capsys.readouterr().err)
