"""Query/Retrieve page, Activity panel and Send to… against a real Orthanc and our real server."""

from __future__ import annotations

import pytest
from factory import write_series
from peers.orthanc import orthanc_with
from peers.tools import free_port
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from gearview.config import Node, load_config, save_config
from gearview.jobqueue import DONE
from gearview.net.query import date_preset

pytestmark = pytest.mark.peers

REMOTE = generate_uid()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("qr")
    files = write_series(
        root / "remote",
        3,
        study_uid=REMOTE,
        patient_name="Remote^Rita",
        patient_id="QR1",
        study_date="20240105",
    )
    peer = orthanc_with(root / "orthanc", [files], modalities={})
    yield peer
    peer.stop()


@pytest.fixture
def gui_config(home, pacs):
    """Our station on a free port, known to Orthanc; Orthanc as query/retrieve/send node."""
    config = load_config(home)
    config.server.port = free_port()
    pacs.add_modality("GEARVIEW", config.server.ae_title, "127.0.0.1", config.server.port)
    config.nodes = [pacs.node("PACS"), Node("DOWN", "NOBODY", "127.0.0.1", free_port(), timeout=3)]
    config.client.default_send_destination = "PACS"
    save_config(home, config)
    return config


def _search(qtbot, panel) -> None:
    with qtbot.waitSignal(panel.search_finished, timeout=20_000):
        qtbot.keyClick(panel.patient_name, Qt.Key.Key_Return)


def test_query_fills_table_and_lists_the_down_node(window, qtbot):
    panel = window.query_panel
    assert panel.nodes.count() == 2
    panel.patient_name.setText("remote*")
    _search(qtbot, panel)
    assert panel.table.rowCount() == 1
    assert panel.table.item(0, 1).text() == "Remote, Rita"
    assert panel.table.item(0, 9).text() == "PACS"
    assert "DOWN" in panel.status.text() and "refused" in panel.status.text()
    assert panel.cached_rows() == []


def test_only_checked_nodes_are_queried(window, qtbot):
    panel = window.query_panel
    panel.nodes.item(1).setCheckState(Qt.CheckState.Unchecked)
    _search(qtbot, panel)
    assert "DOWN" not in panel.status.text()


def test_date_presets_and_bad_input(window, qtbot):
    panel = window.query_panel
    panel.date_preset.setCurrentIndex(panel.date_preset.findData("last7"))
    assert panel.study_date() == date_preset("last7")
    assert not panel.date_from.isEnabled()
    panel.date_preset.setCurrentIndex(panel.date_preset.findData("custom"))
    assert panel.date_from.isEnabled()
    panel.date_preset.setCurrentIndex(0)
    panel.birth_date.setText("1970-01-01")
    panel.search()
    assert "not a date" in panel.status.text() and not panel.searching


def test_retrieve_shows_progress_and_study_appears_locally(window, qtbot):
    panel = window.query_panel
    _search(qtbot, panel)
    row = next(
        r
        for r in range(panel.table.rowCount())
        if panel.table.item(r, 1).data(Qt.ItemDataRole.UserRole) == REMOTE
    )
    panel.table.selectRow(row)
    seen_progress = []
    window.bridge.job_progress.connect(seen_progress.append)
    (job_id,) = panel.retrieve_selected()
    activity = window.activity_panel
    qtbot.waitUntil(
        lambda: job_id in activity._records and activity.job_state(job_id) == DONE, timeout=30_000
    )
    assert seen_progress
    qtbot.waitUntil(lambda: REMOTE in window.study_list.model.study_uids(), timeout=10_000)
    qtbot.waitUntil(lambda: panel.cached_rows() == [row], timeout=10_000)


def test_send_to_default_destination(window, qtbot, pacs, tmp_path):
    files = write_series(tmp_path / "local", 2, patient_name="Local^Lou", patient_id="SND1")
    for f in files:
        window.cache.add_file(f)
    import pydicom

    study_uid = pydicom.dcmread(files[0]).StudyInstanceUID
    from gearview.ui.send_dialog import open_send_dialog

    dialog = open_send_dialog(window, [study_uid])
    assert dialog.chosen_node() == "PACS"
    qtbot.waitUntil(lambda: dialog.checks.checked, timeout=10_000)  # checked before sending
    assert dialog.send_button.text() == "Send" and dialog.send_button.isEnabled()
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    activity = window.activity_panel
    qtbot.waitUntil(
        lambda: any(
            r.title.startswith("Send") and r.state == DONE for r in activity._records.values()
        ),
        timeout=30_000,
    )
    assert len(pacs.study_instances(study_uid)) == 2
