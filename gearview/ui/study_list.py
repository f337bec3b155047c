"""The local study list: a table model over `StudyRecord`s, a filter proxy and the widget.

The list follows the cache live: each `CACHE_CHANGED` (via the bridge) adds
the named studies to a pending set; a short timer coalesces bursts, and one
worker at a time re-reads only the pending studies with
`Cache.studies_by_uid`. A study the cache no longer has is removed from the
model. 500 instances arriving therefore cause a handful of small queries,
never 500 full reloads, and the GUI thread never touches the database.

"Group by patient" shows the same filtered rows as a patient ▸ study ▸ series
tree (`patient_tree`); the table and the tree share the filter bar, the
selection API and the context menu.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import qtawesome as qta
from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QDate,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QKeyEvent, QMouseEvent, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStackedWidget,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gearview.display import format_date, format_person_name
from gearview.events import CacheChanged
from gearview.qc.status import listed_studies
from gearview.store import Cache
from gearview.store.records import SeriesRecord, StudyRecord
from gearview.ui.bridge import Bridge
from gearview.ui.mismatch_view import MismatchView
from gearview.ui.workers import WorkerPool

if TYPE_CHECKING:
    from gearview.ui.patient_tree import PatientTreeView

log = logging.getLogger(__name__)

#: Role returning a value that sorts naturally (numbers as numbers, text case-folded).
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: Role returning the Study Instance UID of the row.
UID_ROLE = Qt.ItemDataRole.UserRole + 2
#: How long change events are collected before the pending studies are re-read.
COALESCE_MS = 250
#: Studies re-read per query (SQLite's bound-parameter limit is far above this).
FETCH_CHUNK = 500

KEPT_TOOLTIP = "Keep: never purged automatically (Study ▸ Release Keep removes the mark)"
MISMATCH_TOOLTIP = (
    "The instances of this study disagree on patient name, ID, birth date or sex: "
    "check the demographics before sending it on."
)


def flagged(record: StudyRecord) -> bool:
    """Whether the study shows the warning sign (instances disagree, or a safety finding)."""
    return record.mismatch or bool(getattr(record, "findings", ()))


def warning_text(record: StudyRecord) -> str:
    findings = getattr(record, "findings", ())
    text = MISMATCH_TOOLTIP if record.mismatch else ""
    if findings:
        text = (text + "\n" if text else "") + "Safety findings: " + ", ".join(findings)
    return text + "\nClick the sign to see the values."


@dataclass(frozen=True)
class Column:
    title: str
    attr: str
    numeric: bool = False
    #: initial width in average character widths; 0 stretches to fill the table.
    chars: int = 12


COLUMNS = (
    Column("Patient name", "patient_name", chars=26),
    Column("Patient ID", "patient_id", chars=14),
    Column("Birth date", "patient_birth_date", chars=12),
    Column("Sex", "patient_sex", chars=5),
    Column("Study date", "study_date", chars=13),
    Column("Modalities", "modalities_in_study", chars=11),
    Column("Description", "study_description", chars=0),
    Column("Accession", "accession_number", chars=13),
    Column("Series", "number_of_study_related_series", numeric=True, chars=7),
    Column("Instances", "number_of_study_related_instances", numeric=True, chars=9),
    Column("Status", "status", chars=11),
)
COL_NAME = 0
COL_STUDY_DATE = 4
#: Columns shown formatted (the raw DICOM value is the cell's tooltip).
FORMATTED = {
    "patient_name": format_person_name,
    "patient_birth_date": format_date,
    "study_date": format_date,
}


def sort_value(record: StudyRecord, column: Column) -> int | str:
    """What a column sorts by: numbers as numbers, text case-folded."""
    value = getattr(record, column.attr, "")
    if column.numeric:
        return int(value)
    if isinstance(value, list):
        return "\\".join(value).casefold()
    return str(value).casefold()


class StudyTableModel(QAbstractTableModel):
    """Rows of `StudyRecord`, keyed by Study Instance UID (no I/O here)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[StudyRecord] = []
        self._row_of: dict[str, int] = {}
        self._kept: set[str] = set()
        self._warning_icon = qta.icon("fa5s.exclamation-triangle", color="#d98c00")
        self._kept_icon = qta.icon("mdi6.lock", color="#607d8b")

    # ---- Qt model API ----------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008,N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008,N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,  # noqa: N802
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if not index.isValid():
            return None
        record = self._rows[index.row()]
        column = COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(record, column)
        if role == SORT_ROLE:
            return sort_value(record, column)
        if role == UID_ROLE:
            return record.study_instance_uid
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if index.column() == COL_NAME and flagged(record):
            if role == Qt.ItemDataRole.DecorationRole:
                return self._warning_icon
            if role == Qt.ItemDataRole.ToolTipRole:
                return warning_text(record)
        if index.column() == COL_STUDY_DATE and record.study_instance_uid in self._kept:
            if role == Qt.ItemDataRole.DecorationRole:
                return self._kept_icon
            if role == Qt.ItemDataRole.ToolTipRole:
                return KEPT_TOOLTIP
        if role == Qt.ItemDataRole.ToolTipRole and column.attr in FORMATTED:
            return getattr(record, column.attr, "") or None
        return None

    def is_kept(self, study_uid: str) -> bool:
        return study_uid in self._kept

    def set_kept(self, study_uids: set[str]) -> None:
        """The studies marked Keep (shown with a lock beside the study date)."""
        changed = self._kept ^ study_uids
        self._kept = set(study_uids)
        for uid in changed:
            row = self._row_of.get(uid)
            if row is not None:
                index = self.index(row, COL_STUDY_DATE)
                self.dataChanged.emit(index, index)

    @staticmethod
    def _display(record: StudyRecord, column: Column) -> str:
        value = getattr(record, column.attr, "")
        formatter = FORMATTED.get(column.attr)
        if formatter is not None:
            return formatter(value)
        if isinstance(value, list):
            return ", ".join(value)
        return str(value)

    # ---- updates -----------------------------------------------------------

    def record(self, row: int) -> StudyRecord:
        return self._rows[row]

    def row_of(self, study_uid: str) -> int | None:
        return self._row_of.get(study_uid)

    def study_uids(self) -> list[str]:
        return [r.study_instance_uid for r in self._rows]

    def modalities(self) -> list[str]:
        return sorted({m for r in self._rows for m in r.modalities_in_study})

    def reset(self, records: Iterable[StudyRecord]) -> None:
        self.beginResetModel()
        self._rows = list(records)
        self._reindex()
        self.endResetModel()

    def upsert(self, records: Iterable[StudyRecord]) -> None:
        """Replace rows we have, append the new ones (one insert for the batch)."""
        new: list[StudyRecord] = []
        last = self.columnCount() - 1
        for record in records:
            row = self._row_of.get(record.study_instance_uid)
            if row is None:
                new.append(record)
            else:
                self._rows[row] = record
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._rows.extend(new)
            for offset, record in enumerate(new):
                self._row_of[record.study_instance_uid] = first + offset
            self.endInsertRows()

    def remove(self, study_uids: Iterable[str]) -> None:
        rows = sorted((self._row_of[u] for u in set(study_uids) if u in self._row_of), reverse=True)
        for row in rows:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self.endRemoveRows()
        if rows:
            self._reindex()

    def _reindex(self) -> None:
        self._row_of = {r.study_instance_uid: i for i, r in enumerate(self._rows)}


