"""The GUI's own preferences: window and dock layout, list grouping, recent edit reasons.

They live in `gui.ini` (QSettings, INI format) under the gearview home, next
to config.toml: a test's fresh home starts from fresh preferences, and a
home moved to another machine takes them along. Nothing here configures the
engine; a missing or unreadable file only means defaults.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

from gearview.home import Home

FILE_NAME = "gui.ini"
MAX_REASONS = 10
REASONS_KEY = "edit/recent_reasons"


def gui_settings(home: Home) -> QSettings:
    return QSettings(str(home.root / FILE_NAME), QSettings.Format.IniFormat)


def string_list(settings: QSettings, key: str) -> list[str]:
    """A list value (QSettings gives a bare string for one item and None for none)."""
    value = settings.value(key, [])
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value or [] if v]


def recent_reasons(home: Home) -> list[str]:
    """The reasons of the last edits, newest first."""
    return string_list(gui_settings(home), REASONS_KEY)


def remember_reason(home: Home, reason: str) -> None:
    if not reason:
        return
    settings = gui_settings(home)
    kept = [r for r in string_list(settings, REASONS_KEY) if r != reason]
    settings.setValue(REASONS_KEY, [reason, *kept][:MAX_REASONS])
