"""Query/Retrieve page without a PACS: formatting, date presets, node hint, the Local column."""

from __future__ import annotations

import datetime as dt

import pydicom
from factory import write_series
from PySide6.QtCore import QDate, Qt

from gearview.config import Node
from gearview.net.query import FoundStudy
from gearview.ui.query_panel import IN_CACHE, NO_NODE


def _show(panel, studies: list[FoundStudy]) -> None:
    panel.results = studies
    panel._fill()


def test_results_show_names_and_dates_like_the_local_list(window, qtbot):
    panel = window.query_panel
    _show(panel, [FoundStudy("1.2.3", patient_name="JONES^MARY", patient_birth_date="19800101",
                             study_date="20240302", sources=["PACS"])])
    name, birth, date = (panel.table.item(0, c) for c in (1, 3, 4))
    assert (name.text(), birth.text(), date.text()) == ("JONES, MARY", "1980-01-01", "2024-03-02")
    assert (name.toolTip(), birth.toolTip(), date.toolTip()) == ("JONES^MARY", "19800101",
                                                                "20240302")


def test_yesterday_shows_yesterday_in_the_greyed_date_fields(window):
    panel = window.query_panel
    panel.date_preset.setCurrentIndex(panel.date_preset.findData("yesterday"))
    yesterday = QDate.currentDate().addDays(-1)
    assert panel.date_from.date() == yesterday and panel.date_to.date() == yesterday
    assert not panel.date_from.isEnabled()
    assert panel.study_date() == (dt.date.today() - dt.timedelta(days=1)).strftime("%Y%m%d")
    panel.date_preset.setCurrentIndex(panel.date_preset.findData("last7"))
    assert panel.date_from.date() == QDate.currentDate().addDays(-6)
    assert panel.date_to.date() == QDate.currentDate()
    panel.date_preset.setCurrentIndex(panel.date_preset.findData(""))
    assert panel.date_from.text() == "any" and panel.date_to.text() == "any"
    panel.date_preset.setCurrentIndex(panel.date_preset.findData("custom"))
    assert panel.date_from.isEnabled() and panel.date_from.date() == QDate.currentDate()


def test_no_node_hint_clears_once_a_node_is_added(window, qtbot):
    panel = window.query_panel
    assert panel.status.text() == NO_NODE
    config = window.config
    config.nodes = [Node("PACS", "PACS", "127.0.0.1", 104)]
    with qtbot.waitSignal(window.config_applied, timeout=10_000):
        window.apply_config(config)
    assert panel.nodes.count() == 1
    assert panel.status.text() == ""


def test_local_tick_only_when_every_instance_is_here(window, qtbot, tmp_path):
    files = write_series(tmp_path / "s", 3, patient_name="Part^Ial")
    study_uid = pydicom.dcmread(files[0]).StudyInstanceUID
    for path in files[:2]:
        window.cache.add_file(path)
    panel = window.query_panel
    _show(panel, [FoundStudy(study_uid, patient_name="Part^Ial",
                              number_of_study_related_instances=3, sources=["PACS"])])
    qtbot.waitUntil(lambda: panel.table.item(0, 0).text() == "2/3", timeout=5_000)
    assert panel.cached_rows() == []
    assert "only 2 of 3" in panel.table.item(0, 0).toolTip()
    window.cache.add_file(files[2])  # the rest arrives: CACHE_CHANGED re-marks the rows
    qtbot.waitUntil(lambda: panel.table.item(0, 0).text() == IN_CACHE, timeout=5_000)
    assert panel.cached_rows() == [0]


def test_local_column_without_a_remote_count_shows_no_tick(window, qtbot, tmp_path):
    files = write_series(tmp_path / "s", 1)
    window.cache.add_file(files[0])
    study_uid = pydicom.dcmread(files[0]).StudyInstanceUID
    panel = window.query_panel
    _show(panel, [FoundStudy(study_uid, number_of_study_related_instances=0, sources=["PACS"])])
    qtbot.waitUntil(lambda: panel.table.item(0, 0).text() == "1", timeout=5_000)
    assert panel.cached_rows() == []
    assert panel.table.item(0, 0).data(Qt.ItemDataRole.UserRole) == study_uid
