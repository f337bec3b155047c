"""Every module imports, and the main window opens, where Unix-only modules do not exist (Windows).

A child process hides `fcntl`, `resource`, `termios`, `pwd` and `grp` from
every importer and takes `sendmsg` off its sockets, imports every gearview
module outside the Linux part of the platform layer, then starts the GUI as
`gearview` does and checks the main window shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import importlib
import importlib.abc
import pkgutil
import socket
import sys

HIDDEN = {"fcntl", "resource", "termios", "pwd", "grp"}


class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


for name in HIDDEN:
    sys.modules.pop(name, None)
sys.meta_path.insert(0, Hide())


class NoSendmsg(socket.socket):
    @property
    def sendmsg(self):
        raise AttributeError("sendmsg")


socket.socket = NoSendmsg

import gearview

LINUX_ONLY = {"gearview.platform.linux", "gearview.platform.direct", "gearview.__main__"}
imported = 0
for module in pkgutil.walk_packages(gearview.__path__, "gearview."):
    if module.name not in LINUX_ONLY:
        importlib.import_module(module.name)
        imported += 1
assert not HIDDEN & set(sys.modules), HIDDEN & set(sys.modules)
print("imported", imported)

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from gearview.ui import app as gui
from gearview.ui.main_window import MainWindow

qt = QApplication([])
shown = []


def close_main_window():
    windows = [w for w in qt.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    shown.extend(windows)
    for window in windows:
        window.close()
    if not windows:
        qt.quit()


QTimer.singleShot(500, close_main_window)
code = gui.main(["--no-server"])
print("main window shown:", len(shown), "exit:", code)
assert not HIDDEN & set(sys.modules), HIDDEN & set(sys.modules)
sys.exit(0 if shown and code == 0 else 1)
"""


def test_every_module_imports_and_the_main_window_opens_without_unix_modules(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "GEARVIEW_HOME": str(tmp_path / "home"),
        "GEARVIEW_IO": "portable",  # what a cache gets where there is no Linux file I/O
        "QT_QPA_PLATFORM": "offscreen",
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert int(lines[0].split()[1]) > 100
    assert "main window shown: 1 exit: 0" in lines
