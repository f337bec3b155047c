"""The local study list grouped as patient ▸ study ▸ series.

`PatientTreeModel` groups the rows the study list's filter lets through
(the same `StudyFilterProxy`), so the free text, modality and date filters
apply to the tree too. It regroups, coalesced to one pass per event-loop
turn, when those rows change — and only while the tree is shown. Each
patient row's text and sort keys are worked out once per regrouping, and the
model sorts itself (a header click re-orders plain Python lists), so ten
thousand studies regroup in a fraction of a second. A study's series are
read on the list's worker pool the first time the study is expanded (and
again after the study changed). The view keeps expanded patients and
studies, and the selection, across regrouping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import qtawesome as qta
from PySide6.QtCore import (
    QAbstractItemModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeView, QWidget

from gearview.display import format_date, format_person_name
from gearview.store.records import SeriesRecord, StudyRecord
from gearview.ui.study_list import (
    COL_STUDY_DATE,
    COLUMNS,
    UID_ROLE,
    StudyFilterProxy,
    StudyTableModel,
    sort_value,
)

#: internalId of patient rows; study rows carry their patient's number + 1; series rows
#: SERIES_BASE + the study's number in `_studies`.
SERIES_BASE = 1 << 40
#: Role giving a row's kind: "patient", "study" or "series".
KIND_ROLE = Qt.ItemDataRole.UserRole + 3
#: Columns of the patient shown on its row only.
PATIENT_ATTRS = ("patient_id", "patient_birth_date", "patient_sex")
#: Width of the first column (patient / study / series), in average character widths.
TREE_COLUMN_CHARS = 34
RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
LoadSeries = Callable[[str, Callable[[list[SeriesRecord]], None]], None]


@dataclass
class _Patient:
    key: tuple[str, ...]
    first: StudyRecord
    studies: list[int] = field(default_factory=list)  # numbers in PatientTreeModel._studies
    shown: tuple[str, ...] = ()
    sort: tuple[int | str, ...] = ()


@dataclass
class _Study:
    record: StudyRecord
    patient: int = 0  # position of its patient in PatientTreeModel._patients
    row: int = 0  # its row under the patient


def patient_key(record: StudyRecord) -> tuple[str, ...]:
    """Studies of one patient: same ID and issuer; without an ID, same name and birth date."""
    if record.patient_id:
        return ("id", record.patient_id, record.issuer_of_patient_id)
    return ("name", record.patient_name, record.patient_birth_date)


def _summarise(patient: _Patient, studies: list[StudyRecord]) -> None:
    """The patient row's text and sort key per column (once per regrouping)."""
    first = patient.first
    latest = max(s.study_date for s in studies)
    count = len(studies)
    series = sum(s.number_of_study_related_series for s in studies)
    instances = sum(s.number_of_study_related_instances for s in studies)
    modalities = ", ".join(sorted({m for s in studies for m in s.modalities_in_study}))
    values: dict[str, tuple[str, int | str]] = {
        "patient_name": (format_person_name(first.patient_name),
                         format_person_name(first.patient_name).casefold()),
        "patient_id": (first.patient_id, first.patient_id.casefold()),
        "patient_birth_date": (format_date(first.patient_birth_date), first.patient_birth_date),
        "patient_sex": (first.patient_sex, first.patient_sex.casefold()),
        "study_date": (format_date(latest), latest),
        "modalities_in_study": (modalities, modalities),
        "study_description": (f"{count} stud{'y' if count == 1 else 'ies'}", f"{count:06d}"),
        "number_of_study_related_series": (str(series), series),
        "number_of_study_related_instances": (str(instances), instances),
    }
    cells = [values.get(c.attr, ("", "")) for c in COLUMNS]
    patient.shown = tuple(text for text, _ in cells)
    patient.sort = tuple(key for _, key in cells)


