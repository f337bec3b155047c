"""The study list grouped as patient ▸ study ▸ series: same filter, lazy series, live updates."""

from __future__ import annotations

from factory import write_series
from pydicom.uid import generate_uid
from PySide6.QtCore import QModelIndex

from gearview.ui.patient_tree import KIND_ROLE
from gearview.ui.study_list import UID_ROLE


def _add(window, tmp_path, name: str, pid: str, study: str, series: int = 1, date="20240102",
         accession="A") -> None:
    for number in range(1, series + 1):
        folder = tmp_path / f"{study[-6:]}-{number}"
        for path in write_series(folder, 2, study_uid=study, patient_name=name, patient_id=pid,
                                 study_date=date, series_number=number, accession=accession):
            window.cache.add_file(path)


def _rows(tree, parent=QModelIndex()):  # noqa: B008
    model = tree.model()
    return [model.index(r, 0, parent) for r in range(model.rowCount(parent))]


def test_grouped_list_shows_patients_their_studies_and_series(window, qtbot, tmp_path):
    jones_1, jones_2, smith = generate_uid(), generate_uid(), generate_uid()
    _add(window, tmp_path, "JONES^MARY", "P1", jones_1, series=2, date="20240301")
    _add(window, tmp_path, "JONES^MARY", "P1", jones_2, date="20240105")
    _add(window, tmp_path, "SMITH^JO", "P2", smith, date="20231201", accession="XRAY")
    study_list = window.study_list
    qtbot.waitUntil(lambda: study_list.model.rowCount() == 3 and not study_list.loading,
                    timeout=10_000)
    study_list.group_button.click()
    tree = study_list.tree
    assert study_list.grouped and study_list.stack.currentWidget() is tree
    patients = _rows(tree)
    assert [p.data() for p in patients] == ["JONES, MARY", "SMITH, JO"]  # latest study first
    assert patients[0].siblingAtColumn(6).data() == "2 studies"
    studies = _rows(tree, patients[0])
    assert [s.data(UID_ROLE) for s in studies] == [jones_1, jones_2]
    assert studies[0].data() == "2024-03-01  Synthetic CT"

    tree.expand(patients[0])
    tree.expand(studies[0])  # the series are read on a worker when first shown
    qtbot.waitUntil(lambda: len(_rows(tree, studies[0])) == 2, timeout=10_000)
    series = _rows(tree, studies[0])
    assert series[0].data(KIND_ROLE) == "series" and series[0].data() == "#1  CT Series 1"

    tree.selectionModel().select(
        patients[0], tree.selectionModel().SelectionFlag.ClearAndSelect
        | tree.selectionModel().SelectionFlag.Rows)
    assert window.selected_study_uids() == [jones_1, jones_2]

    study_list.filter_edit.setText("xray")  # the filter bar applies to the tree
    qtbot.waitUntil(lambda: [p.data() for p in _rows(tree)] == ["SMITH, JO"], timeout=5_000)
    study_list.filter_edit.clear()
    qtbot.waitUntil(lambda: len(_rows(tree)) == 2, timeout=5_000)
    jones = next(p for p in _rows(tree) if p.data() == "JONES, MARY")
    assert tree.isExpanded(jones)  # kept open across regrouping

    later = generate_uid()  # a new study of a known patient arrives live
    _add(window, tmp_path, "JONES^MARY", "P1", later, date="20240401")
    qtbot.waitUntil(lambda: len(_rows(tree, next(
        p for p in _rows(tree) if p.data() == "JONES, MARY"))) == 3, timeout=10_000)

    assert study_list.select_study(smith) and window.selected_study_uids() == [smith]
    study_list.group_button.click()
    assert not study_list.grouped and study_list.stack.currentWidget() is study_list.view
