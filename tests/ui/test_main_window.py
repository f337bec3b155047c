"""The main window end to end: real server, storescu, status bar, settings, extension points."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from factory import make_ct, write_series
from peers.tools import DCMTK_ENV, free_port, require
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QLabel

from gearview.config import load_config
from gearview.events import AssociationChanged
from gearview.jobs import Progress
from gearview.station import Station
from gearview.store import Cache
from gearview.ui import app, index_repair
from gearview.ui.main_window import MainWindow
from gearview.ui.study_list import MISMATCH_TOOLTIP


def test_storescu_study_appears_live(qtbot, window: MainWindow, tmp_path: Path):
    storescu = require("storescu")
    files = write_series(tmp_path / "in", 12, patient_name="Sent^ByStorescu", patient_id="SCU1")
    state = window.server.state
    shown: list[str] = []
    window.bridge.association_opened.connect(lambda _d: shown.append(window.server_status.text))
    subprocess.run(
        [
            storescu,
            "-aec",
            state.ae_title,
            "-aet",
            "MODALITY",
            "127.0.0.1",
            str(state.port),
            *map(str, files),
        ],
        env=DCMTK_ENV,
        check=True,
        timeout=60,
        capture_output=True,
    )
    model = window.study_list.model
    qtbot.waitUntil(
        lambda: model.rowCount() == 1
        and model.record(0).number_of_study_related_instances == 12,
        timeout=15_000,
    )
    assert model.record(0).patient_id == "SCU1"
    qtbot.waitUntil(lambda: bool(shown) and "0 associations" in window.server_status.text)
    assert "1 association" in shown[0]
    assert window.study_list.full_loads == 1
    assert "listening" in window.server_status.text


def test_status_bar_shows_server_and_associations(qtbot, window: MainWindow):
    state = window.server.state
    assert f"{state.ae_title}@{state.port}" in window.server_status.text
    assert "0 associations" in window.server_status.text
    assert f"port {state.port}" in window.study_list.empty_hint.text()
    window.bridge.association_opened.emit(AssociationChanged("PEER", "127.0.0.1:1", 2))
    assert "2 associations" in window.server_status.text
    window.bridge.server_error.emit("storage full")
    assert "error: storage full" in window.server_status.text


def test_busy_port_still_opens_and_says_why(qtbot, home, gui_config):
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", gui_config.server.port))
        blocker.listen()
        win = MainWindow(Station(home, gui_config).open())
        qtbot.addWidget(win)
        win.show()
        win.start_server()
        qtbot.waitUntil(lambda: "in use" in win.server_status.text, timeout=10_000)
        assert "not listening" in win.server_status.text
        assert f"port {gui_config.server.port} is already in use" in win.server_status.toolTip()
        assert win.isVisible()
        win.close()
        assert not win.station.is_open


def test_settings_apply_saves_and_restarts_the_server(qtbot, window: MainWindow):
    dialog = window.open_settings()
    new_port = free_port()
    dialog.field("server.port").setText(str(new_port))
    dialog.field("server.ae_title").setText("QCSTATION")
    with qtbot.waitSignal(window.config_applied, timeout=15_000):
        dialog.apply_button.click()
    assert window.server.state.running and window.server.state.port == new_port
    assert load_config(window.home).server.port == new_port
    assert window.config.server.ae_title == "QCSTATION"
    assert "restarted as QCSTATION@" in window.statusBar().currentMessage()
    assert f"QCSTATION@{new_port}" in window.server_status.text
    dialog.close()


def test_apply_without_server_changes_keeps_storing(qtbot, window: MainWindow, tmp_path: Path):
    """A modality sending one image per association while Apply saves a client change: every
    store succeeds and the listening server is the same one."""
    storescu = require("storescu")
    files = write_series(tmp_path / "in", 30, patient_id="APPLY1", rows=16, cols=16)
    state, listening = window.server.state, window.server._server
    results: list[int] = []

    def modality() -> None:
        for path in files:
            run = subprocess.run(
                [storescu, "-aec", state.ae_title, "127.0.0.1", str(state.port), str(path)],
                env=DCMTK_ENV, capture_output=True, timeout=60,
            )
            results.append(run.returncode)

    sender = threading.Thread(target=modality)
    sender.start()
    try:
        qtbot.waitUntil(lambda: len(results) >= 3, timeout=30_000)
        dialog = window.open_settings()
        dialog.field("client.dimse_timeout").setText("45")
        with qtbot.waitSignal(window.config_applied, timeout=15_000):
            dialog.apply_button.click()
        assert len(results) < len(files), "the modality finished before Apply: no overlap"
    finally:
        sender.join(120)
    dialog.close()
    assert results == [0] * len(files)
    assert window.server._server is listening and window.server.state.running
    assert window.config.client.dimse_timeout == 45
    assert "kept running" in window.statusBar().currentMessage()
    model = window.study_list.model
    qtbot.waitUntil(
        lambda: model.rowCount() == 1 and model.record(0).number_of_study_related_instances == 30
    )


def test_shortcuts(qtbot, window: MainWindow):
    assert window.settings_action.shortcut().toString() == "Ctrl+,"
    assert window.quit_action.shortcut().toString() == "Ctrl+Q"
    assert window.refresh_action.shortcut().toString() == "F5"
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.study_list.view.setFocus()
    assert not window.study_list.filter_edit.hasFocus()
    qtbot.keyClick(window.study_list.view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(window.study_list.filter_edit.hasFocus)
    before = window.study_list.full_loads
    qtbot.keyClick(window.study_list.view, Qt.Key.Key_F5)
    qtbot.waitUntil(
        lambda: window.study_list.full_loads == before + 1 and not window.study_list.loading
    )


def test_extension_points(qtbot, window: MainWindow, tmp_path: Path):
    for path in write_series(tmp_path / "s", 2):
        window.cache.add_file(path)
    qtbot.waitUntil(
        lambda: window.study_list.model.rowCount() == 1 and not window.study_list.loading
    )
    uid = window.study_list.model.record(0).study_instance_uid
    got: list[list[str]] = []
    action = window.add_study_action("Send to PACS…", got.append, shortcut="Ctrl+Shift+S")
    window.study_list.select_study(uid)
    action.trigger()
    assert got == [[uid]]
    assert action in window._menu("&Study").actions()
    index = window.add_tab(QLabel("viewer"), "Viewer")
    assert window.tabs.tabText(index) == "Viewer"
    dock = window.add_dock(QLabel("activity"), "Activity")
    assert dock.toggleViewAction() in window._menu("&View").actions()
    tools = QAction("Check store", window)
    window.add_menu_action("&Tools", tools)
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles.index("&Tools") < titles.index("&Help")
    with qtbot.waitSignal(window.study_activated) as blocker:
        window.open_action.trigger()
    assert blocker.args == [uid]


def test_run_job_shows_progress_and_cancels(qtbot, window: MainWindow):
    results: list[object] = []

    def job(progress, token):
        progress(Progress(3, 10, "working"))
        while not token.wait(0.01):
            pass
        token.check()

    handle = window.run_job(job, "Long job", on_done=results.append)
    assert handle in window.running_jobs
    qtbot.waitUntil(lambda: handle.widget.bar.value() == 3)
    assert "working" in handle.widget.label.text()
    handle.widget.cancel_button.click()
    qtbot.waitUntil(lambda: not window.running_jobs)
    assert results == []
    assert "cancelled" in window.statusBar().currentMessage()

    done = window.run_job(lambda progress, token: 42, "Quick job", on_done=results.append)
    qtbot.waitUntil(lambda: results == [42])
    assert done not in window.running_jobs

    def broken(progress, token):
        raise RuntimeError("boom")

    window.run_job(broken, "Broken job")
    qtbot.waitUntil(lambda: "Broken job failed" in window.statusBar().currentMessage())


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_index_offers_rebuild_and_keeps_the_files(
    qtbot, home, cache: Cache, tmp_path, damage
):
    """RELIABILITY #26: a damaged index offers a rebuild from the files; no file is deleted."""
    for path in write_series(tmp_path / "s", 3):
        cache.add_file(path)
    for n in range(40):  # enough rows that the index spans many pages
        cache.add_file(write_series(tmp_path / f"x{n}", 1, patient_name=f"Filler^{n:03d}" * 4)[0])
    files = sorted(p for p in cache.files_dir.rglob("*") if p.is_file() and ".spool" not in p.parts)
    config = cache.config
    cache.close()
    index = home.index_file
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    if damage == "garbage":
        index.write_bytes(b"this is not an sqlite database" * 100)
    else:
        os.truncate(index, index.stat().st_size // 2)
    asked: list[str] = []
    station = Station(home, config)
    opened = app.open_station(
        station,
        ask=lambda exc: asked.append(exc.message) or True,
        rebuild=app.rebuild_with_progress,
    )
    assert opened
    try:
        assert len(asked) == 1
        assert "cannot be opened" in asked[0] or "damaged" in asked[0]
        counts = sorted(s.number_of_study_related_instances for s in station.cache.studies())
        assert counts == [1] * 40 + [3]
        assert all(p.exists() for p in files)
        assert list(home.root.glob("index.sqlite.damaged-*"))
    finally:
        station.close()


def test_corrupt_index_quit_opens_nothing(qtbot, home):
    home.index_file.write_bytes(b"garbage" * 1000)
    station = Station(home, load_config(home))
    assert not app.open_station(station, ask=lambda exc: False)
    assert not station.is_open


def test_corrupt_index_dialog_offers_rebuild(qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from gearview.errors import IndexCorruptError

    seen: dict[str, object] = {}

    def click_rebuild() -> None:
        box = next(
            w
            for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.isVisible()
        )
        seen["buttons"] = [b.text() for b in box.buttons()]
        seen["text"] = box.informativeText()
        next(b for b in box.buttons() if b.text() == index_repair.REBUILD_TEXT).click()

    QTimer.singleShot(100, click_rebuild)
    assert index_repair.ask_rebuild(IndexCorruptError("index broken")) is True
    assert index_repair.REBUILD_TEXT in seen["buttons"]
    assert "No image file is deleted" in seen["text"]


def test_help_does_not_start_the_gui(capsys):
    assert app.main(["--help"]) == 0
    assert "embedded DICOM server" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--bogus"]])
def test_bad_option_exits_nonzero(argv, capsys):
    assert app.main(argv) == 2


def _close_main_window_when_shown(qtbot, seen: dict[str, object]) -> None:
    def poll() -> None:
        wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if wins and wins[0].isVisible() and wins[0].server_status.running:
            seen["status"] = wins[0].server_status.text
            wins[0].close()
        else:
            QTimer.singleShot(50, poll)

    QTimer.singleShot(50, poll)


def test_main_opens_the_window_with_the_server_and_exits_cleanly(qtbot, home, gui_config):
    """`gearview` with no arguments: window + server on the configured port; closing returns 0."""
    seen: dict[str, object] = {}
    _close_main_window_when_shown(qtbot, seen)
    assert app.main([]) == 0
    assert f"GEARVIEW@{gui_config.server.port} · listening" in str(seen["status"])
    assert "started" in (home.logs_dir / "gearview.log").read_text()
    with socket.socket() as probe:  # the server released its port
        probe.bind(("0.0.0.0", gui_config.server.port))


def test_main_with_a_broken_config_warns_and_runs_on_defaults(qtbot, home, monkeypatch):
    home.config_file.write_text('[server]\nae_title = "WAY_TOO_LONG_AE_TITLE"\n')
    warnings: list[str] = []
    monkeypatch.setattr(app.QMessageBox, "warning", lambda *a: warnings.append(a[2]))
    config = app.load_config_or_defaults(home)
    assert config.server.ae_title == "GEARVIEW"
    assert "server.ae_title" in warnings[0] and "default settings" in warnings[0]


def test_settings_apply_onto_a_busy_port_saves_and_says_the_server_did_not_restart(
    qtbot, window: MainWindow
):
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        dialog = window.open_settings()
        dialog.field("server.port").setText(str(busy))
        with qtbot.waitSignal(window.config_applied, timeout=15_000):
            dialog.apply_button.click()
        assert load_config(window.home).server.port == busy
        assert window.config.server.port == busy
        assert not window.server.state.running
        message = window.statusBar().currentMessage()
        assert "did not restart" in message and f"port {busy} is already in use" in message
        assert "not listening" in window.server_status.text
        dialog.close()


def test_ctrl_comma_opens_settings_and_ctrl_q_quits(qtbot, window: MainWindow):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window.study_list.view, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window._settings is not None and window._settings.isVisible())
    window._settings.close()
    server = window.server
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window.study_list.view, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible())
    assert not server.state.running and not window.station.is_open