class PatientTreeModel(QAbstractItemModel):
    """Patients, their studies, and (loaded on expansion) the studies' series."""

    def __init__(self, source: StudyFilterProxy, load_series: LoadSeries,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._source = source
        self._load_series = load_series
        self._patients: list[_Patient] = []
        self._studies: list[_Study] = []
        self._number_of: dict[str, int] = {}  # study uid -> number in _studies
        self._position_of: dict[tuple[str, ...], int] = {}  # patient key -> position
        #: study uid -> (its instance count when read, its series)
        self._series: dict[str, tuple[int, list[SeriesRecord]]] = {}
        self._loading: set[str] = set()
        self._following = False
        self._order = (COL_STUDY_DATE, Qt.SortOrder.DescendingOrder)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.regroup)
        self._icons = {
            "patient": qta.icon("mdi6.account"),
            "study": qta.icon("mdi6.folder-outline"),
            "series": qta.icon("mdi6.image-multiple-outline"),
        }

    # ---- following the filtered study rows --------------------------------------

    def follow(self, on: bool) -> None:
        """Regroup from the study rows while shown; stop listening while hidden."""
        signals = (self._source.modelReset, self._source.rowsInserted, self._source.rowsRemoved,
                   self._source.dataChanged, self._source.layoutChanged)
        if on and not self._following:
            for signal in signals:
                signal.connect(self._schedule)
            self._following = True
            self.regroup()
        elif not on and self._following:
            for signal in signals:
                signal.disconnect(self._schedule)
            self._following = False
            self._timer.stop()

    def _schedule(self, *_: object) -> None:
        self._timer.start()

    def regroup(self) -> None:
        source = self._source.sourceModel()
        if not isinstance(source, StudyTableModel):
            return
        proxy = self._source
        records = [
            source.record(proxy.mapToSource(proxy.index(row, 0)).row())
            for row in range(proxy.rowCount())
        ]
        self.beginResetModel()
        self._group(records)
        self._sort()
        current = {
            s.record.study_instance_uid: s.record.number_of_study_related_instances
            for s in self._studies
        }
        self._series = {u: v for u, v in self._series.items() if current.get(u) == v[0]}
        self.endResetModel()

    def _group(self, records: list[StudyRecord]) -> None:
        self._patients, self._studies = [], [_Study(r) for r in records]
        by_key: dict[tuple[str, ...], _Patient] = {}
        for number, record in enumerate(records):
            key = patient_key(record)
            patient = by_key.get(key)
            if patient is None:
                patient = by_key[key] = _Patient(key, record)
                self._patients.append(patient)
            patient.studies.append(number)
        for patient in self._patients:
            _summarise(patient, [records[n] for n in patient.studies])

    def _sort(self) -> None:
        """Order patients, and each patient's studies, by the sort column."""
        column, order = self._order
        reverse = order == Qt.SortOrder.DescendingOrder
        self._patients.sort(key=lambda p: p.sort[column], reverse=reverse)
        attr = COLUMNS[column]

        def study_key(number: int) -> int | str:
            record = self._studies[number].record
            return record.study_date if column == 0 else sort_value(record, attr)

        for position, patient in enumerate(self._patients):
            patient.studies.sort(key=study_key, reverse=reverse)
            for row, number in enumerate(patient.studies):
                self._studies[number].patient, self._studies[number].row = position, row
        self._number_of = {s.record.study_instance_uid: n for n, s in enumerate(self._studies)}
        self._position_of = {p.key: i for i, p in enumerate(self._patients)}

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._order = (column, order)
        self.beginResetModel()
        self._sort()
        self.endResetModel()

    # ---- lookups for the view ----------------------------------------------------------

    def patient_index(self, key: tuple[str, ...]) -> QModelIndex:
        row = self._position_of.get(key)
        return QModelIndex() if row is None else self.createIndex(row, 0, 0)

    def study_index(self, study_uid: str) -> QModelIndex:
        number = self._number_of.get(study_uid)
        if number is None:
            return QModelIndex()
        study = self._studies[number]
        return self.createIndex(study.row, 0, study.patient + 1)

    def key_of(self, index: QModelIndex) -> tuple[str, ...]:
        kind, number = self._node(index)
        if kind == "patient":
            return self._patients[number].key
        return ("study", self._studies[number].record.study_instance_uid)

    # ---- structure ------------------------------------------------------------------

    def index(self, row: int, column: int,
              parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if row < 0 or column < 0 or column >= len(COLUMNS) or row >= self.rowCount(parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0)
        kind, number = self._node(parent)
        if kind == "patient":
            return self.createIndex(row, column, number + 1)
        if kind == "study":
            return self.createIndex(row, column, SERIES_BASE + number)
        return QModelIndex()

    def parent(self, index: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        ident = index.internalId()
        if ident == 0:
            return QModelIndex()
        if ident < SERIES_BASE:
            return self.createIndex(ident - 1, 0, 0)
        study = self._studies[ident - SERIES_BASE]
        return self.createIndex(study.row, 0, study.patient + 1)

    def _node(self, index: QModelIndex | QPersistentModelIndex) -> tuple[str, int]:
        """("patient", patient position) / ("study" or "series", study number)."""
        ident = index.internalId()
        if ident == 0:
            return "patient", index.row()
        if ident < SERIES_BASE:
            return "study", self._patients[ident - 1].studies[index.row()]
        return "series", ident - SERIES_BASE

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008,N802
        if not parent.isValid():
            return len(self._patients)
        if parent.column() != 0:
            return 0
        kind, number = self._node(parent)
        if kind == "patient":
            return len(self._patients[number].studies)
        if kind == "study":
            loaded = self._series.get(self._studies[number].record.study_instance_uid)
            return len(loaded[1]) if loaded else 0
        return 0

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008,N802
        return len(COLUMNS)

    def hasChildren(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: B008,N802
        if not parent.isValid():
            return bool(self._patients)
        if parent.column() != 0:
            return False
        kind, number = self._node(parent)
        if kind == "study":
            return self._studies[number].record.number_of_study_related_series > 0
        return kind == "patient"

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        if not parent.isValid():
            return False
        kind, number = self._node(parent)
        if kind != "study":
            return False
        uid = self._studies[number].record.study_instance_uid
        return uid not in self._series and uid not in self._loading

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802
        """Read the study's series on a worker; they are inserted when they arrive."""
        record = self._studies[self._node(parent)[1]].record
        uid = record.study_instance_uid
        self._loading.add(uid)
        self._load_series(uid, lambda series: self._series_loaded(record, series))

    def _series_loaded(self, record: StudyRecord, series: list[SeriesRecord]) -> None:
        self._loading.discard(record.study_instance_uid)
        parent = self.study_index(record.study_instance_uid)
        if not parent.isValid() or not series:
            return
        self.beginInsertRows(parent, 0, len(series) - 1)
        current = self._studies[self._number_of[record.study_instance_uid]].record
        self._series[record.study_instance_uid] = (
            current.number_of_study_related_instances, series
        )
        self.endInsertRows()

    # ---- data ----------------------------------------------------------------------------

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return "Patient / study / series" if section == 0 else COLUMNS[section].title
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        kind, number = self._node(index)
        column = index.column()
        if role == KIND_ROLE:
            return kind
        if role == Qt.ItemDataRole.TextAlignmentRole and COLUMNS[column].numeric:
            return RIGHT
        if kind == "patient":
            return self._patient_data(self._patients[number], column, role)
        record = self._studies[number].record
        if role == UID_ROLE:
            return record.study_instance_uid
        if kind == "study":
            return self._study_data(record, column, role)
        series = self._series[record.study_instance_uid][1][index.row()]
        return self._series_data(series, column, role)

    def _patient_data(self, patient: _Patient, column: int, role: int) -> object:
        if role == Qt.ItemDataRole.DisplayRole:
            return patient.shown[column]
        if role == Qt.ItemDataRole.DecorationRole and column == 0:
            return self._icons["patient"]
        if role == Qt.ItemDataRole.ToolTipRole and column == 0:
            return patient.first.patient_name or None
        return None

    def _study_data(self, record: StudyRecord, column: int, role: int) -> object:
        if column == 0:
            if role == Qt.ItemDataRole.DisplayRole:
                when = format_date(record.study_date) or "(no date)"
                what = record.study_description or ", ".join(record.modalities_in_study)
                return f"{when}  {what}".rstrip()
            if role == Qt.ItemDataRole.DecorationRole:
                return self._table_data(record, 0, role) or self._icons["study"]
        if COLUMNS[column].attr in PATIENT_ATTRS:  # said once, on the patient's row
            return None
        return self._table_data(record, column, role)

    def _table_data(self, record: StudyRecord, column: int, role: int) -> object:
        """What the flat table shows for the study (formatting, tooltips, the warning icon)."""
        source = self._source.sourceModel()
        if not isinstance(source, StudyTableModel):
            return None
        row = source.row_of(record.study_instance_uid)
        return None if row is None else source.data(source.index(row, column), role)

    def _series_data(self, series: SeriesRecord, column: int, role: int) -> object:
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icons["series"] if column == 0 else None
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        attr = COLUMNS[column].attr
        if attr == "patient_name":
            number = series.series_number if series.series_number is not None else "-"
            return f"#{number}  {series.modality} {series.series_description}".rstrip()
        return {
            "modalities_in_study": series.modality,
            "study_description": series.series_description,
            "number_of_study_related_instances": str(series.number_of_series_related_instances),
        }.get(attr)


class PatientTreeView(QTreeView):
    """The grouped list; Enter or double-click on a study or series opens the study."""

    activated_study = Signal(str)

    def __init__(self, model: PatientTreeModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree_model = model
        self.setModel(model)
        self.setSortingEnabled(True)
        self.sortByColumn(COL_STUDY_DATE, Qt.SortOrder.DescendingOrder)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        header = self.header()
        header.setStretchLastSection(False)
        char = self.fontMetrics().averageCharWidth()
        for section, column in enumerate(COLUMNS):
            chars = TREE_COLUMN_CHARS if section == 0 else column.chars
            if chars:
                header.setSectionResizeMode(section, QHeaderView.ResizeMode.Interactive)
                header.resizeSection(section, chars * char + 16)
            else:
                header.setSectionResizeMode(section, QHeaderView.ResizeMode.Stretch)
        self.doubleClicked.connect(self._activate_index)
        self._expanded: set[tuple[str, ...]] = set()
        self._selected: list[str] = []
        self.expanded.connect(lambda index: self._expanded.add(model.key_of(index)))
        self.collapsed.connect(lambda index: self._expanded.discard(model.key_of(index)))
        model.modelAboutToBeReset.connect(self._remember)
        model.modelReset.connect(self._restore)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self._activate_index(self.currentIndex())
            return
        super().keyPressEvent(event)

    def _activate_index(self, index: QModelIndex) -> None:
        if index.data(KIND_ROLE) == "patient":
            return
        uid = index.siblingAtColumn(0).data(UID_ROLE)
        if uid:
            self.activated_study.emit(uid)

    def selected_study_uids(self) -> list[str]:
        """Studies of the selected rows: a patient stands for all its studies."""
        chosen: list[str] = []
        selection = self.selectionModel()
        model = self.tree_model
        for index in selection.selectedRows() if selection is not None else []:
            if index.data(KIND_ROLE) == "patient":
                rows = range(model.rowCount(index))
                uids = [model.index(r, 0, index).data(UID_ROLE) for r in rows]
            else:
                uids = [index.data(UID_ROLE)]
            chosen += [u for u in uids if u and u not in chosen]
        return chosen

    def _remember(self) -> None:
        """Before regrouping: the selection (expansion is followed as it happens, so a patient
        a filter hides for a while comes back as it was)."""
        self._selected = self.selected_study_uids()

    def _restore(self) -> None:
        model = self.tree_model
        expanded = [k for k in self._expanded if k[0] != "study"]
        wanted = {k for k in self._expanded if k[0] == "study"}
        for key in expanded:
            index = model.patient_index(key)
            if index.isValid():
                self.expand(index)
        for key in wanted:
            index = model.study_index(key[1])
            if index.isValid():
                self.expand(index)
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for uid in self._selected:
            index = model.study_index(uid)
            if index.isValid():
                self.selectionModel().select(index, flags)

    def select_study(self, study_uid: str) -> bool:
        index = self.tree_model.study_index(study_uid)
        if not index.isValid():
            return False
        self.expand(index.parent())
        self.setCurrentIndex(index)
        return True
