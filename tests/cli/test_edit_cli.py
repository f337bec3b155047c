"""`gearview edit`: one-line errors on bad values (nothing changed), new values in `ls --json`, undo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from edit_fixtures import snapshot
from factory import write_series
from gearview.cli import main
from gearview.store import Cache


@pytest.fixture
def study(cache: Cache, tmp_path: Path) -> str:
    uid = generate_uid()
    for path in write_series(tmp_path / "src", 3, study_uid=uid, patient_id="OLD"):
        cache.add_file(path)
    return uid


def _ls(capsys: pytest.CaptureFixture) -> list[dict]:
    capsys.readouterr()
    assert main(["ls", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_edit_sets_values_and_ls_shows_them(
    study: str, cache: Cache, capsys: pytest.CaptureFixture
) -> None:
    code = main(
        [
            "edit",
            study,
            "--set",
            "PatientName=Doe^Jane",
            "PatientID=MRN7",
            "--set",
            "AccessionNumber=",
            "--reason",
            "wrong patient",
        ]
    )
    assert code == 0
    assert "edited 3 of 3 instance(s)" in capsys.readouterr().out
    (row,) = _ls(capsys)
    assert (row["patient_name"], row["patient_id"], row["accession"]) == ("Doe^Jane", "MRN7", "")


@pytest.mark.parametrize(
    "assignment, fragment",
    [
        ("PatientBirthDate=19991332", "PatientBirthDate"),
        ("PatientSex=Q", "PatientSex"),
        ("StudyInstanceUID=1.2.3", "StudyInstanceUID"),
        ("NoSuchThing=1", "unknown attribute"),
        ("PatientName", "KEYWORD=VALUE"),
    ],
)
def test_invalid_value_one_line_error_nothing_changed(
    study: str, cache: Cache, capsys: pytest.CaptureFixture, assignment: str, fragment: str
) -> None:
    before = snapshot(cache)
    capsys.readouterr()
    assert main(["edit", study, "--set", "PatientID=NEW", "--set", assignment]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gearview: error:") and fragment in err
    assert snapshot(cache) == before


def test_unknown_study(cache: Cache, capsys: pytest.CaptureFixture) -> None:
    assert main(["edit", "1.2.3", "--set", "PatientID=X"]) == 1
    assert "no study 1.2.3" in capsys.readouterr().err


def test_undo(study: str, cache: Cache, capsys: pytest.CaptureFixture) -> None:
    before = snapshot(cache)
    assert main(["edit", study, "--set", "PatientID=NEW"]) == 0
    assert main(["edit", study, "--undo"]) == 0
    assert snapshot(cache) == before
    assert main(["edit", study, "--undo"]) == 1
    assert "no edit of study" in capsys.readouterr().err


def test_binary_exit_code_and_no_traceback(study: str, cache: Cache) -> None:
    gearview = Path(sys.executable).parent / "gearview"
    proc = subprocess.run(
        [str(gearview), "edit", study, "--set", "PatientName=a^b^c^d^e^f"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "PatientName" in proc.stderr
