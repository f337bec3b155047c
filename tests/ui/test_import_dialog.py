"""pytest-qt: the import dialog previews a medium as a checkable tree, imports ticked series."""

from __future__ import annotations

from pathlib import Path

from factory import write_series
from PySide6.QtCore import Qt

from gearview.ui.import_dialog import SERIES_ROLE, ImportDialog
from gearview.ui.reconcile_panel import MANUAL


def _series_items(dialog: ImportDialog) -> list:
    items, stack = [], [dialog.tree.topLevelItem(i) for i in range(dialog.tree.topLevelItemCount())]
    while stack:
        item = stack.pop()
        if item.data(0, SERIES_ROLE):
            items.append(item)
        stack.extend(item.child(i) for i in range(item.childCount()))
    return items


def test_preview_tree_and_selective_import(qtbot, cache, tmp_path: Path) -> None:
    write_series(tmp_path / "cd" / "A", 2, patient_name="Doe^Jane", patient_id="OUT1")
    write_series(tmp_path / "cd" / "B", 3, patient_name="Doe^Jane", patient_id="OUT1")
    (tmp_path / "cd" / "README.TXT").write_text("disc")
    dialog = ImportDialog(cache, report_dir=tmp_path / "reports")
    qtbot.addWidget(dialog)
    dialog.path_edit.setText(str(tmp_path / "cd"))
    dialog.start_scan()
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=10_000)
    top = [dialog.tree.topLevelItem(i) for i in range(dialog.tree.topLevelItemCount())]
    assert top[0].text(0) == "Doe, Jane (OUT1)" and top[0].toolTip(0) == "Doe^Jane"
    assert sorted(top[0].child(i).text(2) for i in range(top[0].childCount())) == ["2", "3"]
    assert top[1].text(0) == "Not importable (1)" and top[1].child(0).text(3).startswith(
        "not DICOM"
    )
    assert "2 study(ies)" in dialog.summary.text() and "5 DICOM file(s)" in dialog.summary.text()
    series = _series_items(dialog)
    small = next(item for item in series if item.text(2) == "2")
    small.setCheckState(0, Qt.CheckState.Unchecked)
    assert len(dialog.selected_series()) == 1
    (row,) = dialog.reconcile_panel.rows
    row.choose(row.choice.findData(MANUAL))
    row.patient_id.setText("MRN9")
    dialog.start_import()
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=10_000)
    assert dialog.report.imported == 3
    assert "not selected" in dialog.report_view.toPlainText()
    assert {s.patient_id for s in cache.studies()} == {"MRN9"}
    dialog.reject()


def test_scan_of_a_bad_path_reports_the_error(qtbot, cache, tmp_path: Path) -> None:
    dialog = ImportDialog(cache)
    qtbot.addWidget(dialog)
    dialog.path_edit.setText(str(tmp_path / "missing"))
    dialog.start_scan()
    qtbot.waitUntil(lambda: dialog.summary.text().startswith("Failed"), timeout=10_000)
    assert "no such file" in dialog.summary.text()
    assert not dialog.import_button.isEnabled()
    dialog.reject()


def test_warnings_of_imported_files_are_shown_naming_the_file(qtbot, cache, tmp_path: Path):
    from factory import make_ct

    disc = tmp_path / "cd"
    disc.mkdir()
    ds = make_ct("1.2.3", "1.2.3.4", sop_uid="1.2.3.4.5.x")
    ds.SpecificCharacterSet = "ISO_IR 999"
    ds.save_as(disc / "IM_ODD", enforce_file_format=True)
    write_series(disc / "fine", 1)
    dialog = ImportDialog(cache, report_dir=tmp_path / "reports")
    qtbot.addWidget(dialog)
    dialog.path_edit.setText(str(disc))
    dialog.start_scan()
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=10_000)
    dialog.start_import()
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=10_000)
    assert dialog.report.imported == 2
    assert "warning(s)" in dialog.summary.text()
    lines = [line for line in dialog.report_view.toPlainText().splitlines() if "IM_ODD" in line]
    assert any("non-conformant SOP Instance UID" in line for line in lines)
    assert any("ISO_IR 999" in line for line in lines)
    assert not any("site-packages" in line for line in lines)
    dialog.reject()
