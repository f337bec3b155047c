"""pytest-qt: the reconcile panel lists candidates and applies an order; a choice per conflict;
the Edit study form fills its fields from a worklist order."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from factory import write_series
from peers.worklist import WorklistSCP, order
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt

from gearview.config import Config
from gearview.identity.lookup import PatientIdentity
from gearview.store import Cache
from gearview.ui.edit_dialog import EditStudyDialog
from gearview.ui.import_dialog import ImportDialog
from gearview.ui.reconcile_panel import CandidatePicker, form_values
from gearview.ui.workers import WorkerPool

LOCAL_NAME = "Müller^Jürgen"


@pytest.fixture
def ris(tmp_path: Path):
    scp = WorklistSCP(tmp_path / "ris")
    scp.add(order("ACC-1", LOCAL_NAME, "MRN-1", issuer="LOCAL", birth_date="19800214", sex="M"))
    with scp:
        yield scp


def _scan(qtbot, dialog: ImportDialog, folder: Path) -> None:
    dialog.path_edit.setText(str(folder))
    dialog.start_scan()
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=10_000)


def test_panel_lists_candidates_and_applies_an_order(qtbot, cache: Cache, ris, tmp_path: Path):
    for path in write_series(
        tmp_path / "local",
        1,
        patient_id="MRN-1",
        issuer="LOCAL",
        patient_name=LOCAL_NAME,
        birth_date="19800214",
        sex="M",
    ):
        cache.add_file(path)
    write_series(
        tmp_path / "cd",
        2,
        patient_id="EXT-1",
        patient_name="MULLER^JURGEN",
        birth_date="19800214",
        sex="M",
        accession="X1",
    )
    config = Config()
    config.nodes = [ris.node()]
    dialog = ImportDialog(cache, report_dir=tmp_path / "reports", config=config)
    qtbot.addWidget(dialog)
    _scan(qtbot, dialog, tmp_path / "cd")
    (row,) = dialog.reconcile_panel.rows
    qtbot.waitUntil(lambda: "candidate(s) found" in row.status.text(), timeout=10_000)
    sources = [c.source for c in row.candidates()]
    assert sources == ["worklist RIS", "cache"]
    assert "accents" in row.candidates()[1].reason
    row.accession.setText("ACC-1")
    row.match_order()
    qtbot.waitUntil(lambda: row.status.text().startswith("order ACC-1"), timeout=10_000)
    assert row.choice.currentData().order.accession == "ACC-1"
    dialog.start_import()
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=10_000)
    assert dialog.report.imported == 2
    study = next(s for s in cache.studies() if s.accession_number == "ACC-1")
    assert (study.patient_id, study.issuer_of_patient_id, study.patient_name) == (
        "MRN-1",
        "LOCAL",
        LOCAL_NAME,
    )
    ds = pydicom.dcmread(cache.instances(study_uid=study.study_instance_uid)[0].path)
    assert ds.OtherPatientIDsSequence[0].PatientID == "EXT-1"
    assert "Reconciled (IHE IRWF)" in dialog.report_view.toPlainText()
    dialog.reject()


def test_a_choice_per_conflict(qtbot, cache: Cache, tmp_path: Path):
    sop = generate_uid()
    (cached,) = write_series(tmp_path / "here", 1, patient_id="MRN-1", sop_uid=sop)
    cache.add_file(cached)
    write_series(tmp_path / "cd", 1, patient_id="OTHER", sop_uid=sop)
    dialog = ImportDialog(cache, report_dir=tmp_path / "reports", config=Config())
    qtbot.addWidget(dialog)
    _scan(qtbot, dialog, tmp_path / "cd")
    dialog.start_import()
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=10_000)
    assert dialog.report.imported == 0 and dialog.conflicts.topLevelItemCount() == 1
    assert not dialog.conflicts.isHidden() and "another patient" in dialog.conflicts.topLevelItem(
        0
    ).text(1)
    assert cache.study(cache.instance(sop).study_instance_uid).patient_id == "MRN-1"
    first = dialog.report
    dialog.conflicts.topLevelItem(0).setCheckState(0, Qt.CheckState.Checked)
    dialog.replace_checked()
    qtbot.waitUntil(lambda: dialog.report is not first, timeout=10_000)
    assert dialog.report.imported == 1 and dialog.report.conflicts_replaced == 1
    assert dialog.conflicts.isHidden()
    assert cache.study(cache.instance(sop).study_instance_uid).patient_id == "OTHER"
    dialog.reject()


def test_edit_form_fills_from_a_worklist_order(qtbot, cache: Cache, ris, tmp_path: Path):
    for path in write_series(tmp_path / "s", 1, patient_id="WRONG", patient_name="Wrong^Name"):
        cache.add_file(path)
    (record,) = cache.studies()
    config = Config()
    config.nodes = [ris.node()]
    pool = WorkerPool()
    picker = CandidatePicker(pool, config, lambda: cache.conn, PatientIdentity("", "", ""))
    qtbot.addWidget(picker)
    picker.accession.setText("ACC-1")
    picker.search_worklist()
    qtbot.waitUntil(lambda: picker.chosen is not None, timeout=10_000)
    dialog = EditStudyDialog(record)
    qtbot.addWidget(dialog)
    dialog.fill(form_values(picker.chosen))
    values = dialog.values()
    assert values["PatientID"] == "MRN-1" and values["PatientName"] == LOCAL_NAME
    assert values["AccessionNumber"] == "ACC-1" and values["PatientSex"] == "M"
    dialog.reason.setEditText("matched to the order")
    assert dialog.save_button.isEnabled()
    pool.shutdown()
