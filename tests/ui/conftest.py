"""GUI fixtures: a main window over a fresh home with the real server on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peers.tools import free_port

from gearview.config import load_config, save_config
from gearview.home import Home
from gearview.station import Station
from gearview.ui.main_window import MainWindow


@pytest.fixture
def gui_config(home: Home):
    config = load_config(home)
    config.server.port = free_port()
    save_config(home, config)
    return config


@pytest.fixture
def window(qtbot, home: Home, gui_config) -> Iterator[MainWindow]:
    """The main window over an open station whose real server listens before the test starts."""
    station = Station(home, gui_config).open()
    win = MainWindow(station)
    qtbot.addWidget(win)
    win.show()
    win.start_server()
    qtbot.waitUntil(
        lambda: win.server is not None and win.server.state.running and win.server_status.running,
        timeout=10_000,
    )
    qtbot.waitUntil(lambda: not win.study_list.loading, timeout=10_000)
    yield win
    win.close()  # closes the station
    station.close()
