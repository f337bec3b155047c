"""Dark mode that follows the operating system (or a choice under View ▸ Appearance).

Qt 6.5+ reports the desktop's colour scheme (`QStyleHints.colorScheme`) and
when it changes. Where the platform already paints a dark palette (Windows
11, macOS) gearview leaves it alone; elsewhere (Linux desktops whose Qt
platform theme does not switch palettes) a dark scheme gets Fusion with a
dark palette, and going back to light restores the style and palette found
at start. The choice is kept in the GUI preferences (`appearance/scheme`).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QActionGroup, QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from gearview.ui.gui_settings import gui_settings

SYSTEM, LIGHT, DARK = "system", "light", "dark"
CHOICES = ((SYSTEM, "Follow the system"), (LIGHT, "Light"), (DARK, "Dark"))
SETTINGS_KEY = "appearance/scheme"


def dark_palette() -> QPalette:
    palette = QPalette()
    window, base, text = QColor(45, 45, 48), QColor(30, 30, 32), QColor(230, 230, 230)
    disabled = QColor(128, 128, 128)
    role = QPalette.ColorRole
    for name, color in (
        (role.Window, window),
        (role.WindowText, text),
        (role.Base, base),
        (role.AlternateBase, QColor(40, 40, 43)),
        (role.ToolTipBase, QColor(60, 60, 64)),
        (role.ToolTipText, text),
        (role.PlaceholderText, QColor(150, 150, 150)),
        (role.Text, text),
        (role.Button, window),
        (role.ButtonText, text),
        (role.BrightText, QColor(255, 85, 85)),
        (role.Link, QColor(100, 170, 255)),
        (role.Highlight, QColor(42, 110, 190)),
        (role.HighlightedText, QColor(255, 255, 255)),
    ):
        palette.setColor(name, color)
    for name in (role.Text, role.WindowText, role.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, name, disabled)
    return palette


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


class Theme(QObject):
    """Applies light or dark to the application as the choice and the OS say."""

    def __init__(self, app: QApplication, choice: str = SYSTEM, parent: QObject | None = None):
        super().__init__(parent)
        self.app = app
        self.choice = choice if choice in (SYSTEM, LIGHT, DARK) else SYSTEM
        self._base_style = app.style().name()
        self._base_palette = QPalette(app.palette())
        self._ours = False  # the dark palette in use is the one we set
        self.os_scheme = QGuiApplication.styleHints().colorScheme()
        QGuiApplication.styleHints().colorSchemeChanged.connect(self.os_changed)
        self.apply()

    @property
    def dark(self) -> bool:
        """Whether the scheme chosen (or the OS's, when following it) is dark."""
        if self.choice == SYSTEM:
            return self.os_scheme == Qt.ColorScheme.Dark
        return self.choice == DARK

    def os_changed(self, scheme: Qt.ColorScheme) -> None:
        self.os_scheme = scheme
        self.apply()

    def choose(self, choice: str) -> None:
        self.choice = choice
        self.apply()

    def apply(self) -> None:
        if self.dark and not is_dark(self.app.palette()):
            self.app.setStyle("Fusion")
            self.app.setPalette(dark_palette())
            self._ours = True
        elif not self.dark and self._ours:
            self.restore()

    def restore(self) -> None:
        """Back to the style and palette found at start (when ours is in use)."""
        if self._ours:
            self.app.setStyle(self._base_style)
            self.app.setPalette(self._base_palette)
            self._ours = False

    def close(self) -> None:
        QGuiApplication.styleHints().colorSchemeChanged.disconnect(self.os_changed)
        self.restore()


def install(window: Any) -> Theme | None:
    """View ▸ Appearance, and the scheme applied now and whenever the OS switches."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return None
    settings = gui_settings(window.home)
    theme = Theme(app, str(settings.value(SETTINGS_KEY, SYSTEM)), window)
    menu = window.menu("&View").addMenu("&Appearance")
    group = QActionGroup(window)
    for key, label in CHOICES:
        action = QAction(label, window)
        action.setObjectName(f"appearance-{key}")
        action.setCheckable(True)
        action.setChecked(key == theme.choice)
        action.triggered.connect(lambda _checked, key=key: _choose(window, theme, key))
        group.addAction(action)
        menu.addAction(action)
    window.closing.connect(theme.close)
    window.theme = theme
    return theme


def _choose(window: Any, theme: Theme, key: str) -> None:
    theme.choose(key)
    gui_settings(window.home).setValue(SETTINGS_KEY, key)