class StudyFilterProxy(QSortFilterProxyModel):
    """Free text over name/ID/accession/description, one modality, a study-date range."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._modality = ""
        self._date_from = ""
        self._date_to = ""
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def _change_filter(self, **values: str) -> None:
        """Set filter fields and re-filter (Qt >= 6.9 API when present, else the older one)."""
        begin = getattr(self, "beginFilterChange", None)
        if begin is not None:
            begin()
        for name, value in values.items():
            setattr(self, f"_{name}", value)
        if begin is not None:
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateFilter()

    def set_text(self, text: str) -> None:
        self._change_filter(text=text.strip().casefold())

    def set_modality(self, modality: str) -> None:
        self._change_filter(modality=modality)

    def set_date_range(self, date_from: str, date_to: str) -> None:
        """Inclusive YYYYMMDD bounds; an empty bound is open."""
        self._change_filter(date_from=date_from, date_to=date_to)

    def filterAcceptsRow(
        self,
        source_row: int,  # noqa: N802
        source_parent: QModelIndex | QPersistentModelIndex,
    ) -> bool:
        model = self.sourceModel()
        if not isinstance(model, StudyTableModel):
            return True
        record = model.record(source_row)
        if self._modality and self._modality not in record.modalities_in_study:
            return False
        if self._date_from or self._date_to:
            date = record.study_date
            if not date:
                return False
            if self._date_from and date < self._date_from:
                return False
            if self._date_to and date > self._date_to:
                return False
        if self._text:
            haystack = " ".join(
                (
                    record.patient_name,
                    record.patient_name.replace("^", " "),
                    format_person_name(record.patient_name),
                    record.patient_id,
                    record.accession_number,
                    record.study_description,
                )
            ).casefold()
            return all(word in haystack for word in self._text.split())
        return True


class StudyTableView(QTableView):
    """The table; Enter or double-click activates the current study."""

    activated_study = Signal(str)
    #: the warning sign of a study was clicked (Study Instance UID)
    warning_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSortingEnabled(True)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.horizontalHeader()
        header.setStretchLastSection(False)
        header.setHighlightSections(False)
        self.doubleClicked.connect(self._activate_index)
        self.clicked.connect(self._maybe_warning)
        self._last_click = QPoint()

    def setModel(self, model: QAbstractItemModel | None) -> None:  # noqa: N802
        """Apply the column widths once the header has sections."""
        super().setModel(model)
        header = self.horizontalHeader()
        char = self.fontMetrics().averageCharWidth()
        for section, column in enumerate(COLUMNS):
            if column.chars:
                header.setSectionResizeMode(section, QHeaderView.ResizeMode.Interactive)
                header.resizeSection(section, column.chars * char + 16)
            else:
                header.setSectionResizeMode(section, QHeaderView.ResizeMode.Stretch)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self._activate_index(self.currentIndex())
            return
        super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._last_click = event.position().toPoint()
        super().mousePressEvent(event)

    def warning_rect(self, index: QModelIndex) -> QRect:
        """Where a row's warning sign is drawn (the left of its name cell)."""
        cell = self.visualRect(index.siblingAtColumn(COL_NAME))
        size = self.iconSize().width() if self.iconSize().isValid() else 16
        return QRect(cell.left(), cell.top(), max(size, 16) + 8, cell.height())

    def _maybe_warning(self, index: QModelIndex) -> None:
        name = index.siblingAtColumn(COL_NAME)
        if name.data(Qt.ItemDataRole.DecorationRole) is None:
            return
        if self.warning_rect(index).contains(self._last_click):
            uid = name.data(UID_ROLE)
            if uid:
                self.warning_clicked.emit(uid)

    def _activate_index(self, index: QModelIndex) -> None:
        uid = index.siblingAtColumn(0).data(UID_ROLE)
        if uid:
            self.activated_study.emit(uid)


