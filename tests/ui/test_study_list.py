"""The local study list: display, filter, sort, live coalesced updates, activation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from factory import make_ct, write_series
from pydicom.uid import generate_uid
from PySide6.QtCore import QDate, Qt

from gearview.store import Cache
from gearview.store.records import StudyRecord
from gearview.ui.bridge import Bridge
from gearview.ui.study_list import (
    COLUMNS,
    MISMATCH_TOOLTIP,
    StudyFilterProxy,
    StudyListWidget,
    StudyTableModel,
)
from gearview.ui.workers import WorkerPool

COL = {c.attr: i for i, c in enumerate(COLUMNS)}


def rec(
    uid: str,
    name: str = "Doe^Jane",
    pid: str = "P1",
    date: str = "20240102",
    modalities: tuple[str, ...] = ("CT",),
    description: str = "",
    accession: str = "",
    instances: int = 1,
    mismatch: bool = False,
) -> StudyRecord:
    return StudyRecord(
        study_instance_uid=uid,
        patient_name=name,
        patient_id=pid,
        study_date=date,
        modalities_in_study=list(modalities),
        study_description=description,
        accession_number=accession,
        number_of_study_related_series=1,
        number_of_study_related_instances=instances,
        mismatch=mismatch,
    )


@pytest.fixture
def proxy(qtbot):
    model = StudyTableModel()
    proxy = StudyFilterProxy()
    proxy.setSourceModel(model)
    model.reset(
        [
            rec("1", "Doe^Jane", "P1", "20240102", ("CT",), "Chest CT", "ACC1", instances=120),
            rec("2", "Smith^John", "P2", "20231231", ("MR", "SR"), "Brain MR", "ACC2", instances=9),
            rec("3", "Müller^Anna", "X77", "", ("US",), "Abdomen", "ACC3", instances=30),
        ]
    )
    return proxy


def visible_uids(proxy: StudyFilterProxy) -> list[str]:
    return [proxy.index(r, 0).data(Qt.ItemDataRole.UserRole + 2) for r in range(proxy.rowCount())]


def test_names_and_dates_formatted_with_the_raw_value_in_the_tooltip(qtbot):
    model = StudyTableModel()
    model.reset([rec("1", "JONES^MARY", date="19800101")])
    name = model.index(0, COL["patient_name"])
    date = model.index(0, COL["study_date"])
    assert name.data() == "JONES, MARY"
    assert name.data(Qt.ItemDataRole.ToolTipRole) == "JONES^MARY"
    assert date.data() == "1980-01-01"
    assert date.data(Qt.ItemDataRole.ToolTipRole) == "19800101"


def test_text_filter_matches_name_id_accession_description(proxy):
    proxy.set_text("jane")
    assert visible_uids(proxy) == ["1"]
    proxy.set_text("doe, jane")
    assert visible_uids(proxy) == ["1"]
    proxy.set_text("x77")
    assert visible_uids(proxy) == ["3"]
    proxy.set_text("acc2")
    assert visible_uids(proxy) == ["2"]
    proxy.set_text("BRAIN")
    assert visible_uids(proxy) == ["2"]
    proxy.set_text("müller abdomen")
    assert visible_uids(proxy) == ["3"]
    proxy.set_text("nobody")
    assert visible_uids(proxy) == []
    proxy.set_text("")
    assert len(visible_uids(proxy)) == 3


def test_modality_and_date_filters(proxy):
    proxy.set_modality("SR")
    assert visible_uids(proxy) == ["2"]
    proxy.set_modality("")
    proxy.set_date_range("20240101", "20241231")
    assert visible_uids(proxy) == ["1"]
    proxy.set_date_range("", "20231231")
    assert visible_uids(proxy) == ["2"]
    proxy.set_date_range("", "")
    assert sorted(visible_uids(proxy)) == ["1", "2", "3"]


def test_sorting_is_numeric_for_counts_and_chronological_for_dates(proxy):
    proxy.sort(COL["number_of_study_related_instances"], Qt.SortOrder.AscendingOrder)
    assert visible_uids(proxy) == ["2", "3", "1"]  # 9 < 30 < 120, not "120" < "30" < "9"
    proxy.sort(COL["study_date"], Qt.SortOrder.DescendingOrder)
    assert visible_uids(proxy) == ["1", "2", "3"]
    proxy.sort(COL["patient_name"], Qt.SortOrder.AscendingOrder)
    assert visible_uids(proxy) == ["1", "3", "2"]


def test_mismatch_shows_a_warning_icon_with_tooltip(qtbot):
    model = StudyTableModel()
    model.reset([rec("1", mismatch=True), rec("2")])
    bad, good = model.index(0, 0), model.index(1, 0)
    assert not model.data(bad, Qt.ItemDataRole.DecorationRole).isNull()
    assert MISMATCH_TOOLTIP in model.data(bad, Qt.ItemDataRole.ToolTipRole)
    assert model.data(good, Qt.ItemDataRole.DecorationRole) is None
    assert model.data(good, Qt.ItemDataRole.ToolTipRole) != MISMATCH_TOOLTIP


def test_upsert_and_remove_keep_the_uid_index(qtbot):
    model = StudyTableModel()
    model.reset([rec("1"), rec("2"), rec("3")])
    model.upsert([rec("2", instances=5), rec("4")])
    assert model.study_uids() == ["1", "2", "3", "4"]
    assert model.record(1).number_of_study_related_instances == 5
    model.remove(["1", "3", "missing"])
    assert model.study_uids() == ["2", "4"]
    assert model.row_of("4") == 1


@pytest.fixture
def study_list(qtbot, cache: Cache):
    bridge = Bridge(cache.bus)
    pool = WorkerPool()
    widget = StudyListWidget(cache, bridge, pool)
    qtbot.addWidget(widget)
    widget.refresh()
    qtbot.waitUntil(lambda: not widget.loading)
    yield widget
    widget.shutdown()
    pool.shutdown()
    bridge.close()


def test_live_updates_are_coalesced_and_partial(qtbot, study_list: StudyListWidget, cache: Cache):
    """500 instances arriving: a few partial re-reads, no full reload, every count right."""
    studies = [generate_uid() for _ in range(5)]
    series = {s: generate_uid() for s in studies}

    def receive() -> None:
        for i in range(500):
            study = studies[i % 5]
            ds = make_ct(study, series[study], i, rows=8, cols=8, patient_name=f"Live^{i % 5}")
            cache.add_received(ds.file_meta, _body(ds), "MODALITY")
        cache.index.close_current()

    sender = threading.Thread(target=receive)
    sender.start()
    while sender.is_alive():
        qtbot.wait(20)
    sender.join()
    qtbot.waitUntil(
        lambda: not study_list.loading and study_list.model.rowCount() == 5, timeout=10_000
    )
    assert study_list.full_loads == 1  # only the initial one
    assert 1 <= study_list.partial_loads < 100
    counts = [study_list.model.record(r).number_of_study_related_instances for r in range(5)]
    assert counts == [100] * 5


def test_removed_study_leaves_the_list(
    qtbot, study_list: StudyListWidget, cache: Cache, tmp_path: Path
):
    paths = write_series(tmp_path / "a", 2)
    for path in paths:
        cache.add_file(path)
    qtbot.waitUntil(lambda: study_list.model.rowCount() == 1 and not study_list.loading)
    uid = study_list.model.record(0).study_instance_uid
    cache.remove_studies([uid])
    qtbot.waitUntil(lambda: study_list.model.rowCount() == 0 and not study_list.loading)


def test_enter_and_double_click_activate_the_study(
    qtbot, study_list: StudyListWidget, cache: Cache, tmp_path: Path
):
    cache.add_file(write_series(tmp_path / "a", 1)[0])
    qtbot.waitUntil(lambda: study_list.model.rowCount() == 1 and not study_list.loading)
    uid = study_list.model.record(0).study_instance_uid
    assert study_list.select_study(uid)
    assert study_list.selected_study_uids() == [uid]
    with qtbot.waitSignal(study_list.study_activated) as blocker:
        qtbot.keyClick(study_list.view, Qt.Key.Key_Return)
    assert blocker.args == [uid]


def test_filter_widgets_drive_the_proxy(
    qtbot, study_list: StudyListWidget, cache: Cache, tmp_path: Path
):
    today = QDate.currentDate().toString("yyyyMMdd")
    for name, date, modality in (("Old^One", "20000101", "CT"), ("New^Two", today, "MR")):
        cache.add_file(
            write_series(tmp_path / name, 1, patient_name=name, study_date=date, modality=modality)[
                0
            ]
        )
    qtbot.waitUntil(lambda: study_list.model.rowCount() == 2 and not study_list.loading)
    qtbot.keyClicks(study_list.filter_edit, "old")
    assert study_list.proxy.rowCount() == 1
    study_list.filter_edit.clear()
    study_list.modality_combo.setCurrentIndex(study_list.modality_combo.findData("MR"))
    assert study_list.proxy.rowCount() == 1
    assert study_list.proxy.index(0, 0).data() == "New, Two"
    study_list.modality_combo.setCurrentIndex(0)
    study_list.date_combo.setCurrentIndex(study_list.date_combo.findText("Last 7 days"))
    assert study_list.proxy.rowCount() == 1
    assert "1 of 2" in study_list.count_label.text()


def _body(ds) -> bytes:
    """The data set without file meta, as a peer sends it."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_dataset(buf, ds)
    return buf.getvalue()


