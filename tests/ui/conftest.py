"""GUI fixtures: a main window over a fresh home with the real server on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peers.tools import free_port

from gearview.config import load_config, save_config
from gearview.home import Home
from gearview.net.server import Server
from gearview.store import Cache
from gearview.ui.main_window import MainWindow


@pytest.fixture
def gui_config(home: Home):
    config = load_config(home)
    config.server.port = free_port()
    save_config(home, config)
    return config


@pytest.fixture
def window(qtbot, home: Home, gui_config) -> Iterator[MainWindow]:
    """The main window with the real embedded server, listening before the test starts."""
    cache = Cache(home, gui_config)
    server = Server(home, gui_config, cache)
    win = MainWindow(home, gui_config, cache, server)
    qtbot.addWidget(win)
    win.show()
    win.start_server()
    qtbot.waitUntil(lambda: server.state.running and win.server_status.running, timeout=10_000)
    qtbot.waitUntil(lambda: not win.study_list.loading, timeout=10_000)
    yield win
    win.close()
    cache.close()
