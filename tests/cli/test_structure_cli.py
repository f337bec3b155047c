"""`gearview series move`, `study split`, `study merge`: the GUI's engine from the command line.

Same expectations as the engine and GUI tests: consistent UIDs and
demographics, all or nothing, audited, undoable; one line and exit 1 for an
unknown UID, a refused merge or a move into another patient's study without
`--force`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from edit_fixtures import snapshot
from factory import write_series
from pydicom.uid import generate_uid

from gearview.cli import main
from gearview.store import Cache, audit


def _study(cache: Cache, folder: Path, series: int = 2, **kw) -> tuple[str, list[str]]:
    study, uids = generate_uid(), []
    for number in range(series):
        uids.append(generate_uid())
        for path in write_series(folder / str(number), 2, study_uid=study, series_uid=uids[-1],
                                 series_number=number + 1, **kw):
            cache.add_file(path)
    return study, uids


def _fails(capsys, argv: list[str], fragment: str) -> None:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gearview: error:") and fragment in err, err


def test_series_move_same_patient_then_undo(cache, tmp_path, capsys):
    source, series = _study(cache, tmp_path / "a", patient_id="P1")
    target, _ = _study(cache, tmp_path / "b", series=1, patient_id="P1")
    before = snapshot(cache)
    assert main(["series", "move", series[0], "--to", target, "--reason", "wrong study"]) == 0
    assert f"into study {target}" in capsys.readouterr().out
    assert {r.study_instance_uid for r in cache.instances(series_uid=series[0])} == {target}
    assert (cache.study(source).number_of_study_related_series,
            cache.study(target).number_of_study_related_series) == (1, 2)
    record = audit.read(cache.home)[-1]
    assert (record["action"], record["reason"]) == ("move-series", "wrong study")
    assert main(["edit", target, "--undo"]) == 0
    assert snapshot(cache) == before


def test_series_move_into_another_patients_study_needs_force(cache, tmp_path, capsys):
    _, series = _study(cache, tmp_path / "a", patient_name="Wrong^Pat", patient_id="W1")
    target, _ = _study(cache, tmp_path / "b", series=1, patient_name="Right^Pat",
                       patient_id="R1")
    before = snapshot(cache)
    _fails(capsys, ["series", "move", series[0], "--to", target], "another patient")
    assert snapshot(cache) == before
    assert main(["series", "move", series[0], "--to", target, "--force"]) == 0
    moved = cache.instances(series_uid=series[0])
    ds = pydicom.dcmread(moved[0].path)
    assert (str(ds.PatientName), ds.PatientID, ds.StudyInstanceUID) == (
        "Right^Pat", "R1", target)
    assert not cache.study(target).mismatch


def test_unknown_uids_are_one_line_errors(cache, tmp_path, capsys):
    study, series = _study(cache, tmp_path / "a")
    before = snapshot(cache)
    _fails(capsys, ["series", "move", "1.2.3", "--to", study], "no series 1.2.3")
    _fails(capsys, ["series", "move", series[0], "--to", "1.2.3"], "no study 1.2.3")
    _fails(capsys, ["study", "split", "1.2.3", series[0]], "no study 1.2.3")
    _fails(capsys, ["study", "split", study, series[0], "9.9.9"],
           f"no series 9.9.9 in study {study}")
    _fails(capsys, ["study", "split", study, *series], "not all")
    _fails(capsys, ["study", "merge", study, "1.2.3"], "no study 1.2.3")
    assert snapshot(cache) == before


def test_study_split_prints_the_new_study(cache, tmp_path, capsys):
    study, series = _study(cache, tmp_path / "a", patient_id="P1")
    capsys.readouterr()
    assert main(["study", "split", study, series[1], "--reason", "two exams"]) == 0
    new_uid = capsys.readouterr().out.split("new study ", 1)[1].split(":", 1)[0]
    assert main(["ls", "--json"]) == 0
    rows = {s["study_uid"]: s for s in json.loads(capsys.readouterr().out)}
    assert set(rows) == {study, new_uid}
    assert (rows[study]["series"], rows[new_uid]["series"]) == (1, 1)
    assert rows[new_uid]["patient_id"] == "P1"
    assert audit.read(cache.home)[-1]["action"] == "split-study"


@pytest.mark.parametrize("same", [False, True])
def test_study_merge_refuses_different_patients(cache, tmp_path, capsys, same):
    first, _ = _study(cache, tmp_path / "a", series=1, patient_id="SAME")
    second, _ = _study(cache, tmp_path / "b", series=2, patient_id="SAME" if same else "OTHER")
    before = snapshot(cache)
    if not same:
        _fails(capsys, ["study", "merge", first, second], "different patients")
        assert snapshot(cache) == before
        return
    assert main(["study", "merge", first, second]) == 0
    assert cache.study(first) is None and cache.study(second).number_of_study_related_series == 3
