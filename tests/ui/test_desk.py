"""The technologist's desk: toolbar, drop to import, saved layout, dark mode, Help."""

from __future__ import annotations

from pathlib import Path

from factory import write_series
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QToolButton

from gearview.station import Station
from gearview.ui import theme as theme_mod
from gearview.ui.help_menu import (
    VIEWER_SECTION,
    read_guide,
    section,
    shortcut_rows,
    shortcuts_html,
)
from gearview.ui.main_window import MainWindow
from gearview.ui.toolbar import ICON_SIZE, SLOTS


def _toolbar_texts(window) -> list[str]:
    return [a.iconText() for a in window.main_toolbar.actions()]


def test_toolbar_has_the_daily_jobs_large_with_shortcuts(window, qtbot):
    installed = [s.label for s in SLOTS if window.action(s.name) is not None]
    assert _toolbar_texts(window) == installed
    assert {"Import", "Query", "Edit", "Send", "Burn", "Delete"} <= set(installed)
    assert window.main_toolbar.iconSize() == ICON_SIZE and ICON_SIZE.height() >= 32
    for action in window.main_toolbar.actions():
        keys = action.shortcut().toString()
        assert keys and keys in action.toolTip(), action.iconText()
    edit = window.action("edit-study")
    assert edit in window.main_toolbar.actions() and edit.text() == "Edit study…"


def test_toolbar_buttons_do_what_their_menu_items_do(window, qtbot, tmp_path):
    for path in write_series(tmp_path / "s", 2, patient_name="Tool^Bar"):
        window.cache.add_file(path)
    qtbot.waitUntil(lambda: window.study_list.model.rowCount() == 1, timeout=10_000)
    uid = window.study_list.model.record(0).study_instance_uid
    window.study_list.select_study(uid)

    def button(label: str) -> QToolButton:
        action = next(a for a in window.main_toolbar.actions() if a.iconText() == label)
        return window.main_toolbar.widgetForAction(action)

    qtbot.mouseClick(button("Query"), Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is window.query_panel
    window.tabs.setCurrentWidget(window.study_list)
    qtbot.mouseClick(button("Edit"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: getattr(window, "_edit_dialog", None) is not None, timeout=10_000)
    assert window._edit_dialog.record.study_instance_uid == uid
    window._edit_dialog.reject()
    qtbot.mouseClick(button("Import"), Qt.MouseButton.LeftButton)
    from gearview.ui.import_dialog import ImportDialog

    qtbot.waitUntil(lambda: any(isinstance(w, ImportDialog) and w.isVisible()
                                for w in QApplication.topLevelWidgets()), timeout=5_000)
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, ImportDialog):
            widget.reject()


def _drop(window, urls: list[QUrl]) -> tuple[bool, bool]:
    mime = QMimeData()
    mime.setUrls(urls)
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    return enter.isAccepted(), drop.isAccepted()


def test_dropping_a_folder_opens_the_import_dialog_and_scans_it(window, qtbot, tmp_path):
    folder = tmp_path / "usb stick"
    write_series(folder, 3, patient_name="Dropped^Disc")
    assert _drop(window, [QUrl.fromLocalFile(str(folder))]) == (True, True)
    dialog = window.import_dialog
    assert dialog.isVisible() and dialog.path_edit.text() == str(folder)
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=15_000)
    assert "3 DICOM file(s)" in dialog.summary.text()
    dialog.reject()


def test_a_dropped_web_link_is_refused(window):
    assert _drop(window, [QUrl("https://example.org/study.zip")]) == (False, False)
    assert getattr(window, "import_dialog", None) is None


def test_layout_and_grouping_are_remembered(qtbot, home, gui_config):
    first = MainWindow(Station(home, gui_config).open())
    qtbot.addWidget(first)
    first.show()
    first.resize(720, 520)
    first.activity_dock.hide()
    first.study_list.view.horizontalHeader().resizeSection(0, 333)
    first.group_action.trigger()
    assert first.study_list.grouped
    size = first.size()
    first.close()
    assert (home.root / "gui.ini").exists()

    second = MainWindow(Station(home, gui_config).open())
    qtbot.addWidget(second)
    second.show()
    try:
        assert second.size() == size and size.width() == 720
        assert not second.activity_dock.isVisible()
        assert second.study_list.view.horizontalHeader().sectionSize(0) == 333
        assert second.study_list.grouped and second.group_action.isChecked()
    finally:
        second.close()


def test_dark_mode_follows_the_os_and_the_choice(window, qtbot):
    app = QApplication.instance()
    theme = window.theme
    light = app.palette().window().color()
    hints = QGuiApplication.styleHints()
    try:
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # the desktop switched to dark
        assert theme_mod.is_dark(app.palette()) and theme.dark
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
        assert app.palette().window().color() == light
        window.findChild(type(window.action("edit-study")), "appearance-dark").trigger()
        assert theme_mod.is_dark(app.palette())
        assert window.theme.choice == "dark"
    finally:
        theme.choose(theme_mod.SYSTEM)
        theme.os_changed(Qt.ColorScheme.Unknown)
    assert app.palette().window().color() == light


def test_help_opens_the_user_guide_and_the_shortcuts(window, qtbot):
    window.action("user-guide").trigger()
    qtbot.waitUntil(lambda: getattr(window, "user_guide", None) is not None, timeout=10_000)
    guide = window.user_guide
    assert guide.isVisible() and "The technologist's day" in guide.browser.toPlainText()
    assert "images/main-window.png" in guide.browser.images  # read on a worker
    window.action("keyboard-shortcuts").trigger()
    qtbot.waitUntil(lambda: getattr(window, "shortcuts_window", None) is not None,
                    timeout=10_000)
    text = window.shortcuts_window.browser.toPlainText()
    assert "Edit study…" in text and "Ctrl+E" in text and "Group studies by patient" in text
    assert "In the viewer" in text and "reference lines on/off" in text  # the guide's Viewer keys
    guide.close()
    window.shortcuts_window.close()


def test_the_shortcuts_window_adds_the_viewer_keys_of_the_guide(window):
    text = "## Viewer\n\n### Keyboard shortcuts\n\n| Key | Action |\n|---|---|\n| R | rotate |\n"
    html = shortcuts_html(window, section(text, *VIEWER_SECTION))
    assert "In the viewer" in html and "rotate" in html
    assert "In the viewer" not in shortcuts_html(window, section("# none", *VIEWER_SECTION))


def test_every_menu_shortcut_is_in_the_user_guide(window):
    """The guide's shortcut table is the one the menus have (docs cannot drift)."""
    guide = read_guide(with_images=False)
    assert guide is not None
    table = section(guide.text, "### In the main window")
    missing = [(name, keys) for _menu, name, keys in shortcut_rows(window)
               if f"| {keys} |" not in table.replace("`", "")]
    assert missing == []


def test_guide_images_exist(window):
    guide = read_guide()
    assert guide is not None
    for line in guide.text.splitlines():
        if line.startswith("!["):
            name = line.split("(", 1)[1].rstrip(")")
            assert (Path(guide.path).parent / name).is_file(), name
