"""The main toolbar: the technologist's daily jobs, large, each with its shortcut.

Import, Query, Edit, Send, Burn and Delete are the actions the features
registered (found by name with `MainWindow.action`), so a button does
exactly what its menu item does and is enabled with it; the toolbar only
gives them an icon, a short label and a tooltip naming the shortcut. Query is
its own action (the Query/Retrieve tab). A feature that is not installed
(e.g. Delete before the cache lifecycle feature) leaves no button behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import qtawesome as qta
from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QAction, QKeySequence, QPalette
from PySide6.QtWidgets import QToolBar

ICON_SIZE = QSize(32, 32)
QUERY_SHORTCUT = "Ctrl+Shift+F"


@dataclass(frozen=True)
class Slot:
    name: str  # the action's name (`MainWindow.action`)
    label: str
    icon: str
    tip: str


SLOTS = (
    Slot("import", "Import", "mdi6.disc", "Import a CD/DVD, USB stick, folder, ISO or zip"),
    Slot("query", "Query", "mdi6.cloud-search", "Query/Retrieve studies from the PACS"),
    Slot("edit-study", "Edit", "mdi6.account-edit", "Correct the selected study's demographics"),
    Slot("send", "Send", "mdi6.send", "Send the selected studies to a DICOM node"),
    Slot("burn", "Burn", "mdi6.disc-player", "Burn the selected studies to a patient disc"),
    Slot("delete", "Delete", "mdi6.delete", "Delete the selected studies from this station"),
)


def tooltip(text: str, action: QAction) -> str:
    keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    return f"{text} ({keys})" if keys else text


def _query_action(window: Any) -> QAction | None:
    panel = getattr(window, "query_panel", None)
    if panel is None:
        return None
    action = QAction("&Query/Retrieve…", window)
    action.setObjectName("query")
    action.setShortcut(QKeySequence(QUERY_SHORTCUT))

    def show() -> None:
        window.tabs.setCurrentWidget(panel)
        panel.patient_name.setFocus(Qt.FocusReason.ShortcutFocusReason)

    action.triggered.connect(show)
    window.add_menu_action("&Study", action)
    return action


class MainToolBar(QToolBar):
    """The toolbar; its icons are drawn in the palette's text colour (light on dark)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__("Main toolbar", parent)
        self.icons: dict[QAction, str] = {}

    def add(self, action: QAction, icon: str) -> None:
        self.icons[action] = icon
        self.addAction(action)
        self._paint(action, icon)

    def _paint(self, action: QAction, icon: str) -> None:
        palette = self.palette()
        action.setIcon(qta.icon(
            icon,
            color=palette.color(QPalette.ColorRole.ButtonText),
            color_disabled=palette.color(QPalette.ColorGroup.Disabled,
                                         QPalette.ColorRole.ButtonText),
        ))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - dark mode switched
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            for action, icon in self.icons.items():
                self._paint(action, icon)


def install(window: Any) -> QToolBar:
    """The "Main" toolbar (after every feature, whose actions it shows)."""
    bar = MainToolBar(window)
    bar.setObjectName("main-toolbar")
    bar.setIconSize(ICON_SIZE)
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
    bar.setMovable(True)
    _query_action(window)
    for slot in SLOTS:
        action = window.action(slot.name)
        if action is None:
            continue
        action.setIconText(slot.label)
        action.setToolTip(tooltip(slot.tip, action))
        bar.add(action, slot.icon)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    window.add_menu_action("&View", bar.toggleViewAction())
    window.main_toolbar = bar
    return bar
