"""The field editors of the Edit study form: text, a date with a calendar, Sex as a choice.

Each editor holds a DICOM value (`value()` / `set_value()`, `changed` when
the user alters it) whatever it shows: a date field shows `1970-01-31` and
holds `19700131`. Validity and "changed" are shown by dynamic properties the
form's style sheet colours (`invalid`, `changed`), so marking a field never
changes its size and the form never moves under the pointer.
"""

from __future__ import annotations

import re

import qtawesome as qta
from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QCalendarWidget,
    QComboBox,
    QLineEdit,
    QMenu,
    QWidget,
    QWidgetAction,
)

from gearview.display import format_date

_DIGITS = re.compile(r"\D")
_DATE = re.compile(r"^\d{8}$")
#: How the form marks invalid and changed fields (readable on light and dark palettes).
FIELD_STYLE = """
QLineEdit[changed="true"], QComboBox[changed="true"] { background: rgba(255, 193, 7, 70); }
QLineEdit[invalid="true"], QComboBox[invalid="true"] { border: 2px solid #d32f2f; }
"""
SEX_CHOICES = (("", "— (not known)"), ("F", "F — female"), ("M", "M — male"), ("O", "O — other"))


class TextField(QLineEdit):
    changed = Signal()

    def __init__(self, value: str, parent: QWidget | None = None) -> None:
        super().__init__(value, parent)
        self.textChanged.connect(self.changed)

    def value(self) -> str:
        return self.text()

    def set_value(self, value: str) -> None:
        self.setText(value)


class DateField(QLineEdit):
    """A DA value typed as YYYY-MM-DD (digits only) or picked from a calendar.

    A stored value that is not a plain date (`1970`, a range) is shown as
    found, without the mask, so opening the form never changes it.
    """

    changed = Signal()

    def __init__(self, value: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.masked = not value or bool(_DATE.match(value))
        if self.masked:
            self.setInputMask("0000-00-00;_")
        self.setText(value)
        self.setPlaceholderText("YYYY-MM-DD")
        self.calendar = QCalendarWidget()
        self.calendar.setGridVisible(True)
        self.calendar.clicked.connect(self._picked)
        self._popup = QMenu(self)
        holder = QWidgetAction(self._popup)
        holder.setDefaultWidget(self.calendar)
        self._popup.addAction(holder)
        pick = self.addAction(qta.icon("mdi6.calendar"), QLineEdit.ActionPosition.TrailingPosition)
        pick.setToolTip("Pick the date from a calendar")
        pick.triggered.connect(self.show_calendar)
        self.textChanged.connect(self.changed)

    def value(self) -> str:
        """The DICOM value: the digits typed (YYYYMMDD), or the unmasked text as found."""
        return _DIGITS.sub("", self.text()) if self.masked else self.text()

    def set_value(self, value: str) -> None:
        if self.masked and value and not _DATE.match(value):
            self.setInputMask("")
            self.masked = False
        self.setText(value)

    def show_calendar(self) -> None:
        current = QDate.fromString(self.value(), "yyyyMMdd")
        self.calendar.setSelectedDate(current if current.isValid() else QDate.currentDate())
        self._popup.popup(self.mapToGlobal(self.rect().bottomLeft()))

    def _picked(self, date: QDate) -> None:
        self._popup.hide()
        if not self.masked:
            self.setInputMask("0000-00-00;_")
            self.masked = True
        self.setText(date.toString("yyyyMMdd"))
        self.setFocus(Qt.FocusReason.PopupFocusReason)

    def shown(self) -> str:
        """What a person reads (tests and the changed-field tooltip)."""
        return format_date(self.value())


class SexField(QComboBox):
    """Patient's Sex (0010,0040) as one of F, M, O or empty; an odd stored value stays listed."""

    changed = Signal()

    def __init__(self, value: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        for code, label in SEX_CHOICES:
            self.addItem(label, code)
        if self.findData(value) < 0:
            self.addItem(f"{value} (as stored)", value)
        self.setCurrentIndex(self.findData(value))
        self.currentIndexChanged.connect(self.changed)

    def value(self) -> str:
        return str(self.currentData())

    def set_value(self, value: str) -> None:
        index = self.findData(value.strip().upper())
        if index < 0:
            self.addItem(f"{value} (as given)", value)
            index = self.count() - 1
        self.setCurrentIndex(index)


FieldEditor = TextField | DateField | SexField
DATE_KEYWORDS = ("PatientBirthDate", "StudyDate")


def field_editor(keyword: str, value: str) -> FieldEditor:
    """The editor suited to a form keyword."""
    if keyword == "PatientSex":
        return SexField(value)
    if keyword in DATE_KEYWORDS:
        return DateField(value)
    return TextField(value)


def mark(widget: QWidget, name: str, on: bool) -> None:
    """Set a style property (`invalid`, `changed`) and re-polish so the colour follows."""
    if widget.property(name) == on:
        return
    widget.setProperty(name, on)
    widget.style().unpolish(widget)
    widget.style().polish(widget)
