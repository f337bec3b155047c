"""The main window: local study list, menus, status bar, and the extension points.

`MainWindow(station)` is a view of an open engine `Station`: the station owns
the cache, server, job queue and decoder processes; the window runs the
station's blocking calls on its worker pool and hears the engine's events
through its `bridge`. Closing the window closes the station.

Features (viewer, query, edit, import, burn…) never edit this file beyond one
line in `_install_features()`: each provides `install(window)` and uses
`add_tab`, `add_dock`, `add_study_action`, `add_menu_action`, `menu`, `action`,
`selected_study_uids`, the `study_activated` and `closing` signals, `run_job`,
`pool`, `bridge` and the `station` (with the shortcuts `cache`, `home`, `config`).
Actions added through `add_study_action` / `add_menu_action` are named after
their text ("Edit study…" -> `edit-study`), so the toolbar and the shortcut
list find them without the feature knowing about either.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import qtawesome as qta
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QWidget,
)

from gearview import __version__
from gearview.config import Config
from gearview.errors import Cancelled, GearviewError, IndexCorruptError, describe_error
from gearview.home import Home
from gearview.jobs import CancelToken, Progress
from gearview.net.server import Server
from gearview.station import Station
from gearview.store import Cache
from gearview.store.check import RebuildReport
from gearview.ui.bridge import Bridge
from gearview.ui.index_repair import ask_rebuild
from gearview.ui.settings_dialog import EchoFn, SettingsDialog
from gearview.ui.status import JobStatus, ServerStatus
from gearview.ui.study_list import StudyListWidget
from gearview.ui.workers import WorkerPool

log = logging.getLogger(__name__)

STATUS_MESSAGE_MS = 10_000
_NOT_WORD = re.compile(r"[^a-z0-9]+")
JobFn = Callable[[Callable[[Progress], None], CancelToken], Any]


@dataclass
class JobHandle:
    """A job started by `run_job`: its token cancels it, its widget shows it."""

    task_id: int
    token: CancelToken
    widget: JobStatus


class MainWindow(QMainWindow):
    """The gearview main window (see the module docstring for the extension points)."""

    study_activated = Signal(str)
    #: emitted on the GUI thread after settings were saved and the server restarted.
    config_applied = Signal(object)
    #: emitted once when the window starts shutting down, before its workers stop and the
    #: station closes: features stop their own threads here.
    closing = Signal()

    def __init__(self, station: Station, echo_fn: EchoFn | None = None) -> None:
        """`station` must be open; the window closes it when it closes."""
        super().__init__()
        self.station = station
        self.pool = WorkerPool(self)
        self.bridge = Bridge(station.bus, self)
        self._echo_fn = echo_fn
        self._study_actions: list[QAction] = []
        self._menus: dict[str, QMenu] = {}
        self._jobs: dict[int, JobHandle] = {}
        self._settings: SettingsDialog | None = None
        self._shut_down = False
        self._rebuilding = False
        #: the damaged-index question (tests replace it).
        self.ask_rebuild = ask_rebuild

        self.setWindowTitle(f"gearview {__version__}")
        self.resize(1200, 720)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.study_list = StudyListWidget(station.cache, self.bridge, self.pool, self)
        self.study_list.study_activated.connect(self.study_activated)
        self.study_list.load_failed.connect(self._on_load_failed)
        self.study_list.context_menu_requested.connect(self._study_context_menu)
        self.add_tab(self.study_list, "Local studies", qta.icon("mdi6.database"))

        self.server_status = ServerStatus(self.bridge, self)
        self.statusBar().addPermanentWidget(self.server_status)
        self.server_status.changed.connect(self._update_empty_hint)
        self._build_menus()
        station.start_jobs()
        self._install_features()
        self.study_list.refresh()

    # ---- the station's parts ------------------------------------------------------

    @property
    def home(self) -> Home:
        return self.station.home

    @property
    def config(self) -> Config:
        """The station's current config (replaced when settings are applied)."""
        return self.station.config

    @property
    def cache(self) -> Cache:
        return self.station.cache

    @property
    def server(self) -> Server | None:
        return self.station.server

    # ---- menus ------------------------------------------------------------------

    def _menu(self, title: str) -> QMenu:
        menu = self._menus.get(title)
        if menu is None:
            menu = QMenu(title, self)
            help_menu = self._menus.get("&Help")
            if help_menu is None:
                self.menuBar().addMenu(menu)
            else:
                self.menuBar().insertMenu(help_menu.menuAction(), menu)
            self._menus[title] = menu
        return menu

    def _build_menus(self) -> None:
        file_menu = self._menu("&File")
        self.refresh_action = QAction(qta.icon("mdi6.refresh"), "&Refresh study list", self)
        self.refresh_action.setShortcut(QKeySequence(Qt.Key.Key_F5))
        self.refresh_action.triggered.connect(self.study_list.refresh)
        self.settings_action = QAction(qta.icon("mdi6.cog"), "&Settings…", self)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.settings_action.triggered.connect(self.open_settings)
        self.quit_action = QAction(qta.icon("mdi6.exit-to-app"), "&Quit", self)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)
        file_menu.addAction(self.refresh_action)
        file_menu.addAction(self.settings_action)
        self.rebuild_action = QAction(
            qta.icon("mdi6.database-refresh"), "Re&build index from files…", self
        )
        self.rebuild_action.triggered.connect(lambda: self.rebuild_index(confirm=True))
        file_menu.addAction(self.rebuild_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        self._menu("&Study")
        self.find_action = QAction(qta.icon("mdi6.magnify"), "&Find in study list", self)
        self.find_action.setShortcut(QKeySequence.StandardKey.Find)
        self.find_action.triggered.connect(self._focus_filter)
        self.open_action = QAction(qta.icon("mdi6.image-multiple"), "&Open study", self)
        self.open_action.triggered.connect(self._open_selected)
        self._menu("&Study").addAction(self.find_action)
        self._menu("&Study").addAction(self.open_action)
        self._menu("&Study").addSeparator()
        self._menu("&View")
        help_menu = self._menu("&Help")
        about = QAction("&About gearview", self)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    def _focus_filter(self) -> None:
        self.tabs.setCurrentWidget(self.study_list)
        self.study_list.focus_filter()

    def _open_selected(self) -> None:
        for uid in self.selected_study_uids()[:1]:
            self.study_activated.emit(uid)

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About gearview",
            f"<b>gearview {__version__}</b><br>DICOM QC workstation.<br>"
            "MIT licence; binary installers are distributed under GPLv3 because "
            "they bundle pylibjpeg-libjpeg.",
        )

    def _study_context_menu(self, global_pos: Any) -> None:
        if not self._study_actions:
            return
        menu = QMenu(self)
        menu.addActions(self._study_actions)
        menu.exec(global_pos)

    # ---- extension points -------------------------------------------------------

    def _install_features(self) -> None:
        """Each feature registers itself here with one import and one `install(self)` call."""
        from gearview.ui.activity_panel import install as install_activity
        from gearview.ui.burn_dialog import install as install_burn
        from gearview.ui.drop import install as install_drop
        from gearview.ui.edit_dialog import install as install_edit
        from gearview.ui.export_dialog import install as install_export
        from gearview.ui.help_menu import install as install_help
        from gearview.ui.import_dialog import install as install_import
        from gearview.ui.layout_state import install as install_layout
        from gearview.ui.lifecycle_actions import install as install_lifecycle
        from gearview.ui.notifications import install as install_notifications
        from gearview.ui.query_panel import install as install_query
        from gearview.ui.send_dialog import install as install_send
        from gearview.ui.tag_editor import install as install_tags
        from gearview.ui.theme import install as install_theme
        from gearview.ui.toolbar import install as install_toolbar
        from gearview.ui.viewer import install as install_viewer

        install_viewer(self)
        install_edit(self)
        install_import(self)
        install_burn(self)
        install_export(self)
        install_tags(self)
        install_activity(self)
        install_notifications(self)
        install_query(self)
        install_send(self)
        install_lifecycle(self)
        install_toolbar(self)  # shows the actions installed above
        install_drop(self)
        install_help(self)
        install_theme(self)
        install_layout(self)  # last: restores the docks and toolbars made above

    def add_tab(self, widget: QWidget, title: str, icon: QIcon | None = None) -> int:
        """Add a main tab (e.g. the viewer or the query page); returns its index."""
        return self.tabs.addTab(widget, icon or QIcon(), title)

    def add_dock(
        self,
        widget: QWidget,
        title: str,
        area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea,
    ) -> QDockWidget:
        """Add a dock (e.g. activity); its toggle appears in the View menu."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self._menu("&View").addAction(dock.toggleViewAction())
        return dock

    def add_study_action(
        self,
        text: str,
        callback: Callable[[list[str]], None],
        shortcut: str | QKeySequence | None = None,
        icon: QIcon | None = None,
    ) -> QAction:
        """An action on the selected studies: Study menu + study-list context menu."""
        action = QAction(icon or QIcon(), text, self)
        _name(action)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda: callback(self.selected_study_uids()))
        self._study_actions.append(action)
        self._menu("&Study").addAction(action)
        return action

    def add_menu_action(self, menu_title: str, action: QAction) -> QAction:
        """Put an action in a top-level menu (created when new, e.g. "&Tools")."""
        _name(action)
        self._menu(menu_title).addAction(action)
        return action

    def menu(self, title: str) -> QMenu:
        """A top-level menu (created when new, before Help) for features that need the menu."""
        return self._menu(title)

    def action(self, name: str) -> QAction | None:
        """The action named `name` or `name-…` (e.g. "edit-study", "import"), if installed."""
        for action in self.findChildren(QAction):
            found = action.objectName()
            if found == name or found.startswith(f"{name}-"):
                return action
        return None

    def selected_study_uids(self) -> list[str]:
        return self.study_list.selected_study_uids()

    def run_job(
        self,
        fn: JobFn,
        title: str,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> JobHandle:
        """Run `fn(progress, token)` on a worker with a progress bar and Cancel in the status bar.

        `on_done(result)` runs on the GUI thread after success. Failures go to
        `on_error` or, by default, to the status bar; cancelling is silent.
        """
        holder: dict[str, JobHandle] = {}

        def finished(result: Any) -> None:
            self._end_job(holder["job"])
            self.statusBar().showMessage(f"{title}: done", STATUS_MESSAGE_MS)
            if on_done is not None:
                on_done(result)

        def failed(exc: BaseException) -> None:
            self._end_job(holder["job"])
            if isinstance(exc, Cancelled):
                self.statusBar().showMessage(f"{title}: cancelled", STATUS_MESSAGE_MS)
            elif on_error is not None:
                on_error(exc)
            else:
                log.error("%s failed: %s", title, describe_error(exc))
                self.statusBar().showMessage(f"{title} failed: {describe_error(exc)}")

        def progressed(progress: Progress) -> None:
            job = holder.get("job")
            if job is not None:
                job.widget.set_progress(progress)

        task_id, token = self.pool.submit_job(
            fn, on_result=finished, on_error=failed, on_progress=progressed
        )
        widget = JobStatus(title, token, self)
        self.statusBar().addPermanentWidget(widget)
        job = JobHandle(task_id, token, widget)
        holder["job"] = job
        self._jobs[task_id] = job
        return job

    def _end_job(self, job: JobHandle) -> None:
        self._jobs.pop(job.task_id, None)
        self.statusBar().removeWidget(job.widget)
        job.widget.deleteLater()

    @property
    def running_jobs(self) -> list[JobHandle]:
        return list(self._jobs.values())

    # ---- server -------------------------------------------------------------------

    def start_server(self) -> None:
        """Start the embedded server on a worker; a busy port is reported, not fatal."""
        self.pool.submit(
            self.station.start_server,
            on_result=self.server_status.set_state,
            on_error=self._server_failed,
        )

    def _server_failed(self, exc: BaseException) -> None:
        message = describe_error(exc)
        log.error("the DICOM server could not start: %s", message)
        state = self.station.server_state
        if state is not None:
            self.server_status.set_state(state)
        self.server_status.set_error(message)

    # ---- settings -------------------------------------------------------------------

    def open_settings(self) -> SettingsDialog:
        if self._settings is not None and self._settings.isVisible():
            self._settings.raise_()
            self._settings.activateWindow()
            return self._settings
        dialog = SettingsDialog(self.config, self.pool, self._echo_fn, self)
        dialog.apply_requested.connect(self.apply_config)
        self._settings = dialog
        dialog.show()
        return dialog

    def apply_config(self, config: Config) -> None:
        """Save the config and restart the server with it, on a worker (no app restart)."""
        storage_changed = config.storage.folder != self.config.storage.folder
        restart = self.config.server_differs(config)
        self.statusBar().showMessage("Saving settings…")
        self.pool.submit(
            self.station.apply_config,
            config,
            on_result=lambda error: self._applied(config, error, storage_changed, restart),
            on_error=self._save_failed,
        )

    def _applied(
        self, config: Config, error: GearviewError | None, storage_changed: bool, restart: bool
    ) -> None:
        message = "Settings saved"
        state = self.station.server_state
        if state is not None:
            self.server_status.set_state(state)
        if error is not None:
            self.server_status.set_error(error.one_line())
            message += f", but the DICOM server did not restart: {error.one_line()}"
        elif state is not None and restart:
            message += f"; DICOM server restarted as {state.ae_title}@{state.port}"
        elif state is not None:
            message += "; the DICOM server kept running (none of its settings changed)"
        if storage_changed:
            message += "; the new storage folder is used after gearview is restarted"
        self.statusBar().showMessage(message, 0 if error else STATUS_MESSAGE_MS)
        self.config_applied.emit(config)

    def _save_failed(self, exc: BaseException) -> None:
        self.statusBar().showMessage(f"Settings not saved: {describe_error(exc)}")

    def _update_empty_hint(self) -> None:
        status = self.server_status
        if status.running:
            where = (f"Send studies to AE title {status.ae_title}, port {status.port} of this "
                     "computer, or import a disc or folder.")
        else:
            where = "The DICOM server is not running: see the status bar."
        self.study_list.set_empty_hint(f"No studies in the local cache yet.\n{where}")

    def _on_load_failed(self, exc: BaseException) -> None:
        self.statusBar().showMessage(f"Could not read the local index: {describe_error(exc)}")
        damaged = isinstance(exc, (IndexCorruptError, sqlite3.DatabaseError))
        if damaged and not self._rebuilding and self.ask_rebuild(exc, self, "Not now"):
            self.rebuild_index(confirm=False)

    # ---- index rebuild ----------------------------------------------------------------

    def rebuild_index(self, confirm: bool = True) -> JobHandle | None:
        """Recreate the index from the files (server paused meanwhile; no file is deleted)."""
        if self._rebuilding:
            return None
        if confirm and QMessageBox.question(
            self, "Rebuild index",
            "Rebuild the index of the local cache from the image files?\n\nThe DICOM server "
            "pauses while it runs. No image file is deleted.",
        ) != QMessageBox.StandardButton.Yes:
            return None
        self._rebuilding = True
        return self.run_job(self.station.rebuild_index, "Rebuilding index",
                            on_done=self._rebuilt, on_error=self._rebuild_failed)

    def _rebuilt(self, result: tuple[RebuildReport, GearviewError | None]) -> None:
        self._rebuilding = False
        report, error = result
        self.study_list.refresh()
        message = (f"Index rebuilt: {report.indexed} instances; "
                   f"{len(report.skipped)} unreadable files skipped")
        if error is not None:
            message += f"; the DICOM server did not restart: {error.one_line()}"
        self.statusBar().showMessage(message, 0 if error else STATUS_MESSAGE_MS)

    def _rebuild_failed(self, exc: BaseException) -> None:
        self._rebuilding = False
        self.study_list.refresh()
        self.statusBar().showMessage(f"Index rebuild failed: {describe_error(exc)}")

    # ---- shutdown -------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the features and workers, close the station, detach from the engine (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.closing.emit()
        self.study_list.shutdown()
        if self._settings is not None:
            self._settings.close()
        self.pool.shutdown()
        self.station.close()
        self.bridge.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)


def _name(action: QAction) -> None:
    """Name an unnamed action after its text: "&Import from disc…" -> "import-from-disc"."""
    if not action.objectName():
        slug = _NOT_WORD.sub("-", action.text().replace("&", "").lower()).strip("-")
        action.setObjectName(slug)