DATE_PRESETS = (
    ("Any date", None),
    ("Today", 0),
    ("Last 7 days", 6),
    ("Last 30 days", 29),
    ("Last 365 days", 364),
    ("Custom range", -1),
)


class StudyListWidget(QWidget):
    """Filter bar + table of the local cache, kept current from CACHE_CHANGED."""

    study_activated = Signal(str)
    #: the context menu of a study row was asked for (global position).
    context_menu_requested = Signal(object)
    #: the list switched between the table and the patient tree (grouped or not).
    grouping_changed = Signal(bool)
    #: (visible, total) after every load or filter change.
    counts_changed = Signal(int, int)
    #: an error while reading the index (message).
    load_failed = Signal(object)

    def __init__(
        self, cache: Cache, bridge: Bridge, pool: WorkerPool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.cache = cache
        self._bridge = bridge
        self._pool = pool
        self._pending: set[str] = set()
        self._pending_full = False
        self._loading = False
        #: how many partial (changed-studies) and full reloads ran; tests watch these.
        self.partial_loads = 0
        self.full_loads = 0
        #: the last "why is this study flagged" view opened from the list
        self.mismatch_view: MismatchView | None = None

        self.model = StudyTableModel(self)
        self.proxy = StudyFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.view = StudyTableView(self)
        self.view.setModel(self.proxy)
        self.view.sortByColumn(COL_STUDY_DATE, Qt.SortOrder.DescendingOrder)
        self.view.activated_study.connect(self.study_activated)
        self.view.warning_clicked.connect(self.show_warning)
        self._menu_on(self.view)
        self.tree: PatientTreeView | None = None
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.view)

        self._build_filter_bar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self._filter_bar)
        layout.addWidget(self.stack)
        self._empty_text = "No studies in the local cache yet."
        self.empty_hint = QLabel(self.view.viewport())
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setStyleSheet("color: gray; font-size: 11pt;")
        self.empty_hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.empty_hint.hide()

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self._flush)
        self._bridge.cache_changed.connect(self._on_cache_changed)
        for signal in (
            self.model.modelReset,
            self.model.rowsInserted,
            self.model.rowsRemoved,
            self.proxy.modelReset,
            self.proxy.rowsInserted,
            self.proxy.rowsRemoved,
        ):
            signal.connect(self._emit_counts)
        self.model.modelReset.connect(self._refresh_modalities)
        self.model.rowsInserted.connect(self._refresh_modalities)
        self.model.dataChanged.connect(self._refresh_modalities)

    # ---- filter bar --------------------------------------------------------

    def _build_filter_bar(self) -> None:
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText(
            "Filter: name, patient ID, accession, description  (Ctrl+F)"
        )
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.addAction(
            qta.icon("mdi6.magnify"), QLineEdit.ActionPosition.LeadingPosition
        )
        self.filter_edit.textChanged.connect(self.proxy.set_text)

        self.modality_combo = QComboBox(self)
        self.modality_combo.setToolTip("Only studies containing this modality")
        self.modality_combo.addItem("All modalities", "")
        self.modality_combo.currentIndexChanged.connect(
            lambda _i: self.proxy.set_modality(self.modality_combo.currentData() or "")
        )

        self.date_combo = QComboBox(self)
        self.date_combo.setToolTip("Study date")
        for label, days in DATE_PRESETS:
            self.date_combo.addItem(label, days)
        self.date_from = QDateEdit(self)
        self.date_to = QDateEdit(self)
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setDate(QDate.currentDate())
            edit.setVisible(False)
            edit.dateChanged.connect(self._apply_date_filter)
        self.date_combo.currentIndexChanged.connect(self._apply_date_filter)

        self.group_button = QToolButton(self)
        self.group_button.setIcon(qta.icon("mdi6.file-tree"))
        self.group_button.setText("Group by patient")
        self.group_button.setToolTip("Show the list as patient ▸ study ▸ series")
        self.group_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.group_button.setCheckable(True)
        self.group_button.toggled.connect(self.set_grouped)

        self.count_label = QLabel(self)
        self._filter_bar = QHBoxLayout()
        self._filter_bar.addWidget(self.filter_edit, 3)
        self._filter_bar.addWidget(self.modality_combo)
        self._filter_bar.addWidget(self.date_combo)
        self._filter_bar.addWidget(self.date_from)
        self._filter_bar.addWidget(self.date_to)
        self._filter_bar.addWidget(self.group_button)
        self._filter_bar.addWidget(self.count_label)

    # ---- grouping ------------------------------------------------------------

    @property
    def grouped(self) -> bool:
        return self.tree is not None and self.stack.currentWidget() is self.tree

    def set_grouped(self, on: bool) -> None:
        """Show the patient ▸ study ▸ series tree (on) or the flat table (off)."""
        if on == self.grouped:
            return
        if on and self.tree is None:
            from gearview.ui.patient_tree import PatientTreeModel, PatientTreeView

            model = PatientTreeModel(self.proxy, self._load_series, self)
            self.tree = PatientTreeView(model, self)
            self.tree.activated_study.connect(self.study_activated)
            self._menu_on(self.tree)
            self.stack.addWidget(self.tree)
        if self.tree is not None:
            self.tree.tree_model.follow(on)
        current: QAbstractScrollArea = self.tree if on and self.tree is not None else self.view
        self.stack.setCurrentWidget(current)
        self.empty_hint.setParent(current.viewport())
        self._update_empty_hint()
        self.group_button.blockSignals(True)
        self.group_button.setChecked(on)
        self.group_button.blockSignals(False)
        self.grouping_changed.emit(on)

    def _load_series(self, study_uid: str, done: Callable[[list[SeriesRecord]], None]) -> None:
        self._pool.submit(self.cache.series, study_uid, on_result=done,
                          on_error=self._on_load_error)

    def _menu_on(self, view: QAbstractItemView) -> None:
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(
            lambda pos: self.context_menu_requested.emit(view.viewport().mapToGlobal(pos))
        )

    def _apply_date_filter(self) -> None:
        days = self.date_combo.currentData()
        custom = days == -1
        self.date_from.setVisible(custom)
        self.date_to.setVisible(custom)
        if days is None:
            self.proxy.set_date_range("", "")
        elif custom:
            self.proxy.set_date_range(
                self.date_from.date().toString("yyyyMMdd"), self.date_to.date().toString("yyyyMMdd")
            )
        else:
            today = QDate.currentDate()
            self.proxy.set_date_range(
                today.addDays(-days).toString("yyyyMMdd"), today.toString("yyyyMMdd")
            )
        self._emit_counts()

    def _refresh_modalities(self) -> None:
        current = self.modality_combo.currentData() or ""
        wanted = self.model.modalities()
        have = [self.modality_combo.itemData(i) for i in range(1, self.modality_combo.count())]
        if have == wanted:
            return
        self.modality_combo.blockSignals(True)
        while self.modality_combo.count() > 1:
            self.modality_combo.removeItem(1)
        for modality in wanted:
            self.modality_combo.addItem(modality, modality)
        found = self.modality_combo.findData(current)
        self.modality_combo.setCurrentIndex(max(found, 0))
        self.modality_combo.blockSignals(False)
        if found < 0 and current:
            self.proxy.set_modality("")

    def _emit_counts(self) -> None:
        visible, total = self.proxy.rowCount(), self.model.rowCount()
        noun = "study" if total == 1 else "studies"
        self.count_label.setText(
            f"{visible} of {total} {noun}" if visible != total else f"{total} {noun}"
        )
        self._update_empty_hint()
        self.counts_changed.emit(visible, total)

    def set_empty_hint(self, text: str) -> None:
        """What an empty cache shows (e.g. where to send studies)."""
        self._empty_text = text
        self._update_empty_hint()

    def _update_empty_hint(self) -> None:
        if self.model.rowCount() == 0:
            self.empty_hint.setText(self._empty_text)
        else:
            self.empty_hint.setText("No study matches the filter.")
        self.empty_hint.setVisible(self.proxy.rowCount() == 0 and not self._loading)
        self.empty_hint.resize(self.empty_hint.parentWidget().size())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.empty_hint.resize(self.empty_hint.parentWidget().size())

    def focus_filter(self) -> None:
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    # ---- selection -----------------------------------------------------------

    def selected_study_uids(self) -> list[str]:
        if self.grouped and self.tree is not None:
            return self.tree.selected_study_uids()
        rows = self.view.selectionModel().selectedRows() if self.view.selectionModel() else []
        return [index.data(UID_ROLE) for index in sorted(rows, key=lambda i: i.row())]

    def select_study(self, study_uid: str) -> bool:
        if self.grouped and self.tree is not None:
            return self.tree.select_study(study_uid)
        row = self.model.row_of(study_uid)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.view.selectRow(index.row())
        self.view.setCurrentIndex(index)
        return True

    # ---- loading -------------------------------------------------------------

    @property
    def loading(self) -> bool:
        """True while a load runs or changes wait to be read."""
        return self._loading or self._timer.isActive() or bool(self._pending) or self._pending_full

    def show_warning(self, study_uid: str) -> MismatchView:
        """The findings and per-instance values behind a study's warning sign."""
        view = MismatchView(self.cache, study_uid, self._pool, self)
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.open()
        self.mismatch_view = view
        return view

    def refresh(self) -> None:
        """Re-read every study (F5); serialised with the partial loads."""
        self._pending_full = True
        self._pending.clear()
        self._flush()

    def _on_cache_changed(self, event: CacheChanged) -> None:
        if not event.changes:
            return
        self._pending |= event.changes.studies
        if not self._timer.isActive() and not self._loading:
            self._timer.start()

    def _flush(self) -> None:
        if self._loading:
            return
        if self._pending_full:
            self._pending_full = False
            self._pending.clear()
            self._loading = True
            self.full_loads += 1
            self._pool.submit(
                listed_studies, self.cache, on_result=self._on_full_loaded,
                on_error=self._on_load_error,
            )
        elif self._pending:
            uids, self._pending = self._pending, set()
            self._loading = True
            self.partial_loads += 1
            self._pool.submit(
                self._fetch,
                sorted(uids),
                on_result=self._on_partial_loaded,
                on_error=self._on_load_error,
            )

    def _fetch(self, uids: list[str]) -> tuple[list[str], list[StudyRecord]]:
        """Worker thread: read the named studies (missing ones were removed)."""
        records: list[StudyRecord] = []
        for start in range(0, len(uids), FETCH_CHUNK):
            records.extend(listed_studies(self.cache, uids[start : start + FETCH_CHUNK]))
        return uids, records

    def _on_full_loaded(self, records: list[StudyRecord]) -> None:
        selected = self.selected_study_uids()
        self.model.reset(records)
        for uid in selected[:1]:
            self.select_study(uid)
        self._load_finished()

    def _on_partial_loaded(self, result: tuple[list[str], list[StudyRecord]]) -> None:
        uids, records = result
        self.model.upsert(records)
        found = {r.study_instance_uid for r in records}
        self.model.remove(u for u in uids if u not in found)
        self._load_finished()

    def _on_load_error(self, error: BaseException) -> None:
        log.error("reading the study list failed: %s", error)
        self._load_finished()
        self.load_failed.emit(error)

    def _load_finished(self) -> None:
        self._loading = False
        self._update_empty_hint()
        if self._pending_full:
            self._flush()
        elif self._pending and not self._timer.isActive():
            self._timer.start()

    def shutdown(self) -> None:
        """Stop following the cache (the window is closing)."""
        self._timer.stop()
        if self.tree is not None:
            self.tree.tree_model.follow(False)
        self._bridge.cache_changed.disconnect(self._on_cache_changed)
