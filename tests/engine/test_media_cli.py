"""`gearview import` and `gearview burn` in-process: output, reconciliation, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pydicom.data
from factory import write_series

from gearview.cli import main
from gearview.home import Home
from gearview.media.importer import preview
from gearview.store import Cache


def test_import_json_and_reconcile(home, tmp_path: Path, capsys) -> None:
    write_series(tmp_path / "cd", 3, patient_id="OUT1")
    (tmp_path / "cd" / "junk.bin").write_bytes(b"junk")
    assert (
        main(["import", str(tmp_path / "cd"), "--patient-id", "MRN1", "--issuer", "HOSP", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["imported"] == 3 and out["not_imported"][0]["file"] == "junk.bin"
    assert Path(out["report"]).exists()
    assert main(["ls", "--json"]) == 0
    (study,) = json.loads(capsys.readouterr().out)
    assert (study["patient_id"], study["issuer_of_patient_id"]) == ("MRN1", "HOSP")


def test_import_text_output_lists_skipped_files(home, tmp_path: Path, capsys) -> None:
    write_series(tmp_path / "cd", 1)
    (tmp_path / "cd" / "empty").write_bytes(b"")
    assert main(["import", str(tmp_path / "cd")]) == 0
    captured = capsys.readouterr()
    assert "imported 1 instance(s)" in captured.out
    assert "'empty': empty file" in captured.err and "report:" in captured.err


def test_import_errors_are_one_line(home, tmp_path: Path, capsys) -> None:
    assert main(["import", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err
    assert main(["import", str(tmp_path), "--issuer", "X"]) == 1
    assert "--issuer needs --patient-id" in capsys.readouterr().err
    assert main(["import", str(tmp_path), "--patient-id", "a\\b"]) == 1
    assert "invalid patient ID" in capsys.readouterr().err


def test_burn_errors_are_one_line(home, tmp_path: Path, capsys) -> None:
    assert main(["burn", "1.2.3", "--iso", str(tmp_path / "x.iso")]) == 1
    err = capsys.readouterr().err
    assert "no study 1.2.3" in err and "Traceback" not in err
    assert not (tmp_path / "x.iso").exists()


def test_burn_iso_with_dvd_jpeg_profile_keeps_jpeg(home, tmp_path: Path, capsys) -> None:
    jpeg = Path(pydicom.data.__file__).parent / "test_files" / "SC_rgb_jpeg_dcmtk.dcm"
    assert main(["import", str(jpeg.parent / "SC_rgb_jpeg_dcmtk.dcm")]) == 1  # not a medium
    capsys.readouterr()
    (tmp_path / "cd").mkdir()
    (tmp_path / "cd" / "IMG").write_bytes(jpeg.read_bytes())
    assert main(["import", str(tmp_path / "cd")]) == 0
    uid = str(pydicom.dcmread(jpeg, stop_before_pixels=True).StudyInstanceUID)
    target = tmp_path / "dvd.iso"
    args = ["burn", uid, "--iso", str(target), "--profile", "STD-GEN-DVD-JPEG", "--medium", "DVD"]
    assert main(args) == 0
    capsys.readouterr()
    fresh = tmp_path / "fresh"
    cache = Cache(Home(fresh))
    try:
        with preview(target, cache) as found:
            (inst,) = found.instances
            assert inst.info.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
    finally:
        cache.close()
