"""`gearview anonymize`, `burn --anonymize`: exit codes and one-line errors."""

from __future__ import annotations

import pydicom
import pytest
from deid_fixtures import add_referencing_study, add_us_study, dicom_files

from gearview.cli import main


def test_anonymize_to_folder(cache, tmp_path, capsys):
    study = add_referencing_study(cache, tmp_path / "src")
    out = tmp_path / "teaching"
    assert main(["anonymize", study, "--out", str(out), "--patient-name", "Case^7"]) == 0
    assert "6 de-identified instance(s) written" in capsys.readouterr().out
    names = {str(pydicom.dcmread(p).PatientName) for p in dicom_files(out)}
    assert names == {"Case^7"} and (out / "DICOMDIR").is_file()


def test_anonymize_refuses_ultrasound_with_exit_4_and_lists_it(cache, tmp_path, capsys):
    study = add_us_study(cache, tmp_path / "src")
    assert main(["anonymize", study, "--out", str(tmp_path / "out")]) == 4
    err = [line for line in capsys.readouterr().err.splitlines() if "anonymize [" not in line]
    assert err[0].startswith("refused: series 1 (US) instance 1 ")
    assert err[-1].startswith("gearview: error: 1 instance(s) may show identifying text")
    assert not (tmp_path / "out").exists()
    assert main(["anonymize", study, "--out", str(tmp_path / "out"), "--allow-burned-in"]) == 0


def test_anonymize_errors_are_one_line(cache, tmp_path, capsys):
    study = add_referencing_study(cache, tmp_path / "src")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    cases = [
        (["anonymize", study, "--out", str(tmp_path / "full")], "already exists"),
        (["anonymize", "1.2.3.9", "--out", str(tmp_path / "x")], "no study 1.2.3.9"),
        (["anonymize", study, "--out", str(tmp_path / "y"), "--patient-id", "A\\B"], "backslash"),
        (["anonymize", study, "--to", "NOSUCH"], "unknown node"),
        (["burn", study, "--iso", str(tmp_path / "a.iso"), "--retain-dates"], "--anonymize"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = [line for line in capsys.readouterr().err.splitlines() if " [" not in line]
        assert len(err) == 1 and err[0].startswith("gearview: error:") and message in err[0]
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(SystemExit) as usage:
        main(["anonymize", study])
    assert usage.value.code == 2
