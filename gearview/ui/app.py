"""`gearview` with no arguments: the GUI with its embedded DICOM server.

Startup order: home folder, config (a broken file is reported and defaults
are used), cache (a damaged index offers "Rebuild index from files" — image
files are never deleted), the main window, then the server on a worker (a
busy port leaves the window open and says why in the status bar).
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sqlite3
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox, QProgressDialog, QWidget

from gearview import __version__
from gearview.config import Config, load_config
from gearview.errors import Cancelled, ConfigError, GearviewError, IndexCorruptError
from gearview.home import Home
from gearview.jobs import Progress
from gearview.store import Cache
from gearview.store.check import RebuildReport, rebuild_index
from gearview.ui.index_repair import ask_rebuild
from gearview.ui.main_window import MainWindow, describe_error
from gearview.ui.workers import WorkerPool

log = logging.getLogger(__name__)

ICON_PATH = Path(__file__).resolve().parent.parent / "resources" / "gearview.svg"
LOG_BYTES = 5 << 20


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
    """INFO and above to logs/gearview.log (PHI is only logged at DEBUG); returns the handler."""
    handler = logging.handlers.RotatingFileHandler(
        home.logs_dir / "gearview.log", maxBytes=LOG_BYTES, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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


def probe_index(cache: Cache) -> None:
    """Read the index once so a damaged file is found before the window opens."""
    try:
        conn = cache.conn
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        conn.execute("SELECT count(*) FROM study").fetchone()
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(
            f"the index {cache.home.index_file.name} is damaged: {exc}"
        ) from None
    if result != "ok":
        raise IndexCorruptError(f"the index {cache.home.index_file.name} is damaged: {result}")


def rebuild_with_progress(
    home: Home, files_dir: Path, parent: QWidget | None = None
) -> RebuildReport | None:
    """Run `rebuild_index` on a worker behind a modal progress dialog; None if cancelled/failed."""
    pool = WorkerPool()
    loop = QEventLoop()
    dialog = QProgressDialog("Rebuilding the index from the image files…", "Cancel", 0, 0, parent)
    dialog.setWindowTitle("gearview")
    dialog.setWindowModality(Qt.WindowModality.ApplicationModal)
    dialog.setAutoReset(False)
    dialog.setAutoClose(False)
    dialog.setMinimumDuration(0)
    outcome: dict[str, object] = {}

    def progressed(progress: Progress) -> None:
        if progress.total:
            dialog.setMaximum(progress.total)
            dialog.setValue(progress.done)

    def finish(key: str, value: object) -> None:
        outcome[key] = value
        loop.quit()

    _, token = pool.submit_job(
        lambda progress, token: rebuild_index(home, files_dir, progress=progress, token=token),
        on_result=lambda report: finish("report", report),
        on_error=lambda exc: finish("error", exc),
        on_progress=progressed,
    )
    dialog.canceled.connect(token.cancel)
    dialog.show()
    if not outcome:
        loop.exec()
    dialog.canceled.disconnect(token.cancel)
    dialog.close()
    pool.shutdown()
    error = outcome.get("error")
    if isinstance(error, Cancelled):
        return None
    if error is not None:
        log.error("index rebuild failed: %s", error)
        QMessageBox.critical(parent, "gearview", f"The index could not be rebuilt:\n{error}")
        return None
    report = outcome.get("report")
    return report if isinstance(report, RebuildReport) else None


def open_cache(
    home: Home,
    config: Config,
    ask: Callable[[GearviewError], bool] = ask_rebuild,
    rebuild: Callable[[Home, Path], RebuildReport | None] = rebuild_with_progress,
) -> Cache | None:
    """Open the cache, offering a rebuild while the index is damaged; None when the user quits."""
    while True:
        cache: Cache | None = None
        try:
            cache = Cache(home, config)
            probe_index(cache)
            return cache
        except IndexCorruptError as exc:
            if cache is not None:
                cache.close()
            log.error("index damaged: %s", exc.one_line())
            if not ask(exc):
                return None
            report = rebuild(home, config.storage_dir(home))
            if report is None:
                return None
            log.info(
                "index rebuilt: %d instances, %d unreadable files skipped",
                report.indexed,
                len(report.skipped),
            )


def create_window(
    home: Home, config: Config, cache: Cache, start_server: bool = True
) -> MainWindow:
    """The main window with the real embedded server (started on a worker)."""
    from gearview.net.server import Server

    server = Server(home, config, cache) if start_server else None
    window = MainWindow(home, config, cache, server)
    window.setWindowIcon(app_icon())
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
    config = load_config_or_defaults(home)
    try:
        cache = open_cache(home, config)
    except GearviewError as exc:
        QMessageBox.critical(
            None, "gearview", f"The local cache cannot be opened:\n\n{describe_error(exc)}"
        )
        return 1
    if cache is None:
        return 1
    window = create_window(home, config, cache, start_server=start_server)
    window.show()
    log.info("gearview %s started (home %s)", __version__, home.root)
    code = app.exec()
    window.shutdown()
    cache.close()
    return code