def test_demographic_mismatch_from_real_instances_is_flagged(qtbot, window: MainWindow, tmp_path):
    study, series = generate_uid(), generate_uid()
    for number, patient_id in enumerate(("PID-A", "PID-B"), 1):
        path = tmp_path / f"{number}.dcm"
        make_ct(study, series, number, patient_id=patient_id).save_as(
            path, enforce_file_format=True
        )
        window.cache.add_file(path)
    model = window.study_list.model
    qtbot.waitUntil(
        lambda: model.rowCount() == 1 and model.record(0).number_of_study_related_instances == 2
    )
    assert model.record(0).mismatch
    assert MISMATCH_TOOLTIP in model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)


def test_rebuild_index_from_the_running_window(qtbot, window: MainWindow, tmp_path: Path):
    for path in write_series(tmp_path / "s", 4):
        window.cache.add_file(path)
    model = window.study_list.model
    qtbot.waitUntil(lambda: model.rowCount() == 1 and not window.study_list.loading)
    files = sorted(window.cache.files_dir.rglob("*.dcm"))
    job = window.rebuild_index(confirm=False)
    assert job is not None
    qtbot.waitUntil(
        lambda: "Index rebuilt: 4 instances" in window.statusBar().currentMessage(), timeout=15_000
    )
    qtbot.waitUntil(lambda: not window.study_list.loading and model.rowCount() == 1)
    assert model.record(0).number_of_study_related_instances == 4
    assert window.server.state.running
    assert sorted(window.cache.files_dir.rglob("*.dcm")) == files
    window.cache.add_file(write_series(tmp_path / "after", 1)[0])  # the new index takes writes
    qtbot.waitUntil(lambda: model.rowCount() == 2)


def test_a_damaged_index_while_running_offers_the_rebuild(qtbot, window: MainWindow, monkeypatch):
    asked: list[str] = []
    window.ask_rebuild = lambda exc, parent, reject: asked.append(str(exc)) or False
    original = window.cache.studies

    def broken(*args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(window.cache, "studies", broken)
    window.study_list.refresh()
    qtbot.waitUntil(lambda: bool(asked))
    assert "malformed" in asked[0]
    assert "Could not read the local index" in window.statusBar().currentMessage()
    monkeypatch.setattr(window.cache, "studies", original)


def test_no_display_is_a_one_line_error_not_an_abort():
    assert not app.display_available({}, "linux")
    assert app.display_available({"DISPLAY": ":0"}, "linux")
    assert app.display_available({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert app.display_available({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert app.display_available({}, "win32") and app.display_available({}, "darwin")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    launcher = Path(sys.executable).with_name("gearview")
    done = subprocess.run([str(launcher)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no display" in done.stderr and "gearview serve" in done.stderr
    assert "Traceback" not in done.stderr
