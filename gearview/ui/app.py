"""`gearview` with no arguments: the GUI with its embedded DICOM server.

Startup order: home folder, config (a broken file is reported and defaults
are used), the engine `Station` opened and its index checked on a worker (a
damaged index offers "Rebuild index from files" — image files are never
deleted), the main window over the station, then the server on a worker (a
busy port leaves the window open and says why in the status bar).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox, QProgressDialog, QWidget

from gearview import __version__, logsetup
from gearview.config import Config, load_config
from gearview.errors import (
    Cancelled,
    ConfigError,
    GearviewError,
    IndexCorruptError,
    describe_error,
)
from gearview.home import Home
from gearview.jobs import Progress
from gearview.station import Station
from gearview.store.check import RebuildReport
from gearview.ui.index_repair import ask_rebuild
from gearview.ui.main_window import JobFn, MainWindow
from gearview.ui.workers import WorkerPool

log = logging.getLogger(__name__)

ICON_PATH = Path(__file__).resolve().parent.parent / "resources" / "gearview.svg"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gearview",
        description="gearview DICOM QC workstation: opens the main window and starts the "
        "embedded DICOM server. Run `gearview COMMAND --help` for the headless "
        "commands (serve, echo, find, move, send, import, ls, edit, burn, render, "
        "node, store).",
    )
    parser.add_argument("--version", action="version", version=f"gearview {__version__}")
    parser.add_argument(
        "--no-server", action="store_true", help="do not start the embedded DICOM server"
    )
    return parser


def display_available(env: Mapping[str, str], platform: str) -> bool:
    """False on a Linux/BSD console with no X/Wayland display (Qt would abort instead)."""
    if platform.startswith(("win", "darwin")) or env.get("QT_QPA_PLATFORM"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def setup_logging(home: Home) -> logging.Handler:
    """INFO and above to logs/gearview.log (PHI is only logged at DEBUG), library warnings
    too (never the terminal); returns the handler."""
    handler = logsetup.file_handler(home)
    logsetup.route_warnings()
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def app_icon() -> QIcon:
    return QIcon(str(ICON_PATH)) if ICON_PATH.exists() else QIcon()


def load_config_or_defaults(home: Home, parent: QWidget | None = None) -> Config:
    """A config file the engine refuses is reported; gearview then runs on defaults."""
    try:
        return load_config(home)
    except ConfigError as exc:
        log.error("config refused: %s", exc.one_line())
        QMessageBox.warning(
            parent,
            "gearview — settings not loaded",
            f"The settings file {home.config_file} was not used:\n\n{exc.one_line()}"
            "\n\ngearview runs with default settings. Fix the file, or save new "
            "settings from Settings (this replaces the file).",
        )
        return Config().validate()


def run_and_wait(job: JobFn, dialog: QProgressDialog | None = None) -> Any:
    """Run `job(progress, token)` on a worker while a local event loop keeps the GUI alive.

    Returns the job's result or raises its error (Cancelled when the dialog's
    Cancel was pressed); the dialog, if any, shows the progress.
    """
    pool = WorkerPool()
    loop = QEventLoop()
    outcome: dict[str, Any] = {}

    def progressed(progress: Progress) -> None:
        if dialog is not None and progress.total:
            dialog.setMaximum(progress.total)
            dialog.setValue(progress.done)

    def finish(key: str, value: object) -> None:
        outcome[key] = value
        loop.quit()

    _, token = pool.submit_job(
        job,
        on_result=lambda result: finish("result", result),
        on_error=lambda exc: finish("error", exc),
        on_progress=progressed,
    )
    if dialog is not None:
        dialog.canceled.connect(token.cancel)
        dialog.show()
    if not outcome:
        loop.exec()
    if dialog is not None:
        dialog.canceled.disconnect(token.cancel)
        dialog.close()
    pool.shutdown()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def rebuild_with_progress(station: Station, parent: QWidget | None = None) -> RebuildReport | None:
    """Rebuild the station's index behind a modal progress dialog; None if cancelled/failed."""
    dialog = QProgressDialog("Rebuilding the index from the image files…", "Cancel", 0, 0, parent)
    dialog.setWindowTitle("gearview")
    dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
    dialog.setAutoReset(False)
    dialog.setAutoClose(False)
    dialog.setMinimumDuration(0)
    try:
        report, _ = run_and_wait(station.rebuild_index, dialog)
    except Cancelled:
        return None
    except Exception as exc:  # noqa: BLE001 - shown to the user, who can retry or quit
        log.error("index rebuild failed: %s", describe_error(exc))
        QMessageBox.critical(parent, "gearview", f"The index could not be rebuilt:\n{exc}")
        return None
    return report


def _open_and_check(station: Station) -> None:
    station.open()
    station.check_index()


def open_station(
    station: Station,
    ask: Callable[[GearviewError], bool] = ask_rebuild,
    rebuild: Callable[[Station], RebuildReport | None] = rebuild_with_progress,
) -> bool:
    """Open the station and check its index on a worker, offering a rebuild while the
    index is damaged; False when the user quits instead."""
    while True:
        try:
            run_and_wait(lambda progress, token: _open_and_check(station))
            return True
        except IndexCorruptError as exc:
            station.close()
            log.error("index damaged: %s", exc.one_line())
            if not ask(exc):
                return False
            report = rebuild(station)
            if report is None:
                return False
            log.info(
                "index rebuilt: %d instances, %d unreadable files skipped",
                report.indexed,
                len(report.skipped),
            )


def create_window(station: Station, start_server: bool = True) -> MainWindow:
    """The main window over an open station, its server starting on a worker."""
    window = MainWindow(station)
    window.setWindowIcon(app_icon())
    if start_server:
        window.start_server()
    return window


def main(argv: list[str] | None = None) -> int:
    """Run the GUI until the main window closes; returns the exit status."""
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help / --version / bad option
        return int(exc.code or 0)
    if QApplication.instance() is None and not display_available(os.environ, sys.platform):
        sys.stderr.write(
            "gearview: no display to open the window on (DISPLAY/WAYLAND_DISPLAY unset); "
            "use `gearview serve` to run the DICOM server headless\n"
        )
        return 1
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("gearview")
    app.setApplicationDisplayName("gearview")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("gearview")
    app.setWindowIcon(app_icon())
    home = Home.default().ensure()
    handler = setup_logging(home)
    try:
        return _run(app, home, start_server=not args.no_server)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _run(app: QApplication, home: Home, start_server: bool) -> int:
    station = Station(home, load_config_or_defaults(home))
    try:
        opened = open_station(station)
    except GearviewError as exc:
        station.close()
        QMessageBox.critical(
            None, "gearview", f"The local cache cannot be opened:\n\n{describe_error(exc)}"
        )
        return 1
    if not opened:
        return 1
    window = create_window(station, start_server=start_server)
    window.show()
    log.info("gearview %s started (home %s)", __version__, home.root)
    code = app.exec()
    window.shutdown()  # closes the station
    return code