def test_empty_list_and_empty_filter_say_so(
    qtbot, study_list: StudyListWidget, cache: Cache, tmp_path: Path
):
    study_list.set_empty_hint("Nothing here yet")
    assert study_list.empty_hint.isVisibleTo(study_list)
    assert study_list.empty_hint.text() == "Nothing here yet"
    cache.add_file(write_series(tmp_path / "a", 1)[0])
    qtbot.waitUntil(lambda: study_list.model.rowCount() == 1 and not study_list.loading)
    assert not study_list.empty_hint.isVisibleTo(study_list)
    study_list.filter_edit.setText("no such patient")
    assert study_list.empty_hint.isVisibleTo(study_list)
    assert "matches the filter" in study_list.empty_hint.text()


def test_the_gui_thread_never_reads_the_index(qtbot, cache: Cache, tmp_path: Path, monkeypatch):
    gui = threading.get_ident()
    readers: list[int] = []
    for name in ("studies", "studies_by_uid"):
        original = getattr(cache, name)

        def spy(*args, _original=original, **kwargs):
            readers.append(threading.get_ident())
            return _original(*args, **kwargs)

        monkeypatch.setattr(cache, name, spy)
    bridge, pool = Bridge(cache.bus), WorkerPool()
    widget = StudyListWidget(cache, bridge, pool)
    qtbot.addWidget(widget)
    widget.refresh()
    for path in write_series(tmp_path / "a", 3):
        cache.add_file(path)
    qtbot.waitUntil(lambda: widget.model.rowCount() == 1 and not widget.loading)
    widget.shutdown()
    pool.shutdown()
    bridge.close()
    assert len(readers) >= 2  # the full load and at least one partial re-read
    assert gui not in readers
