"""The window remembers its layout: size and place, docks and toolbar, list columns, grouping.

Restored once every feature has added its docks and toolbars (so Qt can
match them by object name) and saved when the window closes, in the GUI
preferences under the gearview home (`gui_settings`). A saved state that no
longer fits (a dock renamed, another Qt) is ignored by Qt, leaving the
defaults.
"""

from __future__ import annotations

from typing import Any

import qtawesome as qta
from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHeaderView

from gearview.ui.gui_settings import gui_settings

#: Bumped when the docks/toolbars change so much that an old saved state would confuse.
STATE_VERSION = 1
GROUP_SHORTCUT = "Ctrl+G"


def _bytes(settings: QSettings, key: str) -> QByteArray | None:
    value = settings.value(key)
    return value if isinstance(value, QByteArray) and not value.isEmpty() else None


def _headers(window: Any) -> dict[str, QHeaderView]:
    """Every column header whose widths and order are worth keeping, by settings key."""
    headers = {"study_list/columns": window.study_list.view.horizontalHeader()}
    tree = window.study_list.tree
    if tree is not None:
        headers["study_list/tree_columns"] = tree.header()
    panel = getattr(window, "query_panel", None)
    if panel is not None:
        headers["query/columns"] = panel.table.horizontalHeader()
    activity = getattr(window, "activity_panel", None)
    if activity is not None:
        headers["activity/columns"] = activity.table.horizontalHeader()
    return headers


def restore(window: Any, settings: QSettings) -> None:
    geometry = _bytes(settings, "main/geometry")
    if geometry is not None:
        window.restoreGeometry(geometry)
    state = _bytes(settings, "main/state")
    if state is not None:
        window.restoreState(state, STATE_VERSION)
    if settings.value("study_list/grouped", False, type=bool):
        window.study_list.set_grouped(True)
    for key, header in _headers(window).items():
        saved = _bytes(settings, key)
        if saved is not None:
            header.restoreState(saved)


def save(window: Any, settings: QSettings) -> None:
    settings.setValue("main/geometry", window.saveGeometry())
    settings.setValue("main/state", window.saveState(STATE_VERSION))
    settings.setValue("study_list/grouped", window.study_list.grouped)
    for key, header in _headers(window).items():
        settings.setValue(key, header.saveState())
    settings.sync()


def _group_action(window: Any) -> QAction:
    """View ▸ Group by patient, in step with the list's own button."""
    action = QAction(qta.icon("mdi6.file-tree"), "&Group studies by patient", window)
    action.setCheckable(True)
    action.setShortcut(QKeySequence(GROUP_SHORTCUT))
    action.toggled.connect(window.study_list.set_grouped)
    window.study_list.grouping_changed.connect(action.setChecked)
    window.add_menu_action("&View", action)
    return action


def install(window: Any) -> None:
    """Last of the features: restore what was saved, save again when the window closes."""
    window.group_action = _group_action(window)
    settings = gui_settings(window.home)
    restore(window, settings)
    window.closing.connect(lambda: save(window, gui_settings(window.home)))
