"""GUI fixtures: a main window over a fresh home with the real server on a free port; a
standalone study viewer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peers.tools import free_port

from gearview.config import load_config, save_config
from gearview.home import Home
from gearview.station import Station
from gearview.ui.main_window import MainWindow
from gearview.ui.viewer import ViewerWindow


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


@pytest.fixture
def viewer_for(qtbot, cache):
    """`viewer_for(study_uid, layout="1×1")`: a shown viewer of a cached study, once loaded."""
    made = []

    def make(study_uid: str, layout: str = "1×1") -> ViewerWindow:
        viewer = ViewerWindow(cache, study_uid)
        qtbot.addWidget(viewer)
        viewer.resize(900, 600)
        viewer.show()
        made.append(viewer)
        with qtbot.waitSignal(viewer.study_loaded, timeout=10000):
            pass
        viewer.set_layout(layout)
        return viewer

    yield make
    for viewer in made:
        viewer.shutdown()
